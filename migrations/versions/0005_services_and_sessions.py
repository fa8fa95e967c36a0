"""Services, sessions and seats, date overrides.

- `services` (soft-deleted, `revision` as ETag) and `provider_services` (what a
  provider offers). A booking or request without `service_id` uses the provider's
  implicit service (duration = step = slot_minutes, capacity 1).
- `sessions` (provider, service, start): the appointment, the occupied interval with
  buffers, the capacity, and `seats_taken`, which a trigger on bookings keeps. The
  database's word against double booking moves here: no two sessions of a provider
  with seats taken overlap (EXCLUDE), no session holds more than its capacity
  (CHECK), and a customer takes one seat per session (unique index on bookings).
  A session's id is md5(provider/service/start in epoch µs), as
  models.sessions.session_id_for computes it, so writers need no round trip.
- `providers.date_overrides`: {"YYYY-MM-DD": [{"start", "end"}]}, read with the
  provider in the decision's one query.

Every existing booking becomes a one-seat session of its provider's implicit service.
Downgrade refuses while a session has more than one seat taken (the old constraint
could not hold them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SESSION_ID_SQL = ("md5({provider}::text || '/' || coalesce({service}::text, '') || '/' || "
                  "((extract(epoch FROM {start}) * 1000000)::bigint)::text)::uuid")

# The seat a booking takes, kept by the database itself: before a booking is written,
# its session (the hash of provider/service/start) loses the old seat and gains the new
# one, made with the service's shape of today (buffers, capacity) if nobody sits in it.
# A session with seats keeps its shape; a booking whose interval is not its session's
# is refused. Constraints on sessions then refuse overlap and overfilling.
# BEFORE, so that one upsert makes a new session with its seat (the decision path's cost
# per booking). The price: a row that INSERT ... ON CONFLICT then skips would keep its
# seat. Nothing writes bookings that way, and a phantom seat could only block a slot,
# never let two bookings overlap.
TAKE_SEATS = f"""
CREATE FUNCTION booking_take_seats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_live boolean := TG_OP <> 'INSERT' AND OLD.status IN ('pending', 'confirmed');
    new_live boolean := TG_OP <> 'DELETE' AND NEW.status IN ('pending', 'confirmed');
    before_start interval := interval '0';
    after_end interval := interval '0';
    seats integer := 1;
    seated tstzrange;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.provider_id <> NEW.provider_id THEN
        RAISE EXCEPTION 'booking % cannot move to another provider', OLD.id USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP <> 'DELETE' THEN
        NEW.session_id := {SESSION_ID_SQL.format(provider="NEW.provider_id", service="NEW.service_id",
                                                 start="lower(NEW.period)")};
    END IF;
    IF old_live AND new_live AND OLD.session_id = NEW.session_id AND OLD.period = NEW.period THEN
        RETURN NEW;  -- the seat stays where it was
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
SEATS_BY_BOOKINGS_ONLY = """
CREATE FUNCTION booking_refuse_seat_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sessions are written by booking writes only (session %)', NEW.id
          USING ERRCODE = 'P0001', HINT = 'insert, update or delete bookings instead';
END
$$;
"""
SESSION_SHAPE_CHANGED = ("OLD.provider_id IS DISTINCT FROM NEW.provider_id OR OLD.service_id IS DISTINCT FROM "
                         "NEW.service_id OR OLD.start IS DISTINCT FROM NEW.start OR OLD.period IS DISTINCT FROM "
                         "NEW.period OR OLD.occupied IS DISTINCT FROM NEW.occupied OR OLD.capacity IS DISTINCT "
                         "FROM NEW.capacity")

# A provider row's own date overrides: the claim is on the row itself.
OVERRIDES_REQUIRE_CLAIM = """
CREATE FUNCTION booking_require_own_claim() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.calendar_claimed_by IS DISTINCT FROM pg_current_xact_id() THEN
        RAISE EXCEPTION 'calendar of provider % written without claiming its version', NEW.id
              USING ERRCODE = 'P0001', HINT = 'call booking.fence.claim_calendar first';
    END IF;
    RETURN NEW;
END
$$;
"""


