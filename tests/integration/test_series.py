"""Recurring series through the whole system (HTTP, dramatiq workers, PostgreSQL): the
occurrences of a series are decided together, all or nothing, each at the same
provider-local wall time, and each becomes a booking of its own."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.conftest import Api

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY_DAY = {day: [{"start": "09:00", "end": "17:00"}] for day in WEEKDAYS}


def open_every_day(admin: Api, timezone: str = "Europe/Berlin", max_advance_days: int = 365) -> dict:
    return admin.create_provider(timezone=timezone, weekly_schedule=EVERY_DAY, slot_minutes=60,
                                 max_advance_days=max_advance_days)


def ten_oclock_next_week() -> datetime:
    day = (datetime.now(BERLIN) + timedelta(days=7)).date()
    while day.weekday() != 2:  # a Wednesday
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=BERLIN)


def before_the_next_spring_forward() -> datetime:
    """09:00 New York time on the Tuesday 12 days before the next US spring-forward Sunday
    (the second Sunday of March): 2027-03-02 for 2027-03-14. Weekly, the first two
    occurrences fall before the change, the next two after it."""
    today = datetime.now(NEW_YORK).date()
    for year in (today.year, today.year + 1):
        sunday = date(year, 3, 8) + timedelta(days=(6 - date(year, 3, 8).weekday()) % 7)
        tuesday = sunday - timedelta(days=12)
        if tuesday > today + timedelta(days=1):
            return datetime(tuesday.year, tuesday.month, tuesday.day, 9, tzinfo=NEW_YORK)
    raise AssertionError("unreachable")


def weekly(count: int, **more) -> dict:
    return {"frequency": "weekly", "count": count, **more}


def book(api: Api, provider: dict, start: datetime, customer: str = "ann", **extra) -> dict:
    return api.decided(api.submit(provider["id"], start.isoformat(), customer_id=customer, **extra)["id"])


def wall_clock(bookings: list[dict]) -> list[datetime]:
    return [datetime.fromisoformat(b["start"]).replace(tzinfo=None) for b in bookings]


def series_bookings(api: Api, series_id: str) -> list[dict]:
    response = api.http.get("/v1/bookings", params={"series_id": series_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def customers_booked(db, provider: dict) -> list[str]:
    with db.connect() as conn:
        return sorted(conn.scalars(text("SELECT customer_id FROM bookings WHERE provider_id = :p"),
                                   {"p": provider["id"]}))


def test_ten_weekly_occurrences_are_decided_all_or_nothing(workers, db, admin_api: Api, client_api: Api):
    # Given a provider whose fourth Wednesday from next week is already booked by bob,
    provider = open_every_day(admin_api)
    start = ten_oclock_next_week()
    taken = start + timedelta(weeks=3)
    single = book(client_api, provider, taken, customer="bob")
    assert single["status"] == "succeeded", single
    assert single["bookings"] is None and single["booking"]["series_id"] is None

    # When ann asks for ten weekly occurrences from next week,
    rejected = book(client_api, provider, start, recurrence=weekly(10))

    # Then the whole series is rejected naming week 4 (index 3), and none of it is written.
    assert rejected["status"] == "rejected", rejected
    assert rejected["reason"]["code"] == "slot_unavailable" and rejected["reason"]["message"]
    assert rejected["reason"]["occurrence"]["index"] == 3
    failed_at = datetime.fromisoformat(rejected["reason"]["occurrence"]["start"])
    assert (failed_at, failed_at.utcoffset()) == (taken, taken.utcoffset())
    assert customers_booked(db, provider) == ["bob"]

    # When she asks for the same series from the week after bob's, every week free,
    first = taken + timedelta(weeks=1)
    decided = book(client_api, provider, first, recurrence=weekly(10, interval=1))

    # Then ten confirmed bookings, a week apart at 10:00 local, share the request's id as series,
    assert decided["status"] == "succeeded", decided
    bookings = decided["bookings"]
    assert len(bookings) == 10 and decided["booking"]["id"] == bookings[0]["id"]
    assert {b["series_id"] for b in bookings} == {decided["id"]}
    assert wall_clock(bookings) == [first.replace(tzinfo=None) + timedelta(weeks=k) for k in range(10)]
    assert [b["status"] for b in bookings] == ["confirmed"] * 10
    assert customers_booked(db, provider) == ["ann"] * 10 + ["bob"]
    # and the series is listed by its id, in start order.
    assert [b["id"] for b in series_bookings(client_api, decided["id"])] == [b["id"] for b in bookings]

    # When one occurrence is cancelled, the other nine stand.
    cancel = client_api.http.post(f"/v1/bookings/{bookings[4]['id']}/cancel", json={})
    assert cancel.status_code == 202, cancel.text
    assert client_api.decided(cancel.json()["id"])["status"] == "succeeded"
    listed = series_bookings(client_api, decided["id"])
    assert [b["status"] for b in listed] == ["confirmed"] * 4 + ["cancelled"] + ["confirmed"] * 5


def test_a_weekly_series_keeps_nine_oclock_across_the_new_york_clock_change(workers, admin_api: Api,
                                                                            client_api: Api):
    # Given a New York provider open on Tuesdays, and 09:00 on the Tuesday 12 days before
    # clocks spring forward (400 days of advance: the next change may be ~13 months away),
    provider = open_every_day(admin_api, "America/New_York", max_advance_days=400)
    first = before_the_next_spring_forward()

    # When four weekly occurrences are booked from there,
    decided = book(client_api, provider, first, recurrence=weekly(4, interval=1))

    # Then each is at 09:00 local: at -05:00 before the change and at -04:00 after it.
    assert decided["status"] == "succeeded", decided
    bookings = decided["bookings"]
    assert wall_clock(bookings) == [first.replace(tzinfo=None) + timedelta(weeks=k) for k in range(4)]
    offsets = [datetime.fromisoformat(b["start"]).utcoffset() for b in bookings]
    assert offsets == [timedelta(hours=-5)] * 2 + [timedelta(hours=-4)] * 2
    assert wall_clock(series_bookings(client_api, decided["id"])) == wall_clock(bookings)


@pytest.mark.parametrize("recurrence", [
    weekly(1),
    weekly(53),
    {"frequency": "monthly", "count": 4},
    weekly(4, interval=0),
    weekly(4, interval=53),
])
def test_a_bad_recurrence_is_refused_and_named(admin_api: Api, client_api: Api, recurrence):
    provider = open_every_day(admin_api)

    response = client_api.http.post("/v1/bookings", json={
        "provider_id": provider["id"], "customer_id": "ann",
        "start": ten_oclock_next_week().isoformat(), "recurrence": recurrence})

    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    named = response.json()["errors"]
    assert any(name == "recurrence" or name.startswith("recurrence.") for name in named), named


def test_a_series_is_announced_booking_by_booking_and_replays_whole(workers, db, admin_api: Api,
                                                                    client_api: Api):
    # Given a client listening for new bookings,
    provider = open_every_day(admin_api)
    endpoint = client_api.http.post("/v1/webhook-endpoints", json={
        "url": "https://hooks.example.com/bookings", "events": ["booking.confirmed"]}).json()
    body = {"provider_id": provider["id"], "customer_id": "ann", "start": ten_oclock_next_week().isoformat(),
            "recurrence": weekly(3)}

    # when it books a series of three, then sends the same request again,
    first = client_api.http.post("/v1/bookings", json=body, headers={"Idempotency-Key": "series-1"}).json()
    decided = client_api.decided(first["id"])
    again = client_api.http.post("/v1/bookings", json=body, headers={"Idempotency-Key": "series-1"}).json()

    # then each booking is announced once, and the replay is the same request with all three.
    with db.connect() as conn:
        announced = conn.scalars(text(
            "SELECT payload::jsonb -> 'data' ->> 'id' FROM webhook_deliveries WHERE endpoint_id = :e"),
            {"e": endpoint["id"]}).all()
    assert sorted(announced) == sorted(b["id"] for b in decided["bookings"])
    assert again["id"] == first["id"]
    assert [b["id"] for b in again["bookings"]] == [b["id"] for b in decided["bookings"]]
