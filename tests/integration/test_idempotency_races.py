"""Idempotency-Key under truly concurrent submits, against the real gunicorn: many
identical submits make one request and all get its id; submits of different bodies
under one key accept exactly one body and answer 422 to the others. For creates,
reschedules and cancels."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import Api, auth

RACERS = 32  # as many as the `web` fixture serves at once (2 processes x 16 threads)
# Races under fresh keys, one after another: a single race does not always land two
# submits in the window between the check for an earlier request and the insert.
ROUNDS = 5
ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def hours_from_now(hours: int) -> str:
    return (datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            + timedelta(hours=hours)).isoformat()


def fresh_keys(kind: str) -> list[str]:
    return [f"{kind}-{uuid.uuid4()}" for _ in range(ROUNDS)]


def race(base_url: str, key: str, path: str, bodies: list[dict],
         idempotency_key: str) -> list[httpx.Response]:
    """POST each body under one Idempotency-Key, each on its own open connection, all
    released at once by a barrier (so they race in the server, not in connecting)."""
    ready = threading.Barrier(len(bodies))

    def post(body: dict) -> httpx.Response:
        with httpx.Client(base_url=base_url, headers=auth(key), timeout=60) as http:
            http.get("/healthz").raise_for_status()  # the connection is open before the race
            ready.wait()
            return http.post(path, json=body, headers={"Idempotency-Key": idempotency_key})

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def stored_requests(db, idempotency_key: str) -> list:
    with db.connect() as conn:
        return conn.execute(text(
            "SELECT id, kind, customer_id, start, cancel_reason FROM booking_requests "
            "WHERE idempotency_key = :key"), {"key": idempotency_key}).all()


def assert_one_request_for_all(responses: list[httpx.Response], stored: list) -> None:
    assert [r.status_code for r in responses] == [202] * len(responses), \
        {r.status_code: r.text for r in responses}
    assert len(stored) == 1
    assert {r.json()["id"] for r in responses} == {str(stored[0].id)}


def exactly_one_accepted(responses: list[httpx.Response], stored: list) -> int:
    """The index of the one 202 (the others are 422 naming the Idempotency-Key), which
    answers with the stored request."""
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [422] * (len(responses) - 1), {r.status_code: r.text for r in responses}
    refused = [r.json() for r in responses if r.status_code == 422]
    assert all("Idempotency-Key" in problem["errors"] for problem in refused)
    (winner,) = [i for i, r in enumerate(responses) if r.status_code == 202]
    assert len(stored) == 1 and responses[winner].json()["id"] == str(stored[0].id)
    return winner


# --- creates --------------------------------------------------------------------

def test_concurrent_identical_creates_make_one_request(web, client_key, db, admin_api: Api):
    # Given a provider,
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    body = {"provider_id": provider["id"], "customer_id": "c-1", "start": hours_from_now(26)}
    for key in fresh_keys("create"):
        # when many clients submit the same body under one Idempotency-Key at once,
        responses = race(web, client_key, "/v1/bookings", [body] * RACERS, key)

        # then one request is stored and every answer is that request.
        assert_one_request_for_all(responses, stored_requests(db, key))


def test_concurrent_creates_with_one_key_and_different_bodies_accept_exactly_one(
        web, client_key, db, admin_api: Api):
    # Given a provider,
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    bodies = [{"provider_id": provider["id"], "customer_id": f"c-{i}", "start": hours_from_now(26)}
              for i in range(RACERS)]
    for key in fresh_keys("create"):
        # when different bodies race under one Idempotency-Key,
        responses = race(web, client_key, "/v1/bookings", bodies, key)

        # then exactly one body is accepted and stored; the others are refused.
        stored = stored_requests(db, key)
        winner = exactly_one_accepted(responses, stored)
        assert stored[0].customer_id == bodies[winner]["customer_id"]


# --- reschedules and cancels ---------------------------------------------------------

@pytest.fixture
def booking(workers, admin_api: Api, client_api: Api) -> dict:
    """A confirmed booking of the client's, decided by real workers."""
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    decided = client_api.decided(client_api.submit(provider["id"], hours_from_now(26))["id"])
    assert decided["status"] == "succeeded", decided
    return decided["booking"]


CHANGES = {
    # kind: (the body of racer number i, whether a stored request holds that body)
    "reschedule": (lambda i: {"start": hours_from_now(30 + i)},
                   lambda body, row: row.start == datetime.fromisoformat(body["start"])),
    "cancel": (lambda i: {"reason": f"reason {i}"},
               lambda body, row: row.cancel_reason == body["reason"]),
}


@pytest.mark.parametrize("kind", CHANGES)
def test_concurrent_identical_changes_make_one_request(kind, web, client_key, db, booking):
    # Given a confirmed booking,
    change, _holds = CHANGES[kind]
    for key in fresh_keys(kind):
        # when many clients submit the same change under one Idempotency-Key at once,
        responses = race(web, client_key, f"/v1/bookings/{booking['id']}/{kind}",
                         [change(0)] * RACERS, key)

        # then one request of that kind is stored and every answer is that request.
        stored = stored_requests(db, key)
        assert_one_request_for_all(responses, stored)
        assert stored[0].kind == kind


@pytest.mark.parametrize("kind", CHANGES)
def test_concurrent_changes_with_one_key_and_different_bodies_accept_exactly_one(
        kind, web, client_key, db, booking):
    # Given a confirmed booking,
    change, holds = CHANGES[kind]
    bodies = [change(i) for i in range(RACERS)]
    for key in fresh_keys(kind):
        # when different changes race under one Idempotency-Key,
        responses = race(web, client_key, f"/v1/bookings/{booking['id']}/{kind}", bodies, key)

        # then exactly one is accepted and stored, and it is the body that was answered 202.
        stored = stored_requests(db, key)
        winner = exactly_one_accepted(responses, stored)
        assert stored[0].kind == kind and holds(bodies[winner], stored[0])
