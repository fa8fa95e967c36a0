"""Webhooks: endpoints, the delivery outbox and its attempt log; secret rotation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def now() -> sa.sql.elements.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("previous_webhook_secret", sa.Text))
    op.add_column("api_keys", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)))

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", pg.ARRAY(sa.String(64)), nullable=False),
        sa.Column("all_clients", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now()),
    )
    op.create_index("webhook_endpoints_key", "webhook_endpoints", ["api_key_id"])

    # The outbox: written in the decision's transaction, delivered by a job.
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("request_id", sa.Uuid, sa.ForeignKey("booking_requests.id")),
        sa.Column("endpoint_id", sa.Uuid, sa.ForeignKey("webhook_endpoints.id", ondelete="SET NULL")),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now()),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')",
                           name="webhook_deliveries_status_check"),
    )
    op.create_index("webhook_deliveries_request", "webhook_deliveries", ["request_id", "created_at"])
    op.execute("CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
               "WHERE status = 'pending'")

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("delivery_id", sa.Uuid, sa.ForeignKey("webhook_deliveries.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("webhook_attempts_delivery", "webhook_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_column("api_keys", "previous_secret_expires_at")
    op.drop_column("api_keys", "previous_webhook_secret")
