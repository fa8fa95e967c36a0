"""Host confirmation through the whole system (HTTP, dramatiq workers, PostgreSQL): a
service that requires it makes pending bookings, which hold their seat until the host
confirms or declines them, in order with everything else."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.conftest import Api

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def ten_oclock_next_week() -> datetime:
    day = (datetime.now(BERLIN) + timedelta(days=7)).date()
    while day.weekday() != 2:  # a Wednesday: no clock change then
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, tzinfo=BERLIN)


def approved_provider(admin: Api) -> tuple[dict, dict]:
    service = admin.http.post("/v1/services", json={
        "name": "First visit", "duration_minutes": 60, "step_minutes": 30,
        "requires_confirmation": True}).json()
    schedule = {day: [{"start": "09:00", "end": "17:00"}] for day in WEEKDAYS}
    return admin.create_provider(weekly_schedule=schedule, service_ids=[service["id"]]), service


def outcome(decided: dict) -> str:
    return decided["status"] if decided["status"] == "succeeded" else decided["reason"]["code"]


def host(admin: Api, verb: str, booking_id: str, **body) -> dict:
    response = admin.http.post(f"/v1/bookings/{booking_id}/{verb}", json=body)
    assert response.status_code == 202, response.text
    return admin.decided(response.json()["id"])


def test_fifty_racers_for_a_confirmation_slot_make_one_pending_booking(workers, db, admin_api: Api,
                                                                       client_api: Api):
    provider, service = approved_provider(admin_api)
    start = ten_oclock_next_week()

    with ThreadPoolExecutor(max_workers=25) as pool:
        submitted = list(pool.map(lambda i: client_api.submit(
            provider["id"], (start + timedelta(minutes=30 * (i % 2))).isoformat(), customer_id=f"c-{i}",
            service_id=service["id"]), range(50)))
        decided = list(pool.map(lambda r: client_api.decided(r["id"]), submitted))

    # 10:00 and 10:30 overlap (an hour each): one pending booking between them, no more.
    winners = [r for r in decided if r["status"] == "succeeded"]
    assert len(winners) == 1 and winners[0]["booking"]["status"] == "pending"
    assert {outcome(r) for r in decided if r is not winners[0]} == {"slot_unavailable"}
    with db.connect() as conn:
        overlapping = conn.scalar(text(
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.id < b.id AND a.period && b.period "
            "WHERE a.provider_id = :p AND b.provider_id = :p "
            "AND a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed')"),
            {"p": provider["id"]})
    assert overlapping == 0


def test_the_host_confirms_or_declines_in_order_and_endpoints_hear_of_it(workers, db, admin_api: Api,
                                                                         client_api: Api):
    provider, service = approved_provider(admin_api)
    # the client's own endpoint: the host's confirm is an admin's request about its booking
    endpoint = client_api.http.post("/v1/webhook-endpoints", json={
        "url": "https://hooks.example.com/bookings",
        "events": ["booking.pending", "booking.confirmed", "booking.declined"]}).json()
    start = ten_oclock_next_week()
    first = client_api.decided(client_api.submit(provider["id"], start.isoformat(), customer_id="ann",
                                                 service_id=service["id"])["id"])
    booking_id = first["booking"]["id"]
    assert first["booking"]["status"] == "pending"

    # Confirmed once; a second confirm, or a decline after it, is not pending any more.
    assert outcome(host(admin_api, "confirm", booking_id)) == "succeeded"
    assert outcome(host(admin_api, "confirm", booking_id)) == "booking_not_pending"
    assert outcome(host(admin_api, "decline", booking_id)) == "booking_not_pending"
    assert client_api.http.get(f"/v1/bookings/{booking_id}").json()["status"] == "confirmed"

    # A second pending booking, declined: its slot is free for the next create.
    later = start + timedelta(hours=2)
    second = client_api.decided(client_api.submit(provider["id"], later.isoformat(), customer_id="bob",
                                                  service_id=service["id"])["id"])
    declined = host(admin_api, "decline", second["booking"]["id"], reason="fully booked that week")
    assert outcome(declined) == "succeeded"
    booking = client_api.http.get(f"/v1/bookings/{second['booking']['id']}").json()
    assert (booking["status"], booking["cancel_reason"]) == ("declined", "fully booked that week")
    assert outcome(client_api.decided(client_api.submit(
        provider["id"], later.isoformat(), customer_id="cy", service_id=service["id"])["id"])) == "succeeded"

    with db.connect() as conn:
        events = conn.scalars(text(
            "SELECT d.event_type FROM webhook_deliveries d JOIN booking_requests r ON r.id = d.request_id "
            "WHERE d.endpoint_id = :e ORDER BY r.seq"), {"e": endpoint["id"]}).all()
    assert events == ["booking.pending", "booking.confirmed", "booking.pending", "booking.declined",
                      "booking.pending"]


def test_only_an_admin_speaks_for_the_host(workers, admin_api: Api, client_api: Api):
    provider, service = approved_provider(admin_api)
    first = client_api.decided(client_api.submit(provider["id"], ten_oclock_next_week().isoformat(),
                                                 service_id=service["id"])["id"])

    refused = client_api.http.post(f"/v1/bookings/{first['booking']['id']}/confirm", json={})

    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
