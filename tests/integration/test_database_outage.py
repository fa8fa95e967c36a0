"""PostgreSQL going away: every request that needs it answers 503 problem+json with
Retry-After, at once, logged in one line each; once PostgreSQL is back the same web
process serves again, without a restart.

The session's shared PostgreSQL must stay up for every other test, so the outage is of
a second embedded server of this module's own, migrated, with its own gunicorn."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from booking.config import sqlalchemy_url
from booking.secrets import seal
from booking.services import keys
from booking.stack import FAST_UNSAFE_PG_SETTINGS, EmbeddedPostgres
from models import ApiKey
from tests.conftest import ProcessGroup, auth, migrated_postgres, running_web

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
PROMPT_S = 2.0  # an outage is answered at once, not after a connect or pool timeout


@dataclass
class Outage:
    """What one web process answered and logged while its PostgreSQL was down, and
    what it answered once PostgreSQL was back."""

    during: dict[str, tuple[httpx.Response, float]]  # name -> (response, seconds taken)
    ready_during: httpx.Response
    log_during: str
    after: dict[str, httpx.Response]
    ready_after: httpx.Response
    serving_pids: set[str]  # of the web processes in the access log, start to end


@pytest.fixture(scope="module")
def own_postgres(stack, tmp_path_factory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this module's own, migrated, that its tests may stop and start."""
    with migrated_postgres(tmp_path_factory.mktemp("outage"), FAST_UNSAFE_PG_SETTINGS) as postgres:
        yield postgres


@pytest.fixture(scope="module")
def own_web(stack, own_postgres) -> Iterator[tuple[str, ProcessGroup]]:
    """One gunicorn process (so every request meets the same pool and key cache) on the
    module's PostgreSQL, and on a Redis database of its own."""
    with running_web(processes=1, DATABASE_URL=own_postgres.url,
                     REDIS_URL=stack.redis.url.removesuffix("/0") + "/1") as web:
        yield web


@pytest.fixture(scope="module")
def outage(own_postgres, own_web) -> Outage:
    """Accept a request, stop PostgreSQL, call the API, start PostgreSQL, call it again."""
    base_url, server = own_web
    admin = httpx.Client(base_url=base_url, headers=auth(create_admin_key(own_postgres.url)),
                         timeout=30)
    # never used before the outage, so its lookup cannot come from the process's key cache
    unseen = httpx.Client(base_url=base_url, headers=auth(create_admin_key(own_postgres.url)),
                          timeout=30)
    provider = admin.post("/v1/providers", json={
        "name": "Dr. Outage", "timezone": "UTC", "weekly_schedule": ALL_WEEK}).json()
    booking = {"provider_id": provider["id"], "customer_id": "c-1", "start": tomorrow()}
    request_path = admin.post("/v1/bookings", json=booking).headers["Location"]

    def calls(minutes: int) -> dict:
        return {
            "submit": lambda: admin.post("/v1/bookings", json={**booking, "start": tomorrow(minutes)}),
            "read request": lambda: admin.get(request_path),
            "list providers": lambda: admin.get("/v1/providers"),
            "uncached key": lambda: unseen.get("/v1/providers"),
        }

    own_postgres.stop()
    during = {name: timed(call) for name, call in calls(30).items()}
    ready_during, log_during = httpx.get(f"{base_url}/readyz"), "".join(server.output)
    own_postgres.start()
    after = {name: call() for name, call in calls(60).items()}
    ready_after = httpx.get(f"{base_url}/readyz")
    serving_pids = set(re.findall(r'<(\d+)> \\?"', "".join(server.output)))
    return Outage(during, ready_during, log_during, after, ready_after, serving_pids)


def create_admin_key(database_url: str) -> str:
    key = keys.generate_key()
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with Session(engine) as session, session.begin():
            session.add(ApiKey(id=uuid.uuid4(), name="outage admin", role="admin",
                               key_hash=keys.hash_key(key), created_at=datetime.now(UTC),
                               webhook_secret=seal(keys.generate_webhook_secret())))
    finally:
        engine.dispose()
    return key


def tomorrow(minutes: int = 0) -> str:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (day + timedelta(minutes=minutes)).isoformat()


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < PROMPT_S, f"took {elapsed:.1f} s"


@pytest.mark.parametrize("call", ["submit", "read request", "list providers"])
def test_while_postgres_is_down_requests_answer_503_with_retry_after_at_once(outage, call):
    assert_unavailable(*outage.during[call])


def test_while_postgres_is_down_a_key_it_must_look_up_is_503_not_401(outage):
    assert_unavailable(*outage.during["uncached key"])


def test_while_postgres_is_down_readiness_is_503(outage):
    assert outage.ready_during.status_code == 503
    assert outage.ready_during.json()["checks"]["postgres"] != "ok"


def test_an_outage_is_logged_one_line_per_request_without_tracebacks(outage):
    assert outage.log_during.count("database unavailable") == len(outage.during)
    assert "Traceback" not in outage.log_during


def test_once_postgres_is_back_the_same_process_serves_again(outage):
    assert {call: response.status_code for call, response in outage.after.items()} == {
        "submit": 202, "read request": 200, "list providers": 200, "uncached key": 200}
    assert outage.ready_after.status_code == 200
    assert len(outage.serving_pids) == 1  # no worker was restarted to get there
