"""Submit → decide → poll through gunicorn and real dramatiq workers."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import Api, auth

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_9_TO_17 = {day: [{"start": "09:00", "end": "17:00"}]
                    for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}


def next_weekday_at(hour: int, zone=BERLIN, days_ahead: int = 7) -> datetime:
    day = (datetime.now(zone) + timedelta(days=days_ahead)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone)


def test_a_booking_is_accepted_then_confirmed(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    start = next_weekday_at(10)

    accepted = client_api.http.post("/v1/bookings", json={
        "provider_id": provider["id"], "customer_id": "patient-7", "start": start.isoformat()})

    assert accepted.status_code == 202
    assert accepted.headers["Location"] == f"/v1/booking-requests/{accepted.json()['id']}"
    assert accepted.headers["Retry-After"] == "1"
    assert accepted.json()["status"] == "queued"
    decided = client_api.decided(accepted.json()["id"])
    assert decided["status"] == "succeeded"
    assert decided["booking"]["start"] == start.isoformat()
    assert decided["booking"]["status"] == "confirmed"
    assert decided["decided_at"] is not None


def test_times_come_back_in_the_provider_offset(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    start = next_weekday_at(11)

    request = client_api.submit(provider["id"], start.astimezone(UTC).isoformat())

    assert request["start"] == start.isoformat()  # +01:00 or +02:00, not Z
    assert client_api.decided(request["id"])["status"] == "succeeded"


def test_rejections_carry_reason_codes(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17, max_advance_days=30)
    monday = next_weekday_at(9)
    cases = {
        "outside_working_hours": monday.replace(hour=20),
        "not_on_slot_grid": monday.replace(minute=10),
        "too_soon": datetime.now(BERLIN).replace(microsecond=0) - timedelta(days=1),
        "too_far": next_weekday_at(10, days_ahead=60),
    }
    requests = {code: client_api.submit(provider["id"], start.isoformat())
                for code, start in cases.items()}

    for code, request in requests.items():
        decided = client_api.decided(request["id"])
        assert decided["status"] == "rejected", code
        assert decided["reason"]["code"] == code


def test_time_off_rejects_requests_inside_it(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    start = next_weekday_at(14)
    blocked = admin_api.http.post(f"/v1/providers/{provider['id']}/time-off", json={
        "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(),
        "reason": "training"})
    assert blocked.status_code == 201

    request = client_api.submit(provider["id"], start.isoformat())

    assert client_api.decided(request["id"])["reason"]["code"] == "time_off"


def test_reschedule_moves_the_booking_and_frees_the_old_slot(workers, admin_api, client_api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    old, new = next_weekday_at(9), next_weekday_at(15)
    booking = client_api.decided(client_api.submit(provider["id"], old.isoformat())["id"])["booking"]

    moved = client_api.http.post(f"/v1/bookings/{booking['id']}/reschedule",
                                 json={"start": new.isoformat()})
    assert moved.status_code == 202
    decided = client_api.decided(moved.json()["id"])

    assert decided["status"] == "succeeded"
    assert decided["kind"] == "reschedule"
    assert decided["booking"]["start"] == new.isoformat()
    assert decided["booking"]["version"] == booking["version"] + 1
    retaken = client_api.decided(client_api.submit(provider["id"], old.isoformat())["id"])
    assert retaken["status"] == "succeeded"


def test_cancel_frees_the_slot_and_a_second_cancel_is_rejected(workers, admin_api, client_api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    start = next_weekday_at(9)
    booking = client_api.decided(client_api.submit(provider["id"], start.isoformat())["id"])["booking"]

    first = client_api.http.post(f"/v1/bookings/{booking['id']}/cancel", json={"reason": "flu"})
    second = client_api.http.post(f"/v1/bookings/{booking['id']}/cancel", json={})

    assert client_api.decided(first.json()["id"])["status"] == "succeeded"
    assert client_api.decided(second.json()["id"])["reason"]["code"] == "booking_cancelled"
    assert client_api.http.get(f"/v1/bookings/{booking['id']}").json()["status"] == "cancelled"
    slots = client_api.http.get(f"/v1/providers/{provider['id']}/slots",
                                params={"date": start.date().isoformat()}).json()["slots"]
    assert start.isoformat() in [slot["start"] for slot in slots]


def test_idempotency_key_returns_the_same_request(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    body = {"provider_id": provider["id"], "customer_id": "c", "start": next_weekday_at(9).isoformat()}
    headers = {"Idempotency-Key": "order-123"}

    first = client_api.http.post("/v1/bookings", json=body, headers=headers)
    again = client_api.http.post("/v1/bookings", json=body, headers=headers)
    other = client_api.http.post("/v1/bookings", json={**body, "customer_id": "d"}, headers=headers)

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["errors"]


def test_a_client_never_sees_another_clients_requests_or_bookings(
        workers, web, admin_api: Api, client_api: Api, other_client_key):
    other = Api(web, other_client_key)
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    request = client_api.decided(client_api.submit(provider["id"], next_weekday_at(9).isoformat())["id"])
    booking_id = request["booking"]["id"]

    assert other.http.get(f"/v1/booking-requests/{request['id']}").status_code == 404
    assert other.http.get(f"/v1/bookings/{booking_id}").status_code == 404
    assert other.http.post(f"/v1/bookings/{booking_id}/cancel", json={}).status_code == 404
    assert other.http.get("/v1/bookings").json()["items"] == []
    assert other.http.get("/v1/booking-requests").json()["items"] == []
    assert admin_api.http.get(f"/v1/bookings/{booking_id}").status_code == 200
    assert other.http.post("/v1/providers", json={}).status_code == 403


def test_unknown_request_is_a_404_problem(web, client_api: Api):
    missing = client_api.http.get("/v1/booking-requests/00000000-0000-0000-0000-000000000000",
                                  params={"wait": 1})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"


def test_revoked_key_answers_401_at_once_in_every_web_process(web, admin_api: Api, client_key):
    keys = admin_api.http.get("/v1/api-keys").json()["items"]
    portal = next(k for k in keys if k["name"] == "portal")
    # Fresh connections spread over both gunicorn workers, so each has the key cached.
    before = [httpx.get(f"{web}/v1/bookings", headers=auth(client_key)).status_code for _ in range(12)]

    assert admin_api.http.delete(f"/v1/api-keys/{portal['id']}").status_code == 204
    after = [httpx.get(f"{web}/v1/bookings", headers=auth(client_key)).status_code for _ in range(12)]

    assert before == [200] * 12
    assert after == [401] * 12


def test_if_match_guards_a_change_against_a_stale_booking(workers, admin_api, client_api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)
    booking = client_api.decided(client_api.submit(provider["id"], next_weekday_at(9).isoformat())["id"])
    url = f"/v1/bookings/{booking['booking']['id']}"
    etag = client_api.http.get(url).headers["ETag"]

    moved = client_api.http.post(f"{url}/reschedule", json={"start": next_weekday_at(10).isoformat()},
                                 headers={"If-Match": etag})
    client_api.decided(moved.json()["id"])
    stale = client_api.http.post(f"{url}/cancel", json={}, headers={"If-Match": etag})

    assert moved.status_code == 202
    assert stale.status_code == 412
    assert client_api.http.get(url).headers["ETag"] != etag


def test_prefer_wait_answers_the_submit_with_the_decision(workers, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=WEEKDAYS_9_TO_17)

    response = client_api.http.post("/v1/bookings", headers={"Prefer": "wait=20"}, json={
        "provider_id": provider["id"], "customer_id": "c", "start": next_weekday_at(12).isoformat()})

    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=20"
    assert response.json()["status"] == "succeeded"
    assert "Retry-After" not in response.headers
    assert response.headers["Location"] == f"/v1/booking-requests/{response.json()['id']}"
