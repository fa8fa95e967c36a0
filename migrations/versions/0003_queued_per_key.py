"""Index for the per-client cap on undecided requests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX booking_requests_queued_by_key ON booking_requests (api_key_id) "
               "WHERE status = 'queued'")


def downgrade() -> None:
    op.execute("DROP INDEX booking_requests_queued_by_key")
