"""One clock, and no stalled transaction holding a provider: real gunicorn, dramatiq,
PostgreSQL and Redis."""

import math
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from booking.fence import claim_calendar
from tests.conftest import Api, running_web, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def next_half_hour_after(moment: datetime) -> datetime:
    minutes = math.ceil((moment.timestamp() / 60) / 30) * 30
    return datetime.fromtimestamp(minutes * 60, UTC)


def database_now(db) -> datetime:
    with db.connect() as conn:
        return conn.scalar(text("SELECT now()"))


def skewed(offset: str) -> dict[str, str]:
    """Environment for a process whose wall clock is `offset` off (libfaketime). Its
    monotonic clock moves by the same constant, so intervals and timeouts stay true.
    (Faking only the wall clock breaks Python's sleep under libfaketime 0.9.10.)"""
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": offset, "FAKETIME_NO_CACHE": "1"}


@pytest.fixture
def skewed_web(stack):
    with running_web(processes=1, **skewed("+3h")) as (base_url, _server):
        yield base_url


NEEDS_FAKETIME = pytest.mark.skipif(not FAKETIME.exists(), reason=(
    "needs Debian's faketime package (apt-get install faketime; .ci/run installs it)"))


@NEEDS_FAKETIME
def test_notice_is_measured_by_the_database_clock_whatever_the_hosts_say(db, admin_key, client_key,
                                                                         skewed_web, web):
    # Given web and worker hosts whose clocks run three hours ahead of PostgreSQL's,
    admin, client = Api(skewed_web, admin_key), Api(skewed_web, client_key)
    reader = Api(web, client_key)  # long-polls on a true clock: libfaketime mistimes condition waits
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK, min_notice_minutes=60)
    start = next_half_hour_after(database_now(db) + timedelta(minutes=90))

    # when a request 90 minutes ahead (inside the hour's notice only by the hosts' clocks)
    # is accepted and decided there,
    request = client.submit(provider["id"], start.isoformat())
    workers = start_workers(processes=1, **skewed("+3h"))
    try:
        decided = reader.decided(request["id"], timeout=30)
    finally:
        workers.stop()

    # then it was accepted at the database's time and the booking stands.
    assert abs(datetime.fromisoformat(decided["created_at"]) - database_now(db)) < timedelta(minutes=5)
    assert decided["status"] == "succeeded", decided


@NEEDS_FAKETIME
def test_a_request_accepted_by_a_skewed_web_host_is_still_redriven(db, admin_key, client_key,
                                                                   skewed_web, web):
    # Given a request accepted by a web host three hours ahead,
    client = Api(skewed_web, client_key)
    provider = Api(skewed_web, admin_key).create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    start = next_half_hour_after(database_now(db) + timedelta(days=1))
    request = client.submit(provider["id"], start.isoformat())

    # when its message is lost before any worker runs (Redis restarted empty),
    from booking import notify
    notify.redis_client().flushall()
    workers = start_workers(processes=1)
    try:
        decided = Api(web, client_key).decided(request["id"], timeout=30)
    finally:
        workers.stop()

    # then the re-drive, comparing acceptance with the database's clock, found it.
    assert decided["status"] == "succeeded", decided


def test_a_transaction_stalled_on_a_provider_does_not_stall_its_queue(workers, db, admin_api: Api,
                                                                        client_api: Api):
    from booking.db import get_engine

    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    start = next_half_hour_after(database_now(db) + timedelta(days=1))
    # Given a decision transaction that claimed the provider and then stopped (a worker
    # paused by GC, VM steal or SIGSTOP after its first write),
    stalled = get_engine().connect()
    stalled.begin()
    claim_calendar(stalled.execute, provider["id"])

    # when a request for that provider comes in,
    began = time.monotonic()
    request = client_api.submit(provider["id"], start.isoformat())
    decided = client_api.decided(request["id"], timeout=30)
    waited = time.monotonic() - began

    # then another worker decides it once the stalled session is ended (the lease TTL,
    # 3 s in tests, plus a little), and the stalled transaction's late commit is refused.
    assert decided["status"] == "succeeded", decided
    assert waited < 3 + 10, f"waited {waited:.1f} s"  # tells an answer from a hang, no more
    with pytest.raises(DBAPIError):
        stalled.commit()
    stalled.close()
    assert os.environ["BOOKING_LEASE_TTL_MS"] == "3000"
