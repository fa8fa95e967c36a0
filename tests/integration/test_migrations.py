"""The migrations both ways, on a database of their own in the test PostgreSQL."""

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from booking.config import sqlalchemy_url
from booking.db import REPO_ROOT
from models.sessions import session_id_for


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    config.attributes["database_url"] = url
    return config


@contextmanager
def scratch_database(stack):
    """A database of its own in the test PostgreSQL; yields its URL, dropped after."""
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sqlalchemy_url(stack.postgres.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield stack.postgres.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


def test_every_migration_goes_down_and_up_again(stack, db):
    with scratch_database(stack) as url:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "0003")  # the calendar fence, its columns and triggers
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        engine = create_engine(sqlalchemy_url(url))
        with engine.connect() as conn:
            triggers = set(conn.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        engine.dispose()
        assert triggers == {"bookings_require_claim", "time_off_require_claim",
                            "booking_requests_outcome_require_claim", "sessions_require_claim",
                            "bookings_take_seats", "provider_services_require_claim",
                            "providers_overrides_require_claim", "sessions_delete_require_claim",
                            "sessions_seats_by_bookings_only"}


NINE = datetime(2030, 1, 7, 9, tzinfo=UTC)
OLD_BOOKINGS = [(NINE, "confirmed"), (NINE, "cancelled"), (NINE + timedelta(hours=1), "cancelled"),
                (NINE + timedelta(hours=2), "confirmed")]


def seed_before_sessions(conn) -> uuid.UUID:
    """Bookings as revision 0004 stored them: a slot booked and cancelled and booked
    again, a slot only cancelled, another booked."""
    provider, key = uuid.uuid4(), uuid.uuid4()
    conn.execute(text("INSERT INTO api_keys (id, name, role, key_hash, webhook_secret) "
                      "VALUES (:k, 'k', 'client', 'h', 's')"), {"k": key})
    conn.execute(text("INSERT INTO providers (id, name, timezone, slot_minutes, weekly_schedule, "
                      "min_notice_minutes, max_advance_days, version, calendar_claimed_by) "
                      "VALUES (:p, 'p', 'UTC', 60, '{}', 0, 365, 1, pg_current_xact_id())"), {"p": provider})
    for start, status in OLD_BOOKINGS:
        conn.execute(text("INSERT INTO bookings (id, provider_id, api_key_id, customer_id, period, status, "
                          "version) VALUES (:id, :p, :k, 'c', tstzrange(:s, :e, '[)'), :status, 1)"),
                     {"id": uuid.uuid4(), "p": provider, "k": key, "s": start,
                      "e": start + timedelta(hours=1), "status": status})
    return provider


@contextmanager
def upgraded_from_0004_data(stack):
    """A scratch database given 0004's bookings, then upgraded to head: (config, engine,
    the provider's id)."""
    with scratch_database(stack) as url:
        config = alembic_config(url)
        command.upgrade(config, "0004")
        engine = create_engine(sqlalchemy_url(url))
        with engine.begin() as conn:
            provider = seed_before_sessions(conn)
        command.upgrade(config, "head")
        try:
            yield config, engine, provider
        finally:
            engine.dispose()


def test_existing_bookings_become_one_seat_sessions_and_the_way_back_keeps_them(stack, db):
    with upgraded_from_0004_data(stack) as (config, engine, provider):
        with engine.connect() as conn:
            sessions = conn.execute(text("SELECT id, start, seats_taken, capacity, service_id FROM sessions "
                                         "ORDER BY start")).all()
            unseated = conn.scalar(text(
                "SELECT count(*) FROM bookings b LEFT JOIN sessions s "
                "ON s.id = b.session_id AND lower(b.period) = s.start WHERE s.id IS NULL"))
        assert [(s.start, s.seats_taken, s.capacity, s.service_id) for s in sessions] == [
            (NINE, 1, 1, None), (NINE + timedelta(hours=1), 0, 1, None),
            (NINE + timedelta(hours=2), 1, 1, None)]
        assert [s.id for s in sessions] == [session_id_for(provider, None, s.start) for s in sessions]
        assert unseated == 0

        command.downgrade(config, "0004")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM bookings")) == len(OLD_BOOKINGS)
            assert conn.scalar(text(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'bookings_no_overlap'")) == 1
        command.upgrade(config, "head")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT sum(seats_taken) FROM sessions")) == 2


def test_the_way_back_refuses_while_a_session_holds_several_seats(stack, db):
    with upgraded_from_0004_data(stack) as (config, engine, _provider):
        with engine.begin() as conn:
            conn.execute(text("UPDATE providers SET calendar_claimed_by = pg_current_xact_id()"))
            conn.execute(text("UPDATE sessions SET capacity = 3"))
            conn.execute(text("INSERT INTO bookings (id, provider_id, api_key_id, customer_id, session_id, "
                              "period, status, version) SELECT gen_random_uuid(), provider_id, "
                              "api_key_id, 'd', session_id, period, 'confirmed', 1 "
                              "FROM bookings WHERE status = 'confirmed'"))

        with pytest.raises(Exception, match="more than one seat"):
            command.downgrade(config, "0004")
