"""?wait=N and `Prefer: wait=N` long-poll: queued when the wait ends, and answered within
WAKE_UP_BOUND_S of the decision while the client waits (the worker's published decision
wakes it; without that wake-up the answer would only come when the wait runs out)."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import Api, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
# The promise. `decided_at` is PostgreSQL's clock and the receipt this process's;
# in tests both run on this one host, so no skew needs allowing for.
WAKE_UP_BOUND_S = 2
LONG_WAIT_S = 30  # the longest wait allowed: a missed wake-up answers ~25 s too late


def tomorrow_on_the_hour() -> str:
    return (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)).isoformat()


@dataclass
class TimedAnswer:
    """A response and this host's wall-clock times at which it was asked for and received."""
    response: httpx.Response
    sent_at: datetime
    received_at: datetime

    def decided_at(self) -> datetime:
        return datetime.fromisoformat(self.response.json()["decided_at"])


class WaitingClient:
    """Sends one (long-polling) request on a thread, timing it, so the test can start the
    workers while the client waits."""

    def __init__(self, send: Callable[[], httpx.Response]):
        self._answers: list[TimedAnswer] = []
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], httpx.Response]) -> None:
        sent_at = datetime.now(UTC)
        response = send()
        self._answers.append(TimedAnswer(response, sent_at, datetime.now(UTC)))

    def answer(self) -> TimedAnswer:
        self._thread.join(timeout=LONG_WAIT_S + 30)
        assert self._answers, "the waiting client got no answer"
        return self._answers[0]


def answered_once_decided(waiting: WaitingClient) -> TimedAnswer:
    """Start real workers while `waiting` waits; its answer once they decided."""
    workers = start_workers(processes=1)
    try:
        return waiting.answer()
    finally:
        workers.stop()


def assert_woken_by_the_decision(answer: TimedAnswer) -> None:
    """The client was already waiting when the request was decided, and was answered
    within WAKE_UP_BOUND_S of it (not when its wait ran out)."""
    assert answer.response.json()["status"] == "succeeded"
    assert answer.sent_at < answer.decided_at(), "decided before the client asked: proves nothing"
    late_by = (answer.received_at - answer.decided_at()).total_seconds()
    assert late_by <= WAKE_UP_BOUND_S, f"answered {late_by:.1f} s after the decision"


def test_wait_ends_queued_without_workers(admin_api: Api, client_api: Api):
    # Given a queued request and no workers to decide it,
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    request = client_api.submit(provider["id"], tomorrow_on_the_hour())

    # when a client waits a second for it,
    began = time.monotonic()
    still_queued = client_api.http.get(f"/v1/booking-requests/{request['id']}", params={"wait": 1})
    waited = time.monotonic() - began

    # then the server held the answer for the whole second and says it is still queued.
    assert still_queued.json()["status"] == "queued"
    assert still_queued.headers["Retry-After"] == "1"
    assert waited >= 1


def test_waiting_poll_is_answered_within_two_seconds_of_the_decision(admin_api: Api, client_api: Api):
    # Given a queued request, and a client long-polling it before any worker runs,
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    request = client_api.submit(provider["id"], tomorrow_on_the_hour())
    url = f"/v1/booking-requests/{request['id']}"
    waiting = WaitingClient(lambda: client_api.http.get(url, params={"wait": LONG_WAIT_S}))

    # when workers start and decide it,
    answer = answered_once_decided(waiting)

    # then the waiting client is answered within two seconds of the decision.
    assert_woken_by_the_decision(answer)
    assert "Retry-After" not in answer.response.headers


def test_prefer_wait_submit_is_answered_within_two_seconds_of_the_decision(
        admin_api: Api, client_api: Api):
    # Given a client submitting with `Prefer: wait=30` while no worker runs,
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    body = {"provider_id": provider["id"], "customer_id": "c", "start": tomorrow_on_the_hour()}
    waiting = WaitingClient(lambda: client_api.http.post(
        "/v1/bookings", json=body, headers={"Prefer": f"wait={LONG_WAIT_S}"}))

    # when workers start and decide it,
    answer = answered_once_decided(waiting)

    # then the submit's own answer carries the decision, within two seconds of it.
    assert answer.response.status_code == 202
    assert answer.response.headers["Preference-Applied"] == f"wait={LONG_WAIT_S}"
    assert_woken_by_the_decision(answer)


def test_prefer_wait_ends_queued_without_workers_and_odd_preferences_are_ignored(
        admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    body = {"provider_id": provider["id"], "customer_id": "c", "start": tomorrow_on_the_hour()}

    waited = client_api.http.post("/v1/bookings", json=body, headers={"Prefer": "wait=1"})
    odd = client_api.http.post("/v1/bookings", json=body, headers={"Prefer": "wait=soon, lenient"})

    assert waited.status_code == 202 and waited.json()["status"] == "queued"
    assert waited.headers["Preference-Applied"] == "wait=1"
    assert waited.headers["Retry-After"] == "1"
    assert odd.status_code == 202 and "Preference-Applied" not in odd.headers
