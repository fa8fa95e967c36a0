"""Initial schema: api keys, providers, time off, bookings, booking requests.

Written by hand: autogenerate sees neither the btree_gist extension nor the
EXCLUDE constraint that is the database's final word against double booking.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("webhook_secret", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role IN ('admin', 'client')", name="api_keys_role_check"),
    )

    op.create_table(
        "providers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("slot_minutes", sa.Integer, nullable=False),
        sa.Column("weekly_schedule", pg.JSONB, nullable=False),
        sa.Column("min_notice_minutes", sa.Integer, nullable=False),
        sa.Column("max_advance_days", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        *timestamps(),
    )
    op.create_index("providers_created_at_id", "providers", ["created_at", "id"])

    op.create_table(
        "time_off",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("provider_id", sa.Uuid, sa.ForeignKey("providers.id"), nullable=False),
        sa.Column("period", pg.TSTZRANGE, nullable=False),
        sa.Column("reason", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("CREATE INDEX time_off_provider_period ON time_off USING gist (provider_id, period)")

    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("provider_id", sa.Uuid, sa.ForeignKey("providers.id"), nullable=False),
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("period", pg.TSTZRANGE, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cancel_reason", sa.String(255)),
        sa.Column("version", sa.Integer, nullable=False),
        *timestamps(),
        sa.CheckConstraint("status IN ('confirmed', 'cancelled')", name="bookings_status_check"),
        sa.CheckConstraint("NOT isempty(period) AND NOT lower_inf(period) AND NOT upper_inf(period)",
                           name="bookings_period_bounded"),
    )
    # The database's final word: no two confirmed bookings of a provider overlap.
    op.execute(
        "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap "
        "EXCLUDE USING gist (provider_id WITH =, period WITH &&) WHERE (status = 'confirmed')"
    )
    op.execute("CREATE INDEX bookings_provider_start ON bookings (provider_id, lower(period), id)")
    op.execute("CREATE INDEX bookings_key_start ON bookings (api_key_id, lower(period), id)")

    op.create_table(
        "booking_requests",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.Uuid, sa.ForeignKey("providers.id"), nullable=False),
        sa.Column("booking_id", sa.Uuid, sa.ForeignKey("bookings.id")),
        sa.Column("customer_id", sa.String(255)),
        sa.Column("start", sa.DateTime(timezone=True)),
        sa.Column("cancel_reason", sa.String(255)),
        sa.Column("callback_url", sa.Text),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_fingerprint", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_message", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('create', 'reschedule', 'cancel')", name="booking_requests_kind_check"),
        sa.CheckConstraint("status IN ('queued', 'succeeded', 'rejected', 'failed')",
                           name="booking_requests_status_check"),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name="booking_requests_idempotency"),
    )
    # The worker's queue: a provider's undecided requests in acceptance order.
    op.execute(
        "CREATE INDEX booking_requests_queued ON booking_requests (provider_id, seq) "
        "WHERE status = 'queued'"
    )
    op.create_index("booking_requests_key_seq", "booking_requests", ["api_key_id", "seq"])


def downgrade() -> None:
    op.drop_table("booking_requests")
    op.drop_table("bookings")
    op.drop_table("time_off")
    op.drop_table("providers")
    op.drop_table("api_keys")
