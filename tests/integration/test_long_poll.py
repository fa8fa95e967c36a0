"""?wait=N long-polls: queued when the wait ends, decided as soon as a worker decides."""

import threading
import time
from datetime import UTC, datetime, timedelta

from tests.conftest import Api, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def tomorrow_on_the_hour() -> str:
    return (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)).isoformat()


def test_wait_ends_queued_without_workers_then_wakes_on_the_decision(admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    request = client_api.submit(provider["id"], tomorrow_on_the_hour())
    url = f"/v1/booking-requests/{request['id']}"

    began = time.monotonic()
    still_queued = client_api.http.get(url, params={"wait": 1})
    waited = time.monotonic() - began

    assert still_queued.json()["status"] == "queued"
    assert still_queued.headers["Retry-After"] == "1"
    assert waited >= 1  # it did wait: the server held the answer for the whole second

    answer = {}
    poller = threading.Thread(target=lambda: answer.update(
        client_api.http.get(url, params={"wait": 30}).json()))
    poller.start()
    workers = start_workers(processes=1)
    try:
        poller.join(timeout=60)
    finally:
        workers.stop()
    assert answer["status"] == "succeeded"
    assert "Retry-After" not in client_api.http.get(url).headers


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
