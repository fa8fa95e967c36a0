"""Benchmark data: providers with 24/7 calendars, one client key, optional 1M bookings,
and the requests each scenario sends (the same ones to every system)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from benchmarks.sync_app import SCHEMA
from booking.services.keys import create_key

ALL_WEEK = json.dumps({day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")})
FIRST_SLOT, LAST_SLOT = 96, 17000  # half-hours ahead: from two days to almost a year
SPIKE_REQUESTS, SPIKE_SLOTS = 5000, 500  # a calendar opens: ten requests for each free slot
SLOT = timedelta(minutes=30)


def base_time() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def reset(engine: Engine, providers: int) -> tuple[str, str, list[str]]:
    """Empty tables, `providers` providers, one client key. Returns (key, key id, ids)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE webhook_attempts, webhook_deliveries, webhook_endpoints, "
                          "booking_requests, bookings, sessions, time_off, provider_services, services, "
                          "providers, api_keys"))
        conn.execute(text(SCHEMA))
        conn.execute(text("TRUNCATE bench_sync_bookings"))
        conn.execute(text(
            "INSERT INTO providers (id, name, timezone, slot_minutes, weekly_schedule, "
            "min_notice_minutes, max_advance_days, version) "
            "SELECT gen_random_uuid(), 'bench ' || n, 'UTC', 30, CAST(:schedule AS jsonb), 0, 3650, 1 "
            "FROM generate_series(1, :count) n"), {"schedule": ALL_WEEK, "count": providers})
        conn.execute(text("DROP TABLE IF EXISTS bench_provider_index"))
        conn.execute(text("CREATE TABLE bench_provider_index AS SELECT row_number() OVER "
                          "(ORDER BY id) AS n, id FROM providers"))
        conn.execute(text("CREATE UNIQUE INDEX ON bench_provider_index (n)"))
        ids = [str(row[0]) for row in conn.execute(text("SELECT id FROM bench_provider_index ORDER BY n"))]
    created = create_key("bench client", "client")
    return created.key, str(created.api_key.id), ids


def claim_every_calendar(conn) -> None:
    """The fence every calendar writer takes (booking.fence), for all providers at once."""
    conn.execute(text("UPDATE providers SET version = version + 1, "
                      "calendar_claimed_by = pg_current_xact_id()"))


def preload_bookings(engine: Engine, key_id: str, per_provider: int) -> int:
    """Confirmed bookings spread over every provider's horizon (every 17th slot)."""
    with engine.begin() as conn:
        claim_every_calendar(conn)
        conn.execute(text(
            "INSERT INTO bookings (id, provider_id, api_key_id, customer_id, period, status, version) "
            "SELECT gen_random_uuid(), p.id, :key, 'seed', "
            "tstzrange(:base + (:first + g * 17) * interval '30 minutes', "
            "          :base + (:first + g * 17 + 1) * interval '30 minutes', '[)'), 'confirmed', 1 "
            "FROM providers p CROSS JOIN generate_series(0, :per - 1) g"),
            {"key": key_id, "base": base_time(), "first": FIRST_SLOT, "per": per_provider})
        conn.execute(text("ANALYZE bookings"))
        return conn.scalar(text("SELECT count(*) FROM bookings"))


def clear_run(engine: Engine) -> None:
    """Forget one system's run, keeping providers, keys and preloaded bookings."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE webhook_attempts, webhook_deliveries, booking_requests CASCADE"))
        claim_every_calendar(conn)
        conn.execute(text("DELETE FROM bookings WHERE customer_id <> 'seed'"))
        conn.execute(text("TRUNCATE bench_sync_bookings"))


def requests_for(scenario: str, provider_ids: list[str], seed: int = 7):
    """index -> (provider_id, start): the same sequence for every system."""
    base = base_time()

    def at(slot: int) -> str:
        return (base + slot * SLOT).isoformat()

    if scenario == "hot":
        return lambda i: (provider_ids[0], at(FIRST_SLOT + i))
    if scenario == "contended":
        return lambda i: (provider_ids[0], at(FIRST_SLOT + i // 10))
    if scenario == "spike":  # every slot wanted SPIKE_REQUESTS / SPIKE_SLOTS times, in shuffled order
        wanted = [n % SPIKE_SLOTS for n in range(SPIKE_REQUESTS)]
        random.Random(seed).shuffle(wanted)
        return lambda i: (provider_ids[0], at(FIRST_SLOT + wanted[i % SPIKE_REQUESTS]))

    def uniform(i: int):
        rng = random.Random(seed * 1_000_003 + i)
        return provider_ids[rng.randrange(len(provider_ids))], at(rng.randrange(FIRST_SLOT, LAST_SLOT))

    return uniform


def double_bookings(engine: Engine, table: str) -> int:
    """Pairs of overlapping live bookings of one provider, counted in SQL."""
    live = "AND a.status = 'confirmed' AND b.status = 'confirmed'" if table == "bookings" else ""
    with engine.connect() as conn:
        return conn.scalar(text(
            f"SELECT count(*) FROM {table} a JOIN {table} b ON a.provider_id = b.provider_id "
            f"AND a.id <> b.id AND a.period && b.period "
            f"WHERE a.customer_id <> 'seed' AND (b.customer_id = 'seed' OR a.id < b.id) {live}"))
