"""Providers over HTTP: versions as ETags, stranded bookings, time off, slots, paging."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from booking.fence import claim_calendar
from tests.conftest import auth
from tests.seeding import insert_booking
from workers import decide

TUESDAY = {"tuesday": [{"start": "09:00", "end": "12:00"}]}
ALL_DAYS = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
EVERY_DAY_NIGHT = {day: [{"start": "00:00", "end": "04:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def create(http, key, **fields):
    body = {"name": "Dr. Ada", "timezone": "Europe/Berlin", "weekly_schedule": TUESDAY, **fields}
    response = http.post("/v1/providers", json=body, headers=auth(key))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response


def confirmed_booking(db, provider_id, start, minutes=30):
    with db.begin() as conn:
        key_id = conn.scalar(text("SELECT id FROM api_keys LIMIT 1"))
        claim_calendar(conn.execute, provider_id)  # as every writer of a calendar must
        booking_id = insert_booking(conn, provider_id, key_id, start, start + timedelta(minutes=minutes))
    return str(booking_id)


def next_tuesday_nine_berlin() -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=7)
    while day.weekday() != 1:
        day += timedelta(days=1)
    from zoneinfo import ZoneInfo
    return datetime(day.year, day.month, day.day, 9, tzinfo=ZoneInfo("Europe/Berlin"))


def test_create_answers_location_and_etag(http, admin_key):
    response = create(http, admin_key)
    provider = response.get_json()

    assert response.headers["Location"] == f"/v1/providers/{provider['id']}"
    assert response.headers["ETag"] == '"1"'
    assert provider["slot_minutes"] == 30 and provider["min_notice_minutes"] == 0
    assert provider["max_advance_days"] == 365
    assert http.get(response.headers["Location"], headers=auth(admin_key)).get_json() == provider


def test_patch_with_a_stale_if_match_is_412(http, admin_key):
    provider = create(http, admin_key).get_json()
    url = f"/v1/providers/{provider['id']}"

    first = http.patch(url, json={"name": "Dr. B"}, headers={**auth(admin_key), "If-Match": '"1"'})
    stale = http.patch(url, json={"name": "Dr. C"}, headers={**auth(admin_key), "If-Match": '"1"'})

    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    assert stale.status_code == 412
    assert http.get(url, headers=auth(admin_key)).get_json()["name"] == "Dr. B"


def test_the_etag_holds_while_bookings_are_decided(http, db, admin_key, client_key):
    # Given an admin who read the provider,
    provider = create(http, admin_key, weekly_schedule=ALL_DAYS, timezone="UTC").get_json()
    url = f"/v1/providers/{provider['id']}"
    etag = http.get(url, headers=auth(admin_key)).headers["ETag"]

    # when a booking of that provider is decided meanwhile (a calendar change),
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    http.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                    "start": start.isoformat()}, headers=auth(client_key))
    assert decide.decide_provider_queue(uuid.UUID(provider["id"])) == 1

    # then the admin's edit still applies: the provider itself did not change.
    edited = http.patch(url, json={"name": "Dr. B"}, headers={**auth(admin_key), "If-Match": etag})
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert edited.headers["ETag"] == '"2"' and edited.get_json()["version"] == 2


def test_patch_accepts_any_listed_etag(http, admin_key):
    provider = create(http, admin_key).get_json()
    url = f"/v1/providers/{provider['id']}"

    edited = http.patch(url, json={"name": "Dr. B"}, headers={**auth(admin_key), "If-Match": '"9", "1"'})

    assert edited.status_code == 200


def test_patch_that_would_strand_future_bookings_is_409_listing_them(http, db, admin_key):
    provider = create(http, admin_key).get_json()
    booking_id = confirmed_booking(db, provider["id"], next_tuesday_nine_berlin())

    response = http.patch(f"/v1/providers/{provider['id']}",
                          json={"weekly_schedule": {"tuesday": [{"start": "10:00", "end": "12:00"}]}},
                          headers=auth(admin_key))

    assert response.status_code == 409
    assert response.get_json()["bookings"] == [booking_id]
    still = http.get(f"/v1/providers/{provider['id']}", headers=auth(admin_key)).get_json()
    assert still["weekly_schedule"] == TUESDAY


def test_time_off_over_a_booking_is_409_and_elsewhere_hides_slots(http, db, admin_key):
    provider = create(http, admin_key).get_json()
    nine = next_tuesday_nine_berlin()
    confirmed_booking(db, provider["id"], nine)
    url = f"/v1/providers/{provider['id']}/time-off"

    clash = http.post(url, json={"start": nine.isoformat(),
                                 "end": (nine + timedelta(hours=1)).isoformat()}, headers=auth(admin_key))
    fine = http.post(url, json={"start": (nine + timedelta(hours=1)).isoformat(),
                                "end": (nine + timedelta(hours=3)).isoformat(), "reason": "audit"},
                     headers=auth(admin_key))
    slots = http.get(f"/v1/providers/{provider['id']}/slots?date={nine.date()}",
                     headers=auth(admin_key)).get_json()["slots"]

    assert clash.status_code == 409
    assert fine.status_code == 201
    assert [s["start"] for s in slots] == [(nine + timedelta(minutes=30)).isoformat()]
    listed = http.get(url, headers=auth(admin_key)).get_json()["items"]
    assert [t["reason"] for t in listed] == ["audit"]
    assert http.delete(f"{url}/{listed[0]['id']}", headers=auth(admin_key)).status_code == 204
    slots = http.get(f"/v1/providers/{provider['id']}/slots?date={nine.date()}",
                     headers=auth(admin_key)).get_json()["slots"]
    assert len(slots) == 5


def test_slots_on_a_fall_back_day_in_new_york(http, admin_key, client_key):
    provider = create(http, admin_key, timezone="America/New_York", slot_minutes=60,
                      weekly_schedule=EVERY_DAY_NIGHT, max_advance_days=3650).get_json()
    fall_back = next(d for year in range(datetime.now(UTC).year + 1, datetime.now(UTC).year + 3)
                     for d in [datetime(year, 11, 1) + timedelta(days=i) for i in range(7)]
                     if d.weekday() == 6)

    slots = http.get(f"/v1/providers/{provider['id']}/slots?date={fall_back.date()}",
                     headers=auth(client_key)).get_json()

    assert slots["timezone"] == "America/New_York"
    assert [s["start"][11:] for s in slots["slots"]] == [
        "00:00:00-04:00", "01:00:00-04:00", "01:00:00-05:00", "02:00:00-05:00", "03:00:00-05:00"]


def test_slots_by_range_on_a_spring_forward_day_in_berlin(http, admin_key, client_key):
    provider = create(http, admin_key, slot_minutes=60, weekly_schedule=EVERY_DAY_NIGHT,
                      max_advance_days=3650).get_json()
    year = datetime.now(UTC).year + 1
    spring = max(datetime(year, 3, 31) - timedelta(days=i) for i in range(7)
                 if (datetime(year, 3, 31) - timedelta(days=i)).weekday() == 6)

    slots = http.get(f"/v1/providers/{provider['id']}/slots", query_string={
        "from": f"{spring.date()}T00:00:00+01:00", "to": f"{spring.date()}T12:00:00+02:00"},
        headers=auth(client_key)).get_json()["slots"]

    assert [s["start"][11:] for s in slots] == ["00:00:00+01:00", "01:00:00+01:00", "03:00:00+02:00"]


def test_providers_page_with_a_cursor(http, admin_key):
    created = [create(http, admin_key, name=f"P{i}").get_json()["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/providers", query_string=query, headers=auth(admin_key)).get_json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created


def test_operations_endpoints_need_no_key(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").get_json()["checks"] == {"postgres": "ok", "redis": "ok"}
    spec = http.get("/openapi.json").get_json()
    assert "/v1/bookings" in spec["paths"] and "/v1/booking-requests/{request_id}" in spec["paths"]
    assert http.get("/docs").status_code == 200
