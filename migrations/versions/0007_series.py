"""Recurring series: a create may carry `recurrence` ({"frequency", "interval", "count"});
its occurrences are decided all or nothing in one decision, and each booking it makes
carries `series_id` (the creating request's id). A rejection names the first occurrence
that failed (`reason_occurrence`, its index), an outcome column guarded by the calendar
claim like the others.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OUTCOME_COLUMNS = ("status", "reason_code", "reason_message", "booking_id", "decided_at")


def _outcome_trigger(columns: tuple[str, ...]) -> None:
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
    op.execute("DROP TRIGGER booking_requests_outcome_require_claim ON booking_requests")
    op.execute(f"CREATE TRIGGER booking_requests_outcome_require_claim BEFORE UPDATE OF {', '.join(columns)} "
               f"ON booking_requests FOR EACH ROW WHEN ({changed}) "
               "EXECUTE FUNCTION booking_require_calendar_claim()")


def upgrade() -> None:
    op.add_column("booking_requests", sa.Column("recurrence", pg.JSONB))
    op.add_column("booking_requests", sa.Column("reason_occurrence", sa.Integer))
    op.add_column("bookings", sa.Column("series_id", sa.Uuid))
    op.execute("CREATE INDEX bookings_series ON bookings (series_id, lower(period)) WHERE series_id IS NOT NULL")
    _outcome_trigger((*OUTCOME_COLUMNS, "reason_occurrence"))


def downgrade() -> None:
    _outcome_trigger(OUTCOME_COLUMNS)
    op.execute("DROP INDEX bookings_series")
    op.drop_column("bookings", "series_id")
    op.drop_column("booking_requests", "reason_occurrence")
    op.drop_column("booking_requests", "recurrence")
