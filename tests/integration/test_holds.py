"""Holds through the whole system (gunicorn, dramatiq workers, PostgreSQL, Redis): a
seat kept for a customer until it is confirmed into a booking, released, or expires.
Liveness is judged at a request's acceptance, so a paused worker changes no outcome.

This module runs its own decision workers (not the shared `workers` fixture) so that
one test can pause every decider there is."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook

from tests.conftest import Api, ProcessGroup, start_workers
from tests.integration.test_webhooks import Receiver

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OPEN_ALL_WEEK = {day: [{"start": "09:00", "end": "17:00"}] for day in WEEKDAYS}
MISSING = "00000000-0000-0000-0000-000000000000"
# How long after `expires_at` the sweeper may take to write `expired` before a test
# gives up: the contract is seconds; this only tells slow from never on a loaded machine.
EXPIRY_WITHIN_S = 15


@pytest.fixture(scope="module")
def deciders(stack) -> Iterator[ProcessGroup]:
    """The only decision workers while this module runs (a test pauses them all)."""
    group = start_workers()
    yield group
    group.stop()


@pytest.fixture
def senders(stack) -> Iterator[ProcessGroup]:
    group = start_workers(processes=1, queue="webhooks")
    yield group
    group.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def other_api(web, other_client_key) -> Api:
    return Api(web, other_client_key)


# --- helpers -----------------------------------------------------------------------

def ten_oclock_next_week() -> datetime:
    day = (datetime.now(BERLIN) + timedelta(days=7)).date()
    while day.weekday() != 2:  # a Wednesday: no clock change then
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=BERLIN)


def hourly_provider(admin: Api, **fields) -> dict:
    return admin.create_provider(weekly_schedule=OPEN_ALL_WEEK, slot_minutes=60, **fields)


def submit_hold(api: Api, provider_id: str, start: datetime, customer_id: str, **extra) -> dict:
    response = api.http.post("/v1/holds", json={
        "provider_id": provider_id, "customer_id": customer_id, "start": start.isoformat(), **extra})
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "hold"
    return response.json()


def held(api: Api, provider_id: str, start: datetime, customer_id: str, **extra) -> dict:
    """A hold that succeeded: the hold resource from its decided request."""
    decided = api.decided(submit_hold(api, provider_id, start, customer_id, **extra)["id"])
    assert decided["status"] == "succeeded", decided
    assert decided["hold_id"] == decided["hold"]["id"] and decided["hold"]["status"] == "held"
    return decided["hold"]


def submit_on_hold(api: Api, verb: str, hold_id: str, idempotency_key: str | None = None) -> dict:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    response = api.http.post(f"/v1/holds/{hold_id}/{verb}", json={}, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == verb
    return response.json()


def book(api: Api, provider_id: str, start: datetime, customer_id: str, **extra) -> dict:
    return api.submit(provider_id, start.isoformat(), customer_id=customer_id, **extra)


def status_of(api: Api, request: dict) -> str:
    return api.http.get(f"/v1/booking-requests/{request['id']}").json()["status"]


def outcome(decided: dict) -> str:
    return decided["status"] if decided["status"] != "rejected" else decided["reason"]["code"]


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def listed(api: Api, provider_id: str, day: datetime, service_id: str | None = None) -> dict:
    """{start: remaining seats} of the provider's slots that day."""
    params = {"date": day.date().isoformat(), **({"service_id": service_id} if service_id else {})}
    response = api.http.get(f"/v1/providers/{provider_id}/slots", params=params)
    assert response.status_code == 200, response.text
    return {instant(slot["start"]): slot["remaining"] for slot in response.json()["slots"]}


def hold_once(api: Api, hold_id: str, status: str, deadline: datetime) -> dict:
    """The hold as read once it has `status`, or as it is at `deadline` (wall clock).
    Polled: the expiry pass announces nothing a client could wait on."""
    while True:
        hold = api.http.get(f"/v1/holds/{hold_id}").json()
        if hold["status"] == status or datetime.now(UTC) >= deadline:
            return hold
        time.sleep(0.1)


def expired(api: Api, hold: dict) -> dict:
    """The hold once the expiry pass has written it `expired` (asserted)."""
    read = hold_once(api, hold["id"], "expired",
                     instant(hold["expires_at"]) + timedelta(seconds=EXPIRY_WITHIN_S))
    assert read["status"] == "expired", read
    return read


def sleep_past(moment: datetime) -> None:
    """Let the wall clock pass `moment` (a wait for time itself, nothing to await)."""
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.1)


