"""Holds: a seat kept for a customer until `expires_at`, then confirmed into a booking,
released, or expired.

A hold is a `bookings` row in status `held` with `expires_at` set, so that everything
that keeps seats honest keeps holds honest too: the calendar fence, the seat trigger,
the sessions' EXCLUDE and capacity CHECK, and one seat per customer per session (a
customer cannot hold and book the same session). Confirming it is one UPDATE to
`confirmed` (or `pending`) in which the seat stays where it is; releasing or expiring
it (`released`, `expired`) frees the seat. Requests gain the kinds `hold`, `confirm`
and `release`, and `ttl_seconds` for a hold.

Constraints cannot read the clock: a `held` row keeps its seat until a writer (the
decision, or the periodic expiry) turns it `expired` under the fence.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BOOKING_STATUSES = ("pending", "confirmed", "declined", "cancelled")
HOLD_STATUSES = ("held", "released", "expired")
KINDS = ("create", "reschedule", "cancel", "confirm_booking", "decline_booking")
HOLD_KINDS = ("hold", "confirm", "release")
SESSION_ID_SQL = ("md5(NEW.provider_id::text || '/' || coalesce(NEW.service_id::text, '') || '/' || "
                  "((extract(epoch FROM lower(NEW.period)) * 1000000)::bigint)::text)::uuid")


def take_seats(live: tuple[str, ...]) -> str:
    """Migration 0005's seat trigger, with `live` as the statuses that take a seat."""
    statuses = ", ".join(repr(s) for s in live)
    return f"""
CREATE OR REPLACE FUNCTION booking_take_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_live boolean := TG_OP <> 'INSERT' AND OLD.status IN ({statuses});
    new_live boolean := TG_OP <> 'DELETE' AND NEW.status IN ({statuses});
    before_start interval := interval '0';
    after_end interval := interval '0';
    seats integer := 1;
    seated tstzrange;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.provider_id <> NEW.provider_id THEN
        RAISE EXCEPTION 'booking % cannot move to another provider', OLD.id USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP <> 'DELETE' THEN
        NEW.session_id := {SESSION_ID_SQL};
    END IF;
    IF old_live AND new_live AND OLD.session_id = NEW.session_id AND OLD.period = NEW.period THEN
        RETURN NEW;  -- the seat stays where it was (a hold confirmed, a pending booking confirmed)
    END IF;
    IF old_live THEN
        UPDATE sessions SET seats_taken = seats_taken - 1 WHERE id = OLD.session_id;
    END IF;
    IF NOT new_live AND TG_OP <> 'DELETE'
       AND (TG_OP = 'INSERT' OR OLD.session_id <> NEW.session_id) THEN  -- a session with no seat of it
        INSERT INTO sessions (id, provider_id, service_id, start, period, occupied, capacity)
        VALUES (NEW.session_id, NEW.provider_id, NEW.service_id, lower(NEW.period), NEW.period, NEW.period, 1)
        ON CONFLICT (id) DO NOTHING;
    END IF;
    IF new_live THEN
        IF NEW.service_id IS NOT NULL THEN
            SELECT make_interval(mins => buffer_before_minutes), make_interval(mins => buffer_after_minutes),
                   capacity
              INTO before_start, after_end, seats
              FROM services WHERE id = NEW.service_id;
        END IF;
        INSERT INTO sessions AS s (id, provider_id, service_id, start, period, occupied, capacity, seats_taken)
        VALUES (NEW.session_id, NEW.provider_id, NEW.service_id, lower(NEW.period), NEW.period,
                tstzrange(lower(NEW.period) - before_start, upper(NEW.period) + after_end, '[)'), seats, 1)
        ON CONFLICT (id) DO UPDATE
           SET seats_taken = s.seats_taken + 1,
               period = CASE WHEN s.seats_taken = 0 THEN EXCLUDED.period ELSE s.period END,
               occupied = CASE WHEN s.seats_taken = 0 THEN EXCLUDED.occupied ELSE s.occupied END,
               capacity = CASE WHEN s.seats_taken = 0 THEN EXCLUDED.capacity ELSE s.capacity END
        RETURNING s.period INTO seated;
        IF seated <> NEW.period THEN
            RAISE EXCEPTION 'booking % does not match its session %', NEW.id, NEW.session_id
                  USING ERRCODE = 'P0001';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
"""


def _replace_check(table: str, name: str, condition: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _one_seat_per_customer(live: tuple[str, ...]) -> None:
    op.execute("DROP INDEX bookings_one_seat_per_customer")
    op.execute(f"CREATE UNIQUE INDEX bookings_one_seat_per_customer ON bookings (session_id, customer_id) "
               f"WHERE {_in('status', live)}")


def upgrade() -> None:
    op.add_column("bookings", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("booking_requests", sa.Column("ttl_seconds", sa.Integer))
    _replace_check("bookings", "bookings_status_check", _in("status", BOOKING_STATUSES + HOLD_STATUSES))
    # A row is a hold exactly when it has an expiry: held ones always do.
    op.create_check_constraint("bookings_hold_expires", "bookings",
                               "status NOT IN ('held', 'released', 'expired') OR expires_at IS NOT NULL")
    _replace_check("booking_requests", "booking_requests_kind_check", _in("kind", KINDS + HOLD_KINDS))
    op.execute(take_seats(("pending", "confirmed", "held")))
    _one_seat_per_customer(("pending", "confirmed", "held"))
    # The periodic expiry finds what is due without reading every booking, and names the
    # request that made each hold in its hold.expired delivery.
    op.execute("CREATE INDEX bookings_held_until ON bookings (expires_at) WHERE status = 'held'")
    op.execute("CREATE INDEX booking_requests_hold ON booking_requests (booking_id) WHERE kind = 'hold'")


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM bookings WHERE status IN ('held', 'released', 'expired'))
               OR EXISTS (SELECT 1 FROM booking_requests WHERE kind IN ('hold', 'confirm', 'release')) THEN
                RAISE EXCEPTION 'holds, or requests about holds, cannot be downgraded';
            END IF;
        END $$""")
    op.execute("DROP INDEX booking_requests_hold")
    op.execute("DROP INDEX bookings_held_until")
    _one_seat_per_customer(("pending", "confirmed"))
    op.execute(take_seats(("pending", "confirmed")))
    _replace_check("booking_requests", "booking_requests_kind_check", _in("kind", KINDS))
    op.drop_constraint("bookings_hold_expires", "bookings")
    _replace_check("bookings", "bookings_status_check", _in("status", BOOKING_STATUSES))
    op.drop_column("booking_requests", "ttl_seconds")
    op.drop_column("bookings", "expires_at")
