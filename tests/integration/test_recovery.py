"""Nothing accepted is lost: through a Redis outage and a worker killed mid-drain."""

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from booking import notify
from tests.conftest import Api, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def hourly_starts(count: int) -> list[str]:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return [(first + timedelta(minutes=15 * i)).isoformat() for i in range(count)]


def test_submissions_during_a_redis_outage_are_decided_once_it_is_back(
        stack, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", slot_minutes=15, weekly_schedule=ALL_WEEK)
    workers = start_workers(processes=1)
    try:
        stack.redis.stop()
        with_redis_down = [client_api.submit(provider["id"], start) for start in hourly_starts(3)]
        polled = client_api.http.get(f"/v1/booking-requests/{with_redis_down[0]['id']}",
                                     params={"wait": 1})  # long-poll degrades, never fails

        stack.redis.start()
        decided = [client_api.decided(r["id"], timeout=90) for r in with_redis_down]
    finally:
        workers.stop()

    assert polled.status_code == 200 and polled.json()["status"] == "queued"
    assert [r["status"] for r in decided] == ["succeeded"] * 3


def test_a_worker_killed_mid_drain_loses_nothing_and_decides_nothing_twice(
        stack, db, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", slot_minutes=15, weekly_schedule=ALL_WEEK)
    starts = hourly_starts(150)
    submitted = [client_api.submit(provider["id"], start) for start in starts + starts[:50]]
    # One-request batches make the drain long enough to be interrupted.
    assert notify.listener().connected.wait(10)
    with notify.decision_waiter(submitted[20]["id"]) as wait:
        doomed = start_workers(processes=1, threads=2, BOOKING_DECIDE_BATCH_SIZE="1")
        try:
            assert wait(60)  # the 21st request was just decided
        finally:
            doomed.kill()
    queued_after_kill = count(db, "SELECT count(*) FROM booking_requests WHERE status = 'queued'")

    survivor = start_workers(processes=1)
    try:
        decided = [client_api.decided(r["id"], timeout=120) for r in submitted]
    finally:
        survivor.stop()

    assert queued_after_kill > 0, "the kill came after the drain; nothing was tested"
    assert [r["status"] for r in decided[:150]] == ["succeeded"] * 150
    assert {r["reason"]["code"] for r in decided[150:]} == {"slot_unavailable"}
    assert count(db, "SELECT count(*) FROM bookings") == 150
    assert count(db, "SELECT count(DISTINCT booking_id) FROM booking_requests "
                     "WHERE status = 'succeeded'") == 150


def test_readiness_reports_a_missing_redis(stack, web):
    stack.redis.stop()
    try:
        down = httpx.get(f"{web}/readyz")
    finally:
        stack.redis.start()
    up = httpx.get(f"{web}/readyz")

    assert down.status_code == 503 and down.json()["checks"]["redis"] != "ok"
    assert up.status_code == 200


def count(db, sql: str) -> int:
    with db.connect() as conn:
        return conn.scalar(text(sql))


def test_redis_client_recovers_after_restart(stack):
    stack.redis.stop()
    stack.redis.start()
    assert notify.redis_client().ping()