@contextlib.contextmanager
def paused(group: ProcessGroup) -> Iterator[None]:
    """Every process of the group stopped (SIGSTOP), as by a GC pause or VM steal."""
    os.killpg(group.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group.process.pid, signal.SIGCONT)


def bookings_of(api: Api, provider_id: str) -> list[dict]:
    response = api.http.get("/v1/bookings", params={"provider_id": provider_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def assert_problem(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    if field:
        assert field in response.json()["errors"], response.json()


# --- the tests -----------------------------------------------------------------------

def test_fifty_racers_for_one_slot_make_one_hold_which_keeps_it_until_it_expires(
        deciders, db, admin_api: Api, client_api: Api, other_api: Api):
    provider = hourly_provider(admin_api)
    start = ten_oclock_next_week()

    # Given fifty holds for one slot from two client applications at once,
    racers = [client_api, other_api] * 25
    with ThreadPoolExecutor(max_workers=25) as pool:
        submitted = list(pool.map(lambda i: submit_hold(racers[i], provider["id"], start, f"c-{i}",
                                                        ttl_seconds=6), range(50)))
        decided = list(pool.map(lambda i: racers[i].decided(submitted[i]["id"]), range(50)))

    # then exactly one holds it and every other is told the slot is taken,
    winners = [r for r in decided if r["status"] == "succeeded"]
    assert len(winners) == 1
    assert sorted(outcome(r) for r in decided if r is not winners[0]) == ["slot_unavailable"] * 49
    hold = winners[0]["hold"]
    assert (instant(hold["start"]), hold["status"]) == (start, "held")
    with db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM bookings WHERE provider_id = :p"),
                           {"p": provider["id"]}) == 1

    # a third application's create while it is held loses, and the slot is not listed;
    during = admin_api.decided(book(admin_api, provider["id"], start, "walk-in")["id"])
    assert instant(during["created_at"]) < instant(hold["expires_at"])
    assert outcome(during) == "slot_unavailable"
    assert start not in listed(admin_api, provider["id"], start)

    # once the hold has expired, the slot is listed again and a create wins it.
    holder = racers[decided.index(winners[0])]
    assert expired(holder, hold)["booking_id"] is None
    assert listed(admin_api, provider["id"], start)[start] == 1
    after = admin_api.decided(book(admin_api, provider["id"], start, "walk-in")["id"])
    assert outcome(after) == "succeeded"


def test_a_confirm_is_judged_at_its_acceptance_however_late_a_paused_worker_decides_it(
        deciders, db, admin_api: Api, client_api: Api, other_api: Api):
    provider = hourly_provider(admin_api)
    ten = ten_oclock_next_week()
    noon = ten.replace(hour=12)
    # Given two short holds,
    early = held(client_api, provider["id"], ten, "ann", ttl_seconds=3)
    late = held(client_api, provider["id"], noon, "bob", ttl_seconds=3)

    # when every decision worker is paused, one hold is confirmed before it expires, and
    # after both expired the other is confirmed and another client books both slots,
    with paused(deciders):
        confirm_in_time = submit_on_hold(client_api, "confirm", early["id"])
        sleep_past(max(instant(early["expires_at"]), instant(late["expires_at"])))
        noon_listed = noon in listed(other_api, provider["id"], noon)
        confirm_too_late = submit_on_hold(client_api, "confirm", late["id"])
        create_ten, create_noon = (book(other_api, provider["id"], start, "cy") for start in (ten, noon))
        queued = [status_of(client_api, confirm_in_time), status_of(client_api, confirm_too_late),
                  status_of(other_api, create_ten), status_of(other_api, create_noon)]

    # (all accepted on the side of the expiry they were meant to be, and decided after it)
    assert instant(confirm_in_time["created_at"]) < instant(early["expires_at"])
    assert instant(confirm_too_late["created_at"]) >= instant(late["expires_at"])
    assert instant(create_ten["created_at"]) >= instant(early["expires_at"])
    assert queued == ["queued"] * 4

    # then the confirm accepted in time is a booking with the hold's id,
    confirmed = client_api.decided(confirm_in_time["id"])
    assert outcome(confirmed) == "succeeded", confirmed
    assert instant(confirmed["decided_at"]) > instant(early["expires_at"])
    assert confirmed["hold_id"] == confirmed["booking_id"] == confirmed["booking"]["id"] == early["id"]
    assert (confirmed["booking"]["status"], confirmed["hold"]["status"]) == ("confirmed", "confirmed")
    # so the create accepted after that hold's expiry finds the slot booked;
    assert outcome(other_api.decided(create_ten["id"])) == "slot_unavailable"
    # the confirm accepted after the other hold's expiry is too late, and that seat was
    # anyone's from its expiry on (listed at once, won by the create).
    assert outcome(client_api.decided(confirm_too_late["id"])) == "hold_expired"
    assert noon_listed
    assert outcome(other_api.decided(create_noon["id"])) == "succeeded"
    assert expired(client_api, late)["booking_id"] is None
    assert len(bookings_of(admin_api, provider["id"])) == 2


def test_the_expiry_pass_leaves_a_hold_alone_while_a_confirm_accepted_in_time_is_queued(
        deciders, senders, db, admin_api: Api, client_api: Api):
    ten = ten_oclock_next_week()
    provider, elsewhere = hourly_provider(admin_api), hourly_provider(admin_api, name="Dr. Bea")
    hold = held(client_api, provider["id"], ten, "ann", ttl_seconds=3)
    witness = held(client_api, elsewhere["id"], ten, "bob", ttl_seconds=3)  # expires after `hold`

    # Given decision workers paused with a confirm accepted before the hold expired, and
    # webhook workers (which run the expiry pass too) still running,
    with paused(deciders):
        confirm = submit_on_hold(client_api, "confirm", hold["id"])
        # when the pass has expired a hold that expired later (so it has looked at both),
        expired(client_api, witness)
        # then the hold with a confirm in the queue still reads held,
        assert client_api.http.get(f"/v1/holds/{hold['id']}").json()["status"] == "held"

    # and the confirm succeeds once decided.
    assert instant(confirm["created_at"]) < instant(hold["expires_at"]) <= instant(witness["expires_at"])
    assert outcome(client_api.decided(confirm["id"])) == "succeeded"


def test_a_released_hold_frees_its_seat_and_cannot_be_confirmed(deciders, db, admin_api: Api,
                                                                client_api: Api):
    provider = hourly_provider(admin_api)
    start = ten_oclock_next_week()
    hold = held(client_api, provider["id"], start, "ann")
    assert start not in listed(client_api, provider["id"], start)

    released = client_api.decided(submit_on_hold(client_api, "release", hold["id"])["id"])

    assert outcome(released) == "succeeded"
    assert client_api.http.get(f"/v1/holds/{hold['id']}").json()["status"] == "released"
    assert listed(client_api, provider["id"], start)[start] == 1
    confirm = client_api.decided(submit_on_hold(client_api, "confirm", hold["id"])["id"])
    assert outcome(confirm) == "hold_not_active"
    assert bookings_of(client_api, provider["id"]) == []


def test_a_confirm_sent_twice_with_one_key_makes_one_booking_and_a_later_confirm_is_not_active(
        deciders, db, admin_api: Api, client_api: Api):
    provider = hourly_provider(admin_api)
    hold = held(client_api, provider["id"], ten_oclock_next_week(), "ann")

    # When a confirm is sent twice with one Idempotency-Key (a retry after a lost answer),
    first = submit_on_hold(client_api, "confirm", hold["id"], idempotency_key="confirm-ann-1")
    again = submit_on_hold(client_api, "confirm", hold["id"], idempotency_key="confirm-ann-1")

    # then it is one request, which makes one booking with the hold's id,
    assert again["id"] == first["id"]
    decided = client_api.decided(first["id"])
    assert outcome(decided) == "succeeded"
    assert decided["booking"]["id"] == hold["id"]
    assert [b["id"] for b in bookings_of(client_api, provider["id"])] == [hold["id"]]
    # and a confirm under another key finds the hold no longer active.
    other = submit_on_hold(client_api, "confirm", hold["id"], idempotency_key="confirm-ann-2")
    assert other["id"] != first["id"]
    assert outcome(client_api.decided(other["id"])) == "hold_not_active"
    read = client_api.http.get(f"/v1/holds/{hold['id']}").json()
    assert (read["status"], read["booking_id"]) == ("confirmed", hold["id"])
    assert len(bookings_of(client_api, provider["id"])) == 1


def test_holds_take_seats_of_a_session_and_an_expired_one_gives_its_seat_back(
        deciders, db, admin_api: Api, client_api: Api):
    group = admin_api.http.post("/v1/services", json={"name": "Group class", "duration_minutes": 60,
                                                      "capacity": 3})
    assert group.status_code == 201, group.text
    service_id = group.json()["id"]
    provider = admin_api.create_provider(weekly_schedule=OPEN_ALL_WEEK, service_ids=[service_id])
    start = ten_oclock_next_week()

    # Given two live holds in a three-seat session, one of them short,
    long_hold = held(client_api, provider["id"], start, "ann", service_id=service_id)
    short_hold = held(client_api, provider["id"], start, "bob", service_id=service_id, ttl_seconds=5)
    assert listed(client_api, provider["id"], start, service_id)[start] == 1

    # when a holder asks to book it as well, and two other customers race for the last seat,
    own = book(client_api, provider["id"], start, "ann", service_id=service_id)
    creates = [book(client_api, provider["id"], start, customer, service_id=service_id)
               for customer in ("cy", "dee")]

    # then the holder is already in the session, one wins the seat and the other finds it taken;
    assert all(instant(r["created_at"]) < instant(short_hold["expires_at"]) for r in creates)
    assert outcome(client_api.decided(own["id"])) == "already_booked"
    outcomes = [outcome(client_api.decided(r["id"])) for r in creates]
    assert sorted(outcomes) == ["slot_unavailable", "succeeded"]
    assert start not in listed(client_api, provider["id"], start, service_id)

    # once the short hold expires its seat is listed and won; the long one holds on.
    expired(client_api, short_hold)
    assert listed(client_api, provider["id"], start, service_id)[start] == 1
    loser = ("cy", "dee")[outcomes.index("slot_unavailable")]
    retry = client_api.decided(book(client_api, provider["id"], start, loser, service_id=service_id)["id"])
    assert outcome(retry) == "succeeded"
    assert start not in listed(client_api, provider["id"], start, service_id)
    assert client_api.http.get(f"/v1/holds/{long_hold['id']}").json()["status"] == "held"


def test_another_client_cannot_see_confirm_or_release_a_hold_but_an_admin_can_read_it(
        deciders, db, admin_api: Api, client_api: Api, other_api: Api):
    provider = hourly_provider(admin_api)
    hold = held(client_api, provider["id"], ten_oclock_next_week(), "ann")

    assert_problem(other_api.http.get(f"/v1/holds/{hold['id']}"), 404)
    for verb in ("confirm", "release"):
        assert_problem(other_api.http.post(f"/v1/holds/{hold['id']}/{verb}", json={}), 404)

    as_admin = admin_api.http.get(f"/v1/holds/{hold['id']}")
    assert as_admin.status_code == 200
    assert (as_admin.json()["id"], as_admin.json()["status"]) == (hold["id"], "held")


def test_an_expired_hold_is_announced_to_a_subscribed_endpoint(deciders, senders, db, web,
                                                              admin_api: Api, receiver: Receiver):
    created = admin_api.http.post("/v1/api-keys", json={"name": "shop", "role": "client"}).json()
    shop = Api(web, created["key"])
    endpoint = shop.http.post("/v1/webhook-endpoints", json={"url": receiver.url, "events": ["hold.expired"]})
    assert endpoint.status_code == 201, endpoint.text
    provider = hourly_provider(admin_api)

    hold = held(shop, provider["id"], ten_oclock_next_week(), "ann", ttl_seconds=2)

    delivered = receiver.wait_for(1, timeout=EXPIRY_WITHIN_S + 15)[0]
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert delivered["headers"].get(header), delivered["headers"]
    event = Webhook(created["webhook_secret"]).verify(delivered["body"], delivered["headers"])
    assert event["type"] == "hold.expired"
    assert (event["data"]["id"], event["data"]["status"]) == (hold["id"], "expired")
    assert shop.http.get(f"/v1/holds/{hold['id']}").json()["status"] == "expired"


@pytest.mark.parametrize("ttl_seconds", [0, -1, 3601, "ten"])
def test_a_hold_outside_its_time_bounds_is_refused_naming_ttl_seconds(db, web, admin_api: Api,
                                                                     client_api: Api, ttl_seconds):
    provider = hourly_provider(admin_api)
    response = client_api.http.post("/v1/holds", json={
        "provider_id": provider["id"], "customer_id": "ann", "start": ten_oclock_next_week().isoformat(),
        "ttl_seconds": ttl_seconds})
    assert_problem(response, 422, "ttl_seconds")


def test_a_hold_of_an_unknown_provider_or_a_confirm_of_an_unknown_hold_is_refused(db, web, client_api: Api):
    response = client_api.http.post("/v1/holds", json={
        "provider_id": MISSING, "customer_id": "ann", "start": ten_oclock_next_week().isoformat()})
    assert_problem(response, 422, "provider_id")
    assert_problem(client_api.http.post(f"/v1/holds/{MISSING}/confirm", json={}), 404)
