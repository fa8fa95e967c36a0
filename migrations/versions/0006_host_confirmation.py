"""Host confirmation: bookings can be `pending` (taking their seat, as confirmed ones do)
or `declined` (seat freed); requests of kind `confirm_booking` and `decline_booking`
decide them, in order with the provider's other requests.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES = ("pending", "confirmed", "declined", "cancelled")
KINDS = ("create", "reschedule", "cancel", "confirm_booking", "decline_booking")


def _replace_check(table: str, name: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    _replace_check("bookings", "bookings_status_check", _in("status", STATUSES))
    _replace_check("booking_requests", "booking_requests_kind_check", _in("kind", KINDS))


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM bookings WHERE status IN ('pending', 'declined'))
               OR EXISTS (SELECT 1 FROM booking_requests WHERE kind IN ('confirm_booking', 'decline_booking')) THEN
                RAISE EXCEPTION 'pending or declined bookings, or confirmation requests, cannot be downgraded';
            END IF;
        END $$""")
    _replace_check("bookings", "bookings_status_check", _in("status", ("confirmed", "cancelled")))
    _replace_check("booking_requests", "booking_requests_kind_check", _in("kind", KINDS[:3]))
