"""The calendar fence made structural, and what the decision path now keeps.

- `providers.version` stays the calendar version (the optimistic lock). A writer
  claims it with `UPDATE providers SET version = version + 1, calendar_claimed_by =
  pg_current_xact_id() ...` (booking.fence.claim_calendar), and triggers refuse any
  write to bookings, time off or a request's outcome in a transaction that has not
  claimed that provider's calendar: forgetting the fence is an error, not a race.
- `providers.revision` is the provider's own version, its ETag: a decided booking
  changes the calendar, not the provider.
- `booking_requests.attempts` / `error_streak` / `last_error` / `last_attempt_at`: a
  request is failed only after the same error repeats, on tries spread out in time;
  `if_match_versions`: the booking versions an If-Match named, checked again when the
  change is decided.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REQUIRE_CLAIM = """
CREATE FUNCTION booking_require_calendar_claim() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_provider uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_provider := OLD.provider_id;
    ELSE
        row_provider := NEW.provider_id;
    END IF;
    PERFORM 1 FROM providers
     WHERE id = row_provider AND calendar_claimed_by = pg_current_xact_id();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'calendar of provider % written without claiming its version', row_provider
              USING ERRCODE = 'P0001', HINT = 'call booking.fence.claim_calendar first';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
"""

OUTCOME_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in (
    "status", "reason_code", "reason_message", "booking_id", "decided_at"))
# name: (table, when it fires)
TRIGGERS = {
    "bookings_require_claim": ("bookings", "BEFORE INSERT OR UPDATE OR DELETE"),
    "time_off_require_claim": ("time_off", "BEFORE INSERT OR UPDATE OR DELETE"),
    # Accepting a request is no calendar change; deciding it is.
    "booking_requests_outcome_require_claim": (
        "booking_requests", "BEFORE UPDATE OF status, reason_code, reason_message, booking_id, decided_at"),
}
CONDITIONS = {"booking_requests_outcome_require_claim": f"WHEN ({OUTCOME_CHANGED})"}


def upgrade() -> None:
    op.add_column("providers", sa.Column("revision", sa.Integer, nullable=False, server_default="1"))
    op.execute("ALTER TABLE providers ADD COLUMN calendar_claimed_by xid8")  # no SQLAlchemy type
    op.add_column("booking_requests", sa.Column("attempts", sa.Integer, nullable=False,
                                                server_default="0"))
    op.add_column("booking_requests", sa.Column("error_streak", sa.Integer, nullable=False,
                                                server_default="0"))
    op.add_column("booking_requests", sa.Column("last_error", sa.Text))
    op.add_column("booking_requests", sa.Column("last_attempt_at", sa.DateTime(timezone=True)))
    op.add_column("booking_requests", sa.Column("if_match_versions", sa.ARRAY(sa.Integer)))
    op.execute(REQUIRE_CLAIM)
    for name, (table, when) in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW {CONDITIONS.get(name, '')} "
                   "EXECUTE FUNCTION booking_require_calendar_claim()")


def downgrade() -> None:
    for name, (table, _when) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION booking_require_calendar_claim()")
    op.drop_column("booking_requests", "if_match_versions")
    op.drop_column("booking_requests", "last_attempt_at")
    op.drop_column("booking_requests", "last_error")
    op.drop_column("booking_requests", "error_streak")
    op.drop_column("booking_requests", "attempts")
    op.drop_column("providers", "calendar_claimed_by")
    op.drop_column("providers", "revision")
