"""Services over HTTP: CRUD with ETags, deletes refused while bookings use them, the
providers that offer them, bookings and slots of a service."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from booking.fence import claim_calendar
from tests.conftest import auth
from tests.seeding import insert_booking
from workers import decide

BERLIN = ZoneInfo("Europe/Berlin")
CONSULTATION = {"name": "Consultation", "duration_minutes": 45, "step_minutes": 15,
                "buffer_after_minutes": 10}
MISSING = "00000000-0000-0000-0000-000000000000"


def create_service(http, key, **fields) -> dict:
    response = http.post("/v1/services", json={"name": "Class", "duration_minutes": 60, **fields},
                         headers=auth(key))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def create_provider(http, key, weekday: int = 1, hours=("09:00", "11:00"), **fields) -> dict:
    day = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[weekday]
    body = {"name": "Dr. Ada", "timezone": "Europe/Berlin",
            "weekly_schedule": {day: [{"start": hours[0], "end": hours[1]}]}, **fields}
    response = http.post("/v1/providers", json=body, headers=auth(key))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def next_weekday_at(weekday: int, hour: int, minute: int = 0) -> datetime:
    """That weekday at least a week ahead, at a Berlin wall time."""
    day = datetime.now(UTC).date() + timedelta(days=7)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


def seeded_booking(db, provider_id, service, start: datetime, customer_id: str = "c") -> str:
    with db.begin() as conn:
        key_id = conn.scalar(text("SELECT id FROM api_keys LIMIT 1"))
        claim_calendar(conn.execute, provider_id)  # as every writer of a calendar must
        booking_id = insert_booking(conn, provider_id, key_id, start,
                                    start + timedelta(minutes=service["duration_minutes"]),
                                    customer_id=customer_id, service_id=uuid.UUID(service["id"]))
    return str(booking_id)


def calendar_version(db, provider_id) -> int:
    with db.connect() as conn:
        return conn.scalar(text("SELECT version FROM providers WHERE id = :id"), {"id": provider_id})


def slots(http, key, provider_id, day: datetime, service_id=None):
    query = {"date": day.date().isoformat(), **({"service_id": service_id} if service_id else {})}
    return http.get(f"/v1/providers/{provider_id}/slots", query_string=query, headers=auth(key))


def book(http, key, provider_id, start: datetime, **extra):
    return http.post("/v1/bookings", json={"provider_id": provider_id, "customer_id": "c-1",
                                           "start": start.isoformat(), **extra}, headers=auth(key))


# --- CRUD ---------------------------------------------------------------------

def test_create_answers_location_etag_and_defaults(http, admin_key, client_key):
    response = http.post("/v1/services", json={"name": "Consultation", "duration_minutes": 45},
                         headers=auth(admin_key))
    service = response.get_json()

    assert response.status_code == 201
    assert response.headers["Location"] == f"/v1/services/{service['id']}"
    assert response.headers["ETag"] == '"1"'
    assert {name: service[name] for name in (
        "step_minutes", "buffer_before_minutes", "buffer_after_minutes", "capacity",
        "requires_confirmation", "daily_limit", "weekly_limit")} == {
        "step_minutes": 45, "buffer_before_minutes": 0, "buffer_after_minutes": 0, "capacity": 1,
        "requires_confirmation": False, "daily_limit": None, "weekly_limit": None}
    read = http.get(response.headers["Location"], headers=auth(client_key))  # any key reads
    assert read.get_json() == service and read.headers["ETag"] == '"1"'


def test_only_an_admin_writes_services(http, admin_key, client_key):
    service = create_service(http, admin_key)
    url = f"/v1/services/{service['id']}"

    assert http.post("/v1/services", json={"name": "X", "duration_minutes": 30},
                     headers=auth(client_key)).status_code == 403
    assert http.patch(url, json={"name": "Y"}, headers=auth(client_key)).status_code == 403
    assert http.delete(url, headers=auth(client_key)).status_code == 403


def test_patch_bumps_the_etag_and_a_stale_if_match_is_412(http, admin_key):
    service = create_service(http, admin_key)
    url = f"/v1/services/{service['id']}"

    first = http.patch(url, json={"capacity": 3, "daily_limit": 5},
                       headers={**auth(admin_key), "If-Match": '"1"'})
    stale = http.patch(url, json={"capacity": 4}, headers={**auth(admin_key), "If-Match": '"1"'})

    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    assert first.get_json()["capacity"] == 3 and first.get_json()["daily_limit"] == 5
    assert stale.status_code == 412
    assert http.get(url, headers=auth(admin_key)).get_json()["capacity"] == 3
    cleared = http.patch(url, json={"daily_limit": None}, headers=auth(admin_key))
    assert cleared.get_json()["daily_limit"] is None and cleared.headers["ETag"] == '"3"'


def test_a_stale_if_match_on_delete_is_412_and_keeps_the_service(http, admin_key):
    service = create_service(http, admin_key)
    url = f"/v1/services/{service['id']}"

    refused = http.delete(url, headers={**auth(admin_key), "If-Match": '"7"'})
    deleted = http.delete(url, headers={**auth(admin_key), "If-Match": '"1"'})

    assert refused.status_code == 412
    assert deleted.status_code == 204


def test_a_deleted_service_answers_404_and_is_not_listed(http, admin_key):
    kept, gone = create_service(http, admin_key, name="Kept"), create_service(http, admin_key, name="Gone")
    url = f"/v1/services/{gone['id']}"

    assert http.delete(url, headers=auth(admin_key)).status_code == 204

    assert http.get(url, headers=auth(admin_key)).status_code == 404
    assert http.patch(url, json={"name": "Back"}, headers=auth(admin_key)).status_code == 404
    assert http.delete(url, headers=auth(admin_key)).status_code == 404
    listed = http.get("/v1/services", headers=auth(admin_key)).get_json()
    assert [s["id"] for s in listed["items"]] == [kept["id"]] and listed["next_cursor"] is None


def test_services_page_with_a_cursor(http, admin_key, client_key):
    created = [create_service(http, admin_key, name=f"S{i}")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/services", query_string=query, headers=auth(client_key)).get_json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created


# --- deletes and edits against the calendars that use the service -------------

def test_delete_is_409_while_a_future_booking_uses_the_service(http, db, admin_key):
    # Given a class that a provider offers, with a booking next week,
    service = create_service(http, admin_key, capacity=3)
    provider = create_provider(http, admin_key, service_ids=[service["id"]])
    booking_id = seeded_booking(db, provider["id"], service, next_weekday_at(1, 9))

    # when the admin deletes the class,
    response = http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))

    # then it is refused, naming the booking, and the provider still offers it.
    assert response.status_code == 409
    assert response.get_json()["bookings"] == [booking_id]
    assert http.get(f"/v1/services/{service['id']}", headers=auth(admin_key)).status_code == 200
    offered = http.get(f"/v1/providers/{provider['id']}", headers=auth(admin_key)).get_json()
    assert offered["service_ids"] == [service["id"]]


def test_a_cancelled_booking_does_not_hold_a_delete_and_the_offer_goes_with_it(http, db, admin_key):
    service = create_service(http, admin_key)
    provider = create_provider(http, admin_key, service_ids=[service["id"]])
    with db.begin() as conn:
        key_id = conn.scalar(text("SELECT id FROM api_keys LIMIT 1"))
        claim_calendar(conn.execute, provider["id"])
        start = next_weekday_at(1, 9)
        insert_booking(conn, provider["id"], key_id, start, start + timedelta(hours=1), status="cancelled",
                       service_id=uuid.UUID(service["id"]))

    assert http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key)).status_code == 204

    offered = http.get(f"/v1/providers/{provider['id']}", headers=auth(admin_key)).get_json()
    assert offered["service_ids"] == []


def test_a_service_edit_or_delete_claims_the_calendars_of_those_offering_it(http, db, admin_key):
    # Given two providers, one offering the service,
    service = create_service(http, admin_key)
    offering = create_provider(http, admin_key, service_ids=[service["id"]])
    other = create_provider(http, admin_key)
    before = calendar_version(db, offering["id"]), calendar_version(db, other["id"])

    # when the service is edited and then deleted,
    http.patch(f"/v1/services/{service['id']}", json={"duration_minutes": 30}, headers=auth(admin_key))
    after_edit = calendar_version(db, offering["id"])
    http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))

    # then each moved the calendar of the provider offering it (an in-flight decision made
    # against the old definition is refused by the fence), and no other.
    assert after_edit == before[0] + 1
    assert calendar_version(db, offering["id"]) == before[0] + 2
    assert calendar_version(db, other["id"]) == before[1]


# --- providers offering services ----------------------------------------------

def test_providers_offer_services_on_create_and_patch(http, admin_key):
    first, second = create_service(http, admin_key, name="A"), create_service(http, admin_key, name="B")
    provider = create_provider(http, admin_key, service_ids=[first["id"], first["id"]])
    url = f"/v1/providers/{provider['id']}"
    assert provider["service_ids"] == [first["id"]]  # a repeated id counts once

    patched = http.patch(url, json={"service_ids": [second["id"], first["id"]]},
                         headers={**auth(admin_key), "If-Match": '"1"'})

    assert patched.status_code == 200 and patched.headers["ETag"] == '"2"'
    assert sorted(patched.get_json()["service_ids"]) == sorted([first["id"], second["id"]])
    listed = http.get("/v1/providers", headers=auth(admin_key)).get_json()["items"]
    assert sorted(listed[0]["service_ids"]) == sorted([first["id"], second["id"]])
    emptied = http.patch(url, json={"service_ids": []}, headers=auth(admin_key)).get_json()
    assert emptied["service_ids"] == []


@pytest.mark.parametrize("how", ["unknown", "deleted"])
def test_offering_a_service_that_does_not_exist_is_422_naming_service_ids(http, admin_key, how):
    service = create_service(http, admin_key)
    if how == "deleted":
        http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))
    missing = service["id"] if how == "deleted" else MISSING
    provider = create_provider(http, admin_key)

    created = http.post("/v1/providers", headers=auth(admin_key), json={
        "name": "Dr. B", "timezone": "UTC", "weekly_schedule": {}, "service_ids": [missing]})
    patched = http.patch(f"/v1/providers/{provider['id']}", json={"service_ids": [missing]},
                         headers=auth(admin_key))

    for response in (created, patched):
        assert response.status_code == 422, response.get_data(as_text=True)
        assert missing in response.get_json()["errors"]["service_ids"][0]
    assert http.get(f"/v1/providers/{provider['id']}", headers=auth(admin_key)).get_json()["version"] == 1


# --- slots and bookings of a service --------------------------------------------

def test_slots_of_a_service_follow_its_step_grid_and_show_free_seats(http, db, admin_key, client_key):
    # Given a 45-minute class of three seats on a 15-minute grid, offered 09:00-11:00,
    service = create_service(http, admin_key, duration_minutes=45, step_minutes=15, capacity=3)
    provider = create_provider(http, admin_key, service_ids=[service["id"]])
    nine = next_weekday_at(1, 9)

    # the listing offers every start whose class ends by 11:00, each with three seats;
    listed = slots(http, client_key, provider["id"], nine, service["id"]).get_json()
    assert listed["service_id"] == service["id"]
    assert [(s["start"][11:16], s["end"][11:16], s["remaining"]) for s in listed["slots"]] == [
        ("09:00", "09:45", 3), ("09:15", "10:00", 3), ("09:30", "10:15", 3),
        ("09:45", "10:30", 3), ("10:00", "10:45", 3), ("10:15", "11:00", 3)]

    # once a seat at 09:00 is taken, 09:00 has two left and no other session may overlap it.
    seeded_booking(db, provider["id"], service, nine)
    listed = slots(http, client_key, provider["id"], nine, service["id"]).get_json()["slots"]
    assert [(s["start"][11:16], s["remaining"]) for s in listed] == [("09:00", 2), ("09:45", 3),
                                                                    ("10:00", 3), ("10:15", 3)]


def test_slots_without_a_service_are_the_implicit_ones(http, admin_key, client_key):
    provider = create_provider(http, admin_key, slot_minutes=60)

    listed = slots(http, client_key, provider["id"], next_weekday_at(1, 9)).get_json()

    assert listed["service_id"] is None
    assert [(s["start"][11:16], s["remaining"]) for s in listed["slots"]] == [("09:00", 1), ("10:00", 1)]


@pytest.mark.parametrize("how", ["not offered", "unknown", "deleted"])
def test_slots_of_a_service_the_provider_does_not_offer_are_422(http, admin_key, client_key, how):
    service = create_service(http, admin_key)
    provider = create_provider(http, admin_key, service_ids=[] if how == "not offered" else [service["id"]])
    if how == "deleted":
        http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))
    service_id = MISSING if how == "unknown" else service["id"]

    response = slots(http, client_key, provider["id"], next_weekday_at(1, 9), service_id)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "service_id" in response.get_json()["errors"]


def test_slots_of_an_unknown_provider_are_404_whatever_the_service(http, admin_key, client_key):
    service = create_service(http, admin_key)

    response = slots(http, client_key, MISSING, next_weekday_at(1, 9), service["id"])

    assert response.status_code == 404


@pytest.mark.parametrize("how", ["not offered", "unknown", "deleted"])
def test_booking_a_service_the_provider_does_not_offer_is_422_naming_service_id(
        http, admin_key, client_key, how):
    service = create_service(http, admin_key)
    provider = create_provider(http, admin_key, service_ids=[] if how == "not offered" else [service["id"]])
    if how == "deleted":
        http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))
    service_id = MISSING if how == "unknown" else service["id"]

    response = book(http, client_key, provider["id"], next_weekday_at(1, 9), service_id=service_id)

    assert response.status_code == 422, response.get_data(as_text=True)
    assert list(response.get_json()["errors"]) == ["service_id"]
    listed = http.get("/v1/booking-requests", headers=auth(client_key)).get_json()["items"]
    assert listed == []  # nothing was accepted


def test_a_booking_of_a_service_is_decided_with_it_and_holds_its_delete(http, db, admin_key, client_key):
    # Given a three-seat class offered by a provider,
    service = create_service(http, admin_key, duration_minutes=45, step_minutes=15, capacity=3)
    provider = create_provider(http, admin_key, service_ids=[service["id"]])
    nine = next_weekday_at(1, 9)

    # when a client books it,
    accepted = book(http, client_key, provider["id"], nine, service_id=service["id"])
    assert accepted.status_code == 202 and accepted.get_json()["service_id"] == service["id"]
    assert decide.decide_provider_queue(uuid.UUID(provider["id"])) == 1

    # then the booking is the class's (45 minutes), one seat fewer is listed,
    decided = http.get(accepted.headers["Location"], headers=auth(client_key)).get_json()
    assert decided["status"] == "succeeded", decided
    booking = decided["booking"]
    assert booking["service_id"] == service["id"]
    assert booking["end"] == (nine + timedelta(minutes=45)).isoformat()
    listed = slots(http, client_key, provider["id"], nine, service["id"]).get_json()["slots"]
    assert listed[0]["remaining"] == 2

    # a reschedule carries the booking's service, and the class cannot be deleted.
    moved = http.post(f"/v1/bookings/{booking['id']}/reschedule",
                      json={"start": (nine + timedelta(minutes=45)).isoformat()}, headers=auth(client_key))
    assert moved.status_code == 202 and moved.get_json()["service_id"] == service["id"]
    assert decide.decide_provider_queue(uuid.UUID(provider["id"])) == 1
    after = http.get(f"/v1/bookings/{booking['id']}", headers=auth(client_key)).get_json()
    assert (after["service_id"], after["start"], after["end"]) == (
        service["id"], (nine + timedelta(minutes=45)).isoformat(), (nine + timedelta(minutes=90)).isoformat())
    remaining = {s["start"]: s["remaining"]
                 for s in slots(http, client_key, provider["id"], nine, service["id"]).get_json()["slots"]}
    assert remaining[nine.isoformat()] == 3  # its old seat is free again
    assert remaining[(nine + timedelta(minutes=45)).isoformat()] == 2
    refused = http.delete(f"/v1/services/{service['id']}", headers=auth(admin_key))
    assert refused.status_code == 409 and refused.get_json()["bookings"] == [booking["id"]]


@pytest.mark.parametrize("change, length, late", [
    ("cancel, then book again", 90, "slot_unavailable"),  # a new booking: the service of today
    ("reschedule onto its own start", 60, "succeeded"),  # a booking keeps the interval it was given
])
def test_a_session_emptied_and_filled_in_one_batch_is_as_long_as_its_booking(
        http, db, admin_key, client_key, change, length, late):
    # Given a 60-minute service booked at 9:00, then made 90 minutes long,
    service = create_service(http, admin_key, duration_minutes=60, step_minutes=30)
    provider = create_provider(http, admin_key, hours=("09:00", "13:00"), service_ids=[service["id"]])
    nine = next_weekday_at(1, 9)
    first = book(http, client_key, provider["id"], nine, service_id=service["id"]).get_json()
    decide.decide_provider_queue(uuid.UUID(provider["id"]))
    booking_id = http.get(f"/v1/booking-requests/{first['id']}",
                          headers=auth(client_key)).get_json()["booking_id"]
    etag = http.get(f"/v1/services/{service['id']}", headers=auth(admin_key)).headers["ETag"]
    patched = http.patch(f"/v1/services/{service['id']}", json={"duration_minutes": 90},
                         headers={**auth(admin_key), "If-Match": etag})
    assert patched.status_code == 200, patched.get_data(as_text=True)

    # when one batch frees the 9:00 seat and takes it again, and then asks for 10:00,
    if change == "reschedule onto its own start":
        http.post(f"/v1/bookings/{booking_id}/reschedule", json={"start": nine.isoformat()},
                  headers=auth(client_key))
    else:
        http.post(f"/v1/bookings/{booking_id}/cancel", json={}, headers=auth(client_key))
        book(http, client_key, provider["id"], nine, customer_id="c-2", service_id=service["id"])
    at_ten = book(http, client_key, provider["id"], nine + timedelta(minutes=60), customer_id="c-3",
                  service_id=service["id"]).get_json()
    decide.decide_provider_queue(uuid.UUID(provider["id"]))

    # then the 9:00 session is exactly as long as its booking, which decides 10:00.
    decided = http.get(f"/v1/booking-requests/{at_ten['id']}", headers=auth(client_key)).get_json()
    assert (decided["status"] if late == "succeeded" else decided["reason"]["code"]) == late
    with db.connect() as conn:
        mismatched = conn.scalar(text(
            "SELECT count(*) FROM bookings b JOIN sessions s ON s.id = b.session_id "
            "WHERE b.provider_id = :p AND b.status = 'confirmed' AND b.period <> s.period"),
            {"p": provider["id"]})
        nine_length = conn.scalar(text(
            "SELECT upper(period) - lower(period) FROM bookings "
            "WHERE provider_id = :p AND status = 'confirmed' AND lower(period) = :nine"),
            {"p": provider["id"], "nine": nine})
    assert mismatched == 0
    assert nine_length == timedelta(minutes=length)


def test_idempotency_key_tells_bookings_of_different_services_apart(http, admin_key, client_key):
    first, second = create_service(http, admin_key, name="A"), create_service(http, admin_key, name="B")
    provider = create_provider(http, admin_key, service_ids=[first["id"], second["id"]])
    nine, headers = next_weekday_at(1, 9), {**auth(client_key), "Idempotency-Key": "order-1"}
    body = {"provider_id": provider["id"], "customer_id": "c-1", "start": nine.isoformat()}

    original = http.post("/v1/bookings", json={**body, "service_id": first["id"]}, headers=headers)
    repeated = http.post("/v1/bookings", json={**body, "service_id": first["id"]}, headers=headers)
    another = http.post("/v1/bookings", json={**body, "service_id": second["id"]}, headers=headers)

    assert original.status_code == repeated.status_code == 202
    assert repeated.get_json()["id"] == original.get_json()["id"]
    assert another.status_code == 422 and "Idempotency-Key" in another.get_json()["errors"]


def test_openapi_documents_services_and_service_ids(http):
    spec = http.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    assert {"get", "post"} <= set(spec["paths"]["/v1/services"])
    assert {"get", "patch", "delete"} <= set(spec["paths"]["/v1/services/{service_id}"])
    assert "service_ids" in schemas["ProviderIn"]["properties"]
    assert "service_ids" in schemas["ProviderOut"]["properties"]
    assert "service_id" in schemas["BookingIn"]["properties"]
    assert "service_id" in schemas["BookingOut"]["properties"]
    assert "service_id" in schemas["RequestOut"]["properties"]
    assert "remaining" in schemas["SlotOut"]["properties"]
    assert "service_id" in schemas["SlotsOut"]["properties"]
    assert {"limit_reached", "already_booked", "service_not_offered"} <= set(
        schemas["ReasonOut"]["properties"]["code"]["enum"])
    slot_parameters = spec["paths"]["/v1/providers/{provider_id}/slots"]["get"]["parameters"]
    assert "service_id" in {p["name"] for p in slot_parameters}