def upgrade() -> None:
    _create_services()
    op.add_column("providers", sa.Column("date_overrides", pg.JSONB, nullable=False,
                                         server_default=sa.text("'{}'::jsonb")))
    _create_sessions()
    op.add_column("bookings", sa.Column("service_id", sa.Uuid, sa.ForeignKey("services.id")))
    op.add_column("bookings", sa.Column("session_id", sa.Uuid, sa.ForeignKey("sessions.id")))
    op.add_column("booking_requests", sa.Column("service_id", sa.Uuid, sa.ForeignKey("services.id")))
    _move_bookings_into_sessions()
    op.alter_column("bookings", "session_id", nullable=False)
    op.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap")
    op.execute("CREATE UNIQUE INDEX bookings_one_seat_per_customer ON bookings (session_id, customer_id) "
               "WHERE status IN ('pending', 'confirmed')")
    op.execute(TAKE_SEATS)
    # After bookings_require_claim (triggers fire by name): only a claimed write takes seats.
    op.execute("CREATE TRIGGER bookings_take_seats BEFORE INSERT OR DELETE "
               "OR UPDATE OF status, period, provider_id, service_id, session_id "
               "ON bookings FOR EACH ROW EXECUTE FUNCTION booking_take_seats()")
    op.execute("CREATE TRIGGER provider_services_require_claim BEFORE INSERT OR UPDATE OR DELETE "
               "ON provider_services FOR EACH ROW EXECUTE FUNCTION booking_require_calendar_claim()")
    # Sessions are written by the seat trigger, for a booking write that bookings_require_claim
    # has let through; a session's shape changed by anyone else must claim it too. Its
    # seat count alone, or a new session, needs no second check.
    op.execute(f"CREATE TRIGGER sessions_require_claim BEFORE UPDATE ON sessions FOR EACH ROW "
               f"WHEN ({SESSION_SHAPE_CHANGED}) EXECUTE FUNCTION booking_require_calendar_claim()")
    op.execute("CREATE TRIGGER sessions_delete_require_claim BEFORE DELETE ON sessions FOR EACH ROW "
               "EXECUTE FUNCTION booking_require_calendar_claim()")
    # Seats are counted by the seat trigger alone (depth 1), never written straight.
    op.execute(SEATS_BY_BOOKINGS_ONLY)
    op.execute("CREATE TRIGGER sessions_seats_by_bookings_only BEFORE INSERT OR UPDATE OF seats_taken "
               "ON sessions FOR EACH ROW WHEN (pg_trigger_depth() = 0) "
               "EXECUTE FUNCTION booking_refuse_seat_write()")
    op.execute(OVERRIDES_REQUIRE_CLAIM)
    op.execute("CREATE TRIGGER providers_overrides_require_claim BEFORE UPDATE OF date_overrides ON providers "
               "FOR EACH ROW WHEN (OLD.date_overrides IS DISTINCT FROM NEW.date_overrides) "
               "EXECUTE FUNCTION booking_require_own_claim()")


def _create_services() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("step_minutes", sa.Integer, nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer, nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("requires_confirmation", sa.Boolean, nullable=False),
        sa.Column("daily_limit", sa.Integer),
        sa.Column("weekly_limit", sa.Integer),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("duration_minutes BETWEEN 5 AND 1440 AND step_minutes BETWEEN 5 AND 1440",
                           name="services_lengths"),
        sa.CheckConstraint("buffer_before_minutes BETWEEN 0 AND 720 AND buffer_after_minutes BETWEEN 0 AND 720",
                           name="services_buffers"),
        sa.CheckConstraint("capacity BETWEEN 1 AND 1000", name="services_capacity"),
        sa.CheckConstraint("coalesce(daily_limit, 1) >= 1 AND coalesce(weekly_limit, 1) >= 1",
                           name="services_limits"),
    )
    op.create_index("services_created_at_id", "services", ["created_at", "id"])
    op.create_table(
        "provider_services",
        sa.Column("provider_id", sa.Uuid, sa.ForeignKey("providers.id"), primary_key=True),
        sa.Column("service_id", sa.Uuid, sa.ForeignKey("services.id"), primary_key=True),
    )
    op.create_index("provider_services_service", "provider_services", ["service_id"])


