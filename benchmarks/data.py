"""Benchmark data: providers with 24/7 calendars, one client key, optional 1M bookings,
a seated service for `seats`, and the requests each scenario sends (the same ones to
every system)."""

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
# a class opens: 30 customers for each of 100 sessions of 20 seats (2,000 win, 1,000 are turned away)
SEATS_SESSIONS, SEATS_CAPACITY, SEATS_PER_SESSION = 100, 20, 30
SEATS_REQUESTS = SEATS_SESSIONS * SEATS_PER_SESSION
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
        # The seat trigger puts each in its one-seat session of the implicit service.
        conn.execute(text(
            "INSERT INTO bookings (id, provider_id, api_key_id, customer_id, period, status, version) "
            "SELECT gen_random_uuid(), p.id, :key, 'seed', "
            "tstzrange(:base + (:first + g * 17) * interval '30 minutes', "
            "          :base + (:first + g * 17 + 1) * interval '30 minutes', '[)'), 'confirmed', 1 "
            "FROM providers p CROSS JOIN generate_series(0, :per - 1) g"),
            {"key": key_id, "base": base_time(), "first": FIRST_SLOT, "per": per_provider})
        conn.execute(text("ANALYZE sessions"))
        conn.execute(text("ANALYZE bookings"))
        return conn.scalar(text("SELECT count(*) FROM bookings"))


def add_seated_service(engine: Engine, provider_id: str) -> str:
    """A service of SEATS_CAPACITY seats (30 minutes, on the provider's 30-minute grid,
    no buffers or limits), offered by the provider; written straight to the tables, as
    POST /v1/services and `service_ids` on the provider would. Returns its id."""
    with engine.begin() as conn:
        service_id = conn.scalar(text(
            "INSERT INTO services (id, name, duration_minutes, step_minutes, buffer_before_minutes, "
            "buffer_after_minutes, capacity, requires_confirmation, daily_limit, weekly_limit, revision) "
            "VALUES (gen_random_uuid(), 'bench class', 30, 30, 0, 0, :capacity, false, NULL, NULL, 1) "
            "RETURNING id"), {"capacity": SEATS_CAPACITY})
        claim_every_calendar(conn)  # what a provider offers is part of its calendar
        conn.execute(text("INSERT INTO provider_services (provider_id, service_id) VALUES (:p, :s)"),
                     {"p": provider_id, "s": service_id})
    return str(service_id)


def seat_body(service_id: str):
    """index -> the create's extra fields for `seats`: the service, and a customer of
    its own (one customer takes at most one seat in a session)."""
    return lambda i: {"service_id": service_id, "customer_id": f"seat-{i}"}


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
    if scenario == "seats":  # every session wanted SEATS_PER_SESSION times, in shuffled order
        sessions = [n % SEATS_SESSIONS for n in range(SEATS_REQUESTS)]
        random.Random(seed).shuffle(sessions)
        return lambda i: (provider_ids[0], at(FIRST_SLOT + sessions[i % SEATS_REQUESTS]))

    def uniform(i: int):
        rng = random.Random(seed * 1_000_003 + i)
        return provider_ids[rng.randrange(len(provider_ids))], at(rng.randrange(FIRST_SLOT, LAST_SLOT))

    return uniform


def double_bookings(engine: Engine, table: str, seated: bool = False) -> int:
    """Pairs of overlapping live bookings of one provider, counted in SQL. `seated`:
    bookings sharing a session's seats overlap by design, so a pair counts only when
    its bookings sit in different sessions or are the same customer's (a session's
    seats beyond its capacity are `over_capacity`)."""
    live = "AND a.status = 'confirmed' AND b.status = 'confirmed'" if table == "bookings" else ""
    if seated:
        live = ("AND a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed') "
                "AND (a.session_id <> b.session_id OR a.customer_id = b.customer_id)")
    with engine.connect() as conn:
        return conn.scalar(text(
            f"SELECT count(*) FROM {table} a JOIN {table} b ON a.provider_id = b.provider_id "
            f"AND a.id <> b.id AND a.period && b.period "
            f"WHERE a.customer_id <> 'seed' AND (b.customer_id = 'seed' OR a.id < b.id) {live}"))


# First come, first served by `seq`, as benchmarks/spike.py checks it, with seats: at each
# start the first SEATS_CAPACITY requests booked, every later one `slot_unavailable`; and
# no live booking that none of those owns. Requests still queued count too.
SEATS_FCFS_VIOLATIONS = text("""
WITH ranked AS (
    SELECT r.start, r.status, r.reason_code, r.booking_id,
           row_number() OVER (PARTITION BY r.start ORDER BY r.seq) AS place
      FROM booking_requests r WHERE r.kind = 'create')
SELECT (SELECT count(*) FROM ranked r LEFT JOIN bookings b ON b.id = r.booking_id
         WHERE CASE WHEN r.place <= :capacity
                    THEN b.id IS NULL OR r.status <> 'succeeded' OR b.status <> 'confirmed'
                         OR lower(b.period) <> r.start
                    ELSE r.status <> 'rejected' OR r.reason_code IS DISTINCT FROM 'slot_unavailable'
               END)
     + (SELECT count(*) FROM bookings b
         WHERE b.status IN ('pending', 'confirmed') AND b.customer_id <> 'seed'
           AND NOT EXISTS (SELECT 1 FROM ranked r WHERE r.booking_id = b.id AND r.place <= :capacity))
""")


def seat_figures(engine: Engine) -> dict:
    """Sessions whose live bookings (counted, not read from `seats_taken`) exceed their
    capacity; sessions whose `seats_taken` disagrees with that count; live bookings;
    sessions filled to capacity; and requests decided otherwise than first come, first
    served."""
    with engine.connect() as conn:
        fcfs = conn.scalar(SEATS_FCFS_VIOLATIONS, {"capacity": SEATS_CAPACITY})
        row = conn.execute(text(
            "SELECT count(*) FILTER (WHERE coalesce(live.taken, 0) > s.capacity) AS over_capacity, "
            "       count(*) FILTER (WHERE coalesce(live.taken, 0) <> s.seats_taken) AS seats_taken_drift, "
            "       coalesce(sum(live.taken), 0) AS seats_taken, "
            "       count(*) FILTER (WHERE live.taken = s.capacity) AS full_sessions "
            "  FROM sessions s LEFT JOIN (SELECT session_id, count(*) AS taken FROM bookings "
            "       WHERE status IN ('pending', 'confirmed') GROUP BY session_id) live "
            "    ON live.session_id = s.id")).one()
    return {"over_capacity": row.over_capacity, "seats_taken_drift": row.seats_taken_drift,
            "seats_taken": int(row.seats_taken), "full_sessions": row.full_sessions,
            "fcfs_violations": fcfs}
