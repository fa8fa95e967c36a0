"""X-Request-Id through the API: echoed on every answer (errors included), and kept on
the booking request of every kind of submit, whatever the decision. (That the workers'
and the webhook sender's lines carry it: tests/integration/test_no_secrets_in_logs.py.)"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Api, auth

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MADE_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def an_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def nine_oclock_next_week(hours: int = 0) -> str:
    day = (datetime.now(BERLIN) + timedelta(days=7)).date()
    while day.weekday() != 2:  # a Wednesday: no clock change then
        day += timedelta(days=1)
    return (datetime(day.year, day.month, day.day, 9, tzinfo=BERLIN) + timedelta(hours=hours)).isoformat()


class Submitter:
    """Submits under an X-Request-Id of its own each time, and checks the 202 echoes it."""

    def __init__(self, api: Api):
        self.api = api

    def __call__(self, path: str, request_id: str, **body) -> dict:
        response = self.api.http.post(path, json=body, headers={"X-Request-Id": request_id})
        assert response.status_code == 202, response.text
        assert response.headers["X-Request-Id"] == request_id
        return self.api.decided(response.json()["id"])


@pytest.fixture
def provider_and_service(admin_api: Api) -> tuple[dict, dict]:
    service = admin_api.http.post("/v1/services", json={
        "name": "First visit", "duration_minutes": 60, "requires_confirmation": True}).json()
    schedule = {day: [{"start": "08:00", "end": "18:00"}] for day in WEEKDAYS}
    return admin_api.create_provider(weekly_schedule=schedule, service_ids=[service["id"]]), service


def test_every_kind_of_submit_keeps_its_request_id(workers, provider_and_service, admin_api: Api,
                                                   client_api: Api):
    provider, service = provider_and_service
    client, host = Submitter(client_api), Submitter(admin_api)
    slot = {"provider_id": provider["id"], "customer_id": "ann"}
    ids = {kind: an_id(kind) for kind in ("create", "reschedule", "cancel", "confirm_booking",
                                          "decline_booking", "hold", "confirm", "release")}

    created = client("/v1/bookings", ids["create"], **slot, start=nine_oclock_next_week())
    booking = created["booking"]["id"]
    moved = client(f"/v1/bookings/{booking}/reschedule", ids["reschedule"], start=nine_oclock_next_week(1))
    decided = [created, moved, client(f"/v1/bookings/{booking}/cancel", ids["cancel"], reason="ill")]
    pending = [client("/v1/bookings", an_id("pending"), **slot, start=nine_oclock_next_week(hours),
                      service_id=service["id"])["booking"]["id"] for hours in (2, 4)]
    decided += [host(f"/v1/bookings/{pending[0]}/confirm", ids["confirm_booking"]),
                host(f"/v1/bookings/{pending[1]}/decline", ids["decline_booking"])]
    holds = [client("/v1/holds", ids["hold"] if hours == 6 else an_id("hold"), **slot,
                    start=nine_oclock_next_week(hours)) for hours in (6, 7)]
    decided += [holds[0], client(f"/v1/holds/{holds[0]['hold_id']}/confirm", ids["confirm"]),
                client(f"/v1/holds/{holds[1]['hold_id']}/release", ids["release"])]

    assert {r["kind"]: (r["status"], r["request_id"]) for r in decided} == {
        kind: ("succeeded", request_id) for kind, request_id in ids.items()}
    listed = client_api.http.get("/v1/booking-requests", params={"limit": 100}).json()["items"]
    assert ids["create"] in {r["request_id"] for r in listed}


def test_a_submit_without_one_keeps_the_one_made(web, db, admin_api: Api):
    provider = admin_api.create_provider()
    response = admin_api.http.post("/v1/bookings", json={
        "provider_id": provider["id"], "customer_id": "c-1", "start": nine_oclock_next_week()})

    made = response.headers["X-Request-Id"]
    assert MADE_REQUEST_ID.fullmatch(made) and response.json()["request_id"] == made
    assert admin_api.http.get(f"/v1/booking-requests/{response.json()['id']}").json()["request_id"] == made


# (method, path, with a key, JSON body): an answer of each kind, errors included.
CALLS = {"404 no route": ("GET", "/v1/no-such-thing", True, None),
         "401 no key": ("GET", "/v1/bookings", False, None),
         "422": ("POST", "/v1/bookings", True, {}),
         "405": ("DELETE", "/v1/bookings", True, None),
         "404 no such request": ("GET", f"/v1/booking-requests/{uuid.uuid4()}", True, None),
         "415": ("POST", "/v1/bookings", True, "not json"),
         "200 outside /v1": ("GET", "/healthz", False, None)}


@pytest.mark.parametrize("name", CALLS)
def test_every_answer_echoes_the_request_id(http, admin_key, name):
    method, path, keyed, body = CALLS[name]
    headers = auth(admin_key) if keyed else {}
    given = an_id("any")

    content = {"data": body} if isinstance(body, str) else {"json": body}

    echoed = http.open(path, method=method, headers={**headers, "X-Request-Id": given}, **content)
    made = http.open(path, method=method, headers=headers, **content)

    assert echoed.headers["X-Request-Id"] == given
    assert MADE_REQUEST_ID.fullmatch(made.headers["X-Request-Id"])
    assert made.status_code == echoed.status_code == int(name.split(" ")[0])


@pytest.mark.parametrize(("given", "kept"), [
    ("a" * 200, True), ("a" * 201, False), ("", False), ("ok.id_1:2-3", True), ("tab\there", False),
    ("new\nline", False), ("quote\"d", False), ("slash/ed", False), ("\u00fcn\u00ef", False),
])
def test_only_a_sane_request_id_is_taken(http, given, kept):
    echoed = http.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": given}).headers["X-Request-Id"]

    assert (echoed == given) is kept
    assert kept or MADE_REQUEST_ID.fullmatch(echoed)