def _create_sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("provider_id", sa.Uuid, sa.ForeignKey("providers.id"), nullable=False),
        sa.Column("service_id", sa.Uuid, sa.ForeignKey("services.id")),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", pg.TSTZRANGE, nullable=False),
        sa.Column("occupied", pg.TSTZRANGE, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("seats_taken", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("seats_taken >= 0 AND seats_taken <= capacity", name="sessions_within_capacity"),
        sa.CheckConstraint("capacity >= 1", name="sessions_capacity_positive"),
        sa.CheckConstraint("lower(period) = start AND occupied @> period AND NOT isempty(period) "
                           "AND NOT upper_inf(occupied) AND NOT lower_inf(occupied)",
                           name="sessions_shape"),
    )
    # One session per (provider, service, start): its id is that key's hash, so the
    # primary key keeps the key unique without an index of its own.
    op.execute("ALTER TABLE sessions ADD CONSTRAINT sessions_id_is_its_key CHECK (id = " + SESSION_ID_SQL.format(
        provider="provider_id", service="service_id", start="start") + ")")
    # The database's final word: sessions of a provider with seats taken never overlap.
    op.execute("ALTER TABLE sessions ADD CONSTRAINT sessions_no_overlap "
               "EXCLUDE USING gist (provider_id WITH =, occupied WITH &&) WHERE (seats_taken > 0)")


def _move_bookings_into_sessions() -> None:
    """Each existing booking joins the one-seat implicit session at its start; the
    triggers that guard calendars are paused for this one-off rewrite."""
    session_id = SESSION_ID_SQL.format(provider="b.provider_id", service="NULL", start="lower(b.period)")
    op.execute(f"""
        INSERT INTO sessions (id, provider_id, service_id, start, period, occupied, capacity, seats_taken)
        SELECT DISTINCT ON (b.provider_id, lower(b.period))
               {session_id}, b.provider_id, NULL, lower(b.period), b.period, b.period, 1,
               count(*) FILTER (WHERE b.status = 'confirmed')
                   OVER (PARTITION BY b.provider_id, lower(b.period))
          FROM bookings b
         ORDER BY b.provider_id, lower(b.period), (b.status = 'confirmed') DESC, b.updated_at DESC
    """)
    op.execute("ALTER TABLE bookings DISABLE TRIGGER bookings_require_claim")
    op.execute(f"UPDATE bookings b SET session_id = {session_id}")
    op.execute("ALTER TABLE bookings ENABLE TRIGGER bookings_require_claim")


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM sessions WHERE seats_taken > 1) THEN
                RAISE EXCEPTION 'sessions with more than one seat taken cannot be downgraded; '
                                'cancel the extra seats first';
            END IF;
        END $$""")
    op.execute("DROP TRIGGER providers_overrides_require_claim ON providers")
    op.execute("DROP FUNCTION booking_require_own_claim()")
    op.execute("DROP TRIGGER provider_services_require_claim ON provider_services")
    op.execute("DROP TRIGGER sessions_seats_by_bookings_only ON sessions")
    op.execute("DROP FUNCTION booking_refuse_seat_write()")
    op.execute("DROP TRIGGER sessions_delete_require_claim ON sessions")
    op.execute("DROP TRIGGER sessions_require_claim ON sessions")
    op.execute("DROP TRIGGER bookings_take_seats ON bookings")
    op.execute("DROP FUNCTION booking_take_seats()")
    op.execute("DROP INDEX bookings_one_seat_per_customer")
    op.execute("ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap "
               "EXCLUDE USING gist (provider_id WITH =, period WITH &&) WHERE (status = 'confirmed')")
    op.drop_column("booking_requests", "service_id")
    op.drop_column("bookings", "session_id")
    op.drop_column("bookings", "service_id")
    op.drop_table("sessions")
    op.drop_column("providers", "date_overrides")
    op.drop_table("provider_services")
    op.drop_table("services")
