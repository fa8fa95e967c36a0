"""Operability: each booking request keeps the `X-Request-Id` it came with (or was
given), so that log lines of the web, the workers and the webhook sender about it can
be found together; and the indexes that let the ops summary and the queue gauges read
PostgreSQL cheaply.

- `booking_requests.request_id`: the client's X-Request-Id (when sane) or one made.
- `booking_requests_queued_oldest`: queue depth and the oldest queued request, over
  queued rows only, in `seq` (= acceptance) order.
- `booking_requests_decided_at`: decisions of the last minutes, for rates and latency.
- `webhook_deliveries_failed`: the most recent failed deliveries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("booking_requests", sa.Column("request_id", sa.String(200)))
    op.execute("CREATE INDEX booking_requests_queued_oldest ON booking_requests (seq) WHERE status = 'queued'")
    op.execute("CREATE INDEX booking_requests_decided_at ON booking_requests (decided_at) "
               "WHERE decided_at IS NOT NULL")
    op.execute("CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (created_at) "
               "WHERE status = 'failed'")


def downgrade() -> None:
    op.execute("DROP INDEX webhook_deliveries_failed")
    op.execute("DROP INDEX booking_requests_decided_at")
    op.execute("DROP INDEX booking_requests_queued_oldest")
    op.drop_column("booking_requests", "request_id")
