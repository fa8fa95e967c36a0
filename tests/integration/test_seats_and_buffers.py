"""Services with buffers and seats, through the whole system: HTTP, two dramatiq worker
processes, PostgreSQL. What a listing offers, a create wins; seats never overfill."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.conftest import Api

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def day_in_a_week() -> datetime:
    """Local midnight of a day a week ahead, a Wednesday (no clock change in Berlin then)."""
    day = (datetime.now(BERLIN) + timedelta(days=7)).date()
    while day.weekday() != 2:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN)


def at(day: datetime, hh_mm: str) -> datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return day.replace(hour=hours, minute=minutes)


def create_service(api: Api, **fields) -> dict:
    response = api.http.post("/v1/services", json={"name": "Service", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def provider_offering(api: Api, *services: dict, hours=("09:00", "13:00")) -> dict:
    schedule = {day: [{"start": hours[0], "end": hours[1]}] for day in WEEKDAYS}
    return api.create_provider(weekly_schedule=schedule, service_ids=[s["id"] for s in services])


def listed_starts(api: Api, provider: dict, service: dict, day: datetime) -> list[datetime]:
    response = api.http.get(f"/v1/providers/{provider['id']}/slots",
                            params={"date": day.date().isoformat(), "service_id": service["id"]})
    assert response.status_code == 200, response.text
    return [datetime.fromisoformat(slot["start"]) for slot in response.json()["slots"]]


def book(api: Api, provider: dict, service: dict, start: datetime, customer: str = "c-1") -> dict:
    request = api.submit(provider["id"], start.isoformat(), customer_id=customer, service_id=service["id"])
    return api.decided(request["id"])


def outcome(decided: dict) -> str:
    return decided["status"] if decided["status"] == "succeeded" else decided["reason"]["code"]


def allowed_starts(day: datetime, duration: int, step: int, after: int, taken: list[tuple]) -> list:
    """The rule, by hand: a start on the step grid from 09:00 whose appointment ends by
    13:00 and whose occupied time [start, end + after) overlaps no taken interval."""
    starts, start = [], at(day, "09:00")
    while start + timedelta(minutes=duration) <= at(day, "13:00"):
        occupied = (start, start + timedelta(minutes=duration + after))
        if not any(occupied[0] < end and begin < occupied[1] for begin, end in taken):
            starts.append(start)
        start += timedelta(minutes=step)
    return starts


def test_buffers_keep_the_listing_and_the_decisions_apart(workers, admin_api: Api, client_api: Api):
    # Given a 45-minute consultation with 10 minutes to clean up after, booked at 10:00,
    consultation = create_service(admin_api, duration_minutes=45, step_minutes=15, buffer_after_minutes=10)
    provider = provider_offering(admin_api, consultation)
    day = day_in_a_week()
    assert outcome(book(client_api, provider, consultation, at(day, "10:00"))) == "succeeded"

    # the listing shows exactly the starts whose time with buffer clears 10:00-10:55,
    listed = listed_starts(client_api, provider, consultation, day)
    assert listed == allowed_starts(day, 45, 15, 10, [(at(day, "10:00"), at(day, "10:55"))])
    assert at(day, "11:00") in listed and at(day, "10:45") not in listed

    # and a create inside the buffer, or one whose own buffer reaches the booking, loses.
    assert outcome(book(client_api, provider, consultation, at(day, "10:45"), "c-2")) == "slot_unavailable"
    assert outcome(book(client_api, provider, consultation, at(day, "09:15"), "c-3")) == "slot_unavailable"
    assert outcome(book(client_api, provider, consultation, listed[0], "c-4")) == "succeeded"


def test_two_services_with_different_buffers_share_one_calendar(workers, admin_api: Api, client_api: Api):
    # Given a 60-minute lesson with 30 minutes after, and a 30-minute check-up needing 15 before,
    lesson = create_service(admin_api, duration_minutes=60, step_minutes=30, buffer_after_minutes=30)
    checkup = create_service(admin_api, duration_minutes=30, step_minutes=15, buffer_before_minutes=15)
    provider = provider_offering(admin_api, lesson, checkup)
    day = day_in_a_week()
    assert outcome(book(client_api, provider, lesson, at(day, "09:00"))) == "succeeded"  # holds 09:00-10:30

    # the check-up's listing starts once its 15 minutes before clear the lesson's buffer,
    assert listed_starts(client_api, provider, checkup, day)[0] == at(day, "10:45")
    # a check-up at 10:30 would need 10:15, inside the lesson's buffer; at 10:45 it fits;
    assert outcome(book(client_api, provider, checkup, at(day, "10:30"), "c-2")) == "slot_unavailable"
    assert outcome(book(client_api, provider, checkup, at(day, "10:45"), "c-3")) == "succeeded"
    # and the lesson's next start clears the check-up with its own buffer.
    assert listed_starts(client_api, provider, lesson, day)[0] == at(day, "11:30")


def test_twenty_racers_for_a_three_seat_class_the_first_three_accepted_win(workers, db, admin_api: Api,
                                                                           client_api: Api):
    yoga = create_service(admin_api, duration_minutes=60, capacity=3)
    provider = provider_offering(admin_api, yoga)
    start = at(day_in_a_week(), "10:00")

    with ThreadPoolExecutor(max_workers=20) as pool:
        submitted = list(pool.map(
            lambda i: client_api.submit(provider["id"], start.isoformat(), customer_id=f"c-{i}",
                                        service_id=yoga["id"]), range(20)))
        decided = list(pool.map(lambda r: client_api.decided(r["id"]), submitted))

    winners = {r["id"] for r in decided if r["status"] == "succeeded"}
    assert {outcome(r) for r in decided if r["id"] not in winners} == {"slot_unavailable"}
    with db.connect() as conn:
        first_accepted = set(conn.scalars(text(
            "SELECT id::text FROM booking_requests WHERE provider_id = :p ORDER BY seq LIMIT 3"),
            {"p": provider["id"]}))
        live, seats = conn.execute(text(
            "SELECT (SELECT count(*) FROM bookings b WHERE b.session_id = s.id AND b.status = 'confirmed'), "
            "s.seats_taken FROM sessions s WHERE s.provider_id = :p"), {"p": provider["id"]}).one()
    assert winners == first_accepted
    assert (live, seats) == (3, 3)
    assert listed_starts(client_api, provider, yoga, start.replace(hour=0)).count(start) == 0


def test_a_customer_takes_one_seat_and_a_cancelled_seat_is_taken_again(workers, admin_api: Api,
                                                                       client_api: Api):
    yoga = create_service(admin_api, duration_minutes=60, capacity=3)
    provider = provider_offering(admin_api, yoga)
    day = day_in_a_week()
    start = at(day, "10:00")
    first = book(client_api, provider, yoga, start, "ann")

    assert outcome(book(client_api, provider, yoga, start, "ann")) == "already_booked"
    slot = {datetime.fromisoformat(s["start"]): s["remaining"] for s in client_api.http.get(
        f"/v1/providers/{provider['id']}/slots",
        params={"date": day.date().isoformat(), "service_id": yoga["id"]}).json()["slots"]}
    assert slot[start] == 2
    for customer in ("bob", "cy"):
        assert outcome(book(client_api, provider, yoga, start, customer)) == "succeeded"
    assert outcome(book(client_api, provider, yoga, start, "dee")) == "slot_unavailable"

    cancel = client_api.http.post(f"/v1/bookings/{first['booking']['id']}/cancel", json={})
    assert outcome(client_api.decided(cancel.json()["id"])) == "succeeded"
    assert outcome(book(client_api, provider, yoga, start, "dee")) == "succeeded"
