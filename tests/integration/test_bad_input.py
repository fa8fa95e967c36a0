"""Hostile and malformed input: always a 4xx application/problem+json naming the
problem, never a 5xx."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from booking.fence import claim_calendar
from tests.conftest import auth
from tests.seeding import insert_booking
from tests.triggers import row_trigger

SCHEDULE = {"monday": [{"start": "09:00", "end": "12:00"}]}
GOOD_PROVIDER = {"name": "Dr. Ada", "timezone": "Europe/Berlin", "weekly_schedule": SCHEDULE}
MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def provider_id(http, admin_key):
    return http.post("/v1/providers", json=GOOD_PROVIDER, headers=auth(admin_key)).get_json()["id"]


def good_booking(provider_id):
    return {"provider_id": provider_id, "customer_id": "c", "start": "2030-01-07T09:00:00+01:00"}


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]
    if field:
        assert field in body["errors"], body


@pytest.mark.parametrize("change, field", [
    ({"start": "2030-01-07T09:00:00"}, "start"),  # naive
    ({"start": "2030-02-30T09:00:00Z"}, "start"),  # impossible date
    ({"start": "2030-01-07T25:00:00Z"}, "start"),
    ({"start": "tomorrow"}, "start"),
    ({"start": 1767776400}, "start"),
    ({"start": "0001-01-01T00:00:00Z"}, "start"),
    ({"start": "9999-12-31T23:59:59Z"}, "start"),
    ({"start": None}, "start"),
    ({"provider_id": "not-a-uuid"}, "provider_id"),
    ({"provider_id": 42}, "provider_id"),
    ({"provider_id": MISSING}, "provider_id"),  # unknown provider
    ({"customer_id": ""}, "customer_id"),
    ({"customer_id": "x" * 256}, "customer_id"),
    ({"customer_id": ["a"]}, "customer_id"),
    ({"callback_url": "ftp://example.com/hook"}, "callback_url"),
    ({"callback_url": "not a url"}, "callback_url"),
    ({"surprise": True}, "surprise"),  # unknown fields are refused, not ignored
])
def test_bad_booking_fields_are_named(http, client_key, provider_id, change, field):
    response = http.post("/v1/bookings", json={**good_booking(provider_id), **change},
                         headers=auth(client_key))
    assert_problem(response, 422, field)


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b"", 422),
    (b"[]", 422),
    (b'"a string"', 422),
    (b"null", 422),
    (b"\xff\xfe\x00", 400),
    (b"[" * 20000 + b"]" * 20000, 400),
    (b'{"a": "' + b"x" * 70000 + b'"}', 413),
])
def test_malformed_bodies(http, client_key, body, status):
    response = http.post("/v1/bookings", data=body,
                         headers={**auth(client_key), "Content-Type": "application/json"})
    assert_problem(response, status)


def test_a_body_that_is_not_json_is_415(http, client_key, provider_id):
    response = http.post("/v1/bookings", data="provider_id=1",
                         headers={**auth(client_key),
                                  "Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(response, 415, "Content-Type")


@pytest.mark.parametrize("change, field", [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"name": ""}, "name"),
    ({"slot_minutes": 0}, "slot_minutes"),
    ({"slot_minutes": "30"}, "slot_minutes"),
    ({"slot_minutes": 10 ** 12}, "slot_minutes"),
    ({"min_notice_minutes": -1}, "min_notice_minutes"),
    ({"max_advance_days": 0}, "max_advance_days"),
    ({"weekly_schedule": {"Monday": []}}, "weekly_schedule.Monday"),
    ({"weekly_schedule": {"monday": [{"start": "12:00", "end": "09:00"}]}}, "weekly_schedule.monday"),
    ({"weekly_schedule": {"monday": [{"start": "09:00", "end": "12:00"},
                                     {"start": "11:00", "end": "13:00"}]}}, "weekly_schedule.monday"),
    ({"weekly_schedule": {"monday": [{"start": "9am", "end": "12:00"}]}}, "weekly_schedule.monday"),
    ({"weekly_schedule": {"monday": [{"start": "09:00", "end": "25:00"}]}}, "weekly_schedule.monday"),
    ({"weekly_schedule": {"monday": "all day"}}, "weekly_schedule.monday"),
    ({"weekly_schedule": []}, "weekly_schedule"),
])
def test_bad_provider_fields_are_named(http, admin_key, change, field):
    response = http.post("/v1/providers", json={**GOOD_PROVIDER, **change}, headers=auth(admin_key))
    assert_problem(response, 422, field)


@pytest.mark.parametrize("query, field", [
    ("date=2030-02-30", "date"),
    ("date=yesterday", "date"),
    ("", "date"),
    ("from=2030-01-01T00:00:00Z", "date"),
    ("from=2030-01-01T00:00:00Z&to=2030-03-01T00:00:00Z", "to"),
    ("from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "to"),
    ("from=2030-01-01T00:00:00&to=2030-01-02T00:00:00", "from"),
    ("date=2030-01-01&from=2030-01-01T00:00:00Z&to=2030-01-02T00:00:00Z", "date"),
])
def test_bad_slot_queries_are_named(http, client_key, provider_id, query, field):
    response = http.get(f"/v1/providers/{provider_id}/slots?{query}", headers=auth(client_key))
    assert_problem(response, 422, field)


@pytest.mark.parametrize("path, field", [
    ("/v1/bookings?cursor=garbage", "cursor"),
    ("/v1/bookings?cursor=" + "W10", "cursor"),
    ("/v1/booking-requests?cursor=eyJ4IjogMX0", "cursor"),
    ("/v1/booking-requests?cursor=WzFlOTld", "cursor"),
    ("/v1/bookings?limit=0", "limit"),
    ("/v1/bookings?limit=101", "limit"),
    ("/v1/bookings?limit=ten", "limit"),
    ("/v1/bookings?status=maybe", "status"),
    ("/v1/booking-requests?status=lost", "status"),
    (f"/v1/booking-requests/{MISSING}?wait=31", "wait"),
    (f"/v1/booking-requests/{MISSING}?wait=nan", "wait"),
    ("/v1/bookings?from=2030-01-01", "from"),
])
def test_bad_query_parameters_are_named(http, client_key, path, field):
    assert_problem(http.get(path, headers=auth(client_key)), 422, field)


@pytest.mark.parametrize("path", [
    "/v1/bookings/not-a-uuid", f"/v1/bookings/{MISSING}", f"/v1/booking-requests/{MISSING}",
    "/v1/nothing-here", f"/v1/providers/{MISSING}",
])
def test_unknown_things_are_404_problems(http, client_key, path):
    assert_problem(http.get(path, headers=auth(client_key)), 404)


def test_unknown_booking_cannot_be_rescheduled_or_cancelled(http, client_key):
    for action, body in (("reschedule", {"start": "2030-01-07T09:00:00Z"}), ("cancel", {})):
        response = http.post(f"/v1/bookings/{uuid.uuid4()}/{action}", json=body,
                             headers=auth(client_key))
        assert_problem(response, 404)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "bk_x"])
def test_missing_or_wrong_keys_are_401(http, db, header):
    headers = {"Authorization": header} if header else {}
    response = http.get("/v1/bookings", headers=headers)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_method_is_a_405_problem(http, client_key):
    assert_problem(http.delete("/v1/bookings", headers=auth(client_key)), 405)


def test_idempotency_key_is_bounded(http, client_key, provider_id):
    response = http.post("/v1/bookings", json=good_booking(provider_id),
                         headers={**auth(client_key), "Idempotency-Key": "k" * 256})
    assert_problem(response, 422, "Idempotency-Key")


def test_if_match_that_is_no_entity_tag_list_is_400(http, admin_key, provider_id):
    for header in ("yesterday", '"1" "2"', '"1",', "W/1"):
        response = http.patch(f"/v1/providers/{provider_id}", json={"name": "B"},
                              headers={**auth(admin_key), "If-Match": header})
        assert_problem(response, 400, "If-Match")


def test_if_match_naming_a_tag_we_never_issued_is_412(http, admin_key, provider_id):
    for header in ('"xyz"', 'W/"1"', '"7", "xyz"', '"²"'):  # W/: If-Match compares strongly
        response = http.patch(f"/v1/providers/{provider_id}", json={"name": "B"},
                              headers={**auth(admin_key), "If-Match": header})
        assert response.status_code == 412, (header, response.get_data(as_text=True))


def test_error_bodies_never_echo_stack_traces(http, client_key):
    response = http.post("/v1/bookings", data=json.dumps({"start": {"$gt": ""}}),
                         headers={**auth(client_key), "Content-Type": "application/json"})
    assert "Traceback" not in response.get_data(as_text=True)
    assert_problem(response, 422, "start")


# --- text PostgreSQL cannot store, and spellings the OpenAPI document does not allow ---

NUL = "a\u0000b"  # PostgreSQL refuses NUL in text: without a check, the INSERT answers 500
LATER = {"start": "2030-01-07T09:00:00Z", "end": "2030-01-07T10:00:00Z"}


@pytest.fixture
def booking_id(db, provider_id) -> str:
    """A confirmed booking, written straight to the database (no worker needed)."""
    booking = uuid.uuid4()
    with db.begin() as conn:
        claim_calendar(conn.execute, provider_id)  # as every writer of a calendar must
        key_id = conn.scalar(text("SELECT id FROM api_keys LIMIT 1"))
        booking = insert_booking(conn, provider_id, key_id, datetime(2030, 1, 14, 9, tzinfo=UTC),
                                 datetime(2030, 1, 14, 10, tzinfo=UTC))
    return str(booking)


def nul_requests(provider_id: str, booking_id: str) -> dict[str, tuple]:
    """Every text a request can carry into PostgreSQL, holding a NUL:
    case -> (method, path, JSON body, extra headers, the field the 422 must name)."""
    booking, endpoint = good_booking(provider_id), {"events": ["booking.confirmed"]}
    return {
        "api key name": ("POST", "/v1/api-keys", {"name": NUL, "role": "client"}, {}, "name"),
        "provider name": ("POST", "/v1/providers", {**GOOD_PROVIDER, "name": NUL}, {}, "name"),
        "customer_id": ("POST", "/v1/bookings", {**booking, "customer_id": NUL}, {}, "customer_id"),
        "customer_id filter": ("GET", "/v1/bookings?customer_id=a%00b", None, {}, "customer_id"),
        "cancel reason": ("POST", f"/v1/bookings/{booking_id}/cancel", {"reason": NUL}, {}, "reason"),
        "time-off reason": ("POST", f"/v1/providers/{provider_id}/time-off",
                            {**LATER, "reason": NUL}, {}, "reason"),
        "Idempotency-Key": ("POST", "/v1/bookings", booking, {"Idempotency-Key": NUL},
                            "Idempotency-Key"),
        "callback_url": ("POST", "/v1/bookings",
                         {**booking, "callback_url": f"https://example.com/{NUL}"}, {}, "callback_url"),
        "endpoint url": ("POST", "/v1/webhook-endpoints",
                         {**endpoint, "url": f"https://example.com/{NUL}"}, {}, "url"),
    }


@pytest.mark.parametrize("case", list(nul_requests(MISSING, MISSING)))
def test_nul_in_text_is_a_422_naming_the_field(http, admin_key, provider_id, booking_id, case):
    method, path, body, headers, field = nul_requests(provider_id, booking_id)[case]
    response = http.open(path, method=method, json=body, headers={**auth(admin_key), **headers})
    assert_problem(response, 422, field)


def test_a_lone_surrogate_is_a_422_naming_the_field(http, admin_key):
    body = json.dumps({**GOOD_PROVIDER, "name": "x"}).replace('"x"', '"\\ud800"')
    response = http.post("/v1/providers", data=body,
                         headers={**auth(admin_key), "Content-Type": "application/json"})
    assert_problem(response, 422, "name")


@pytest.mark.parametrize("change, field", [
    ({"start": "2030-01-07 09:00:00+01:00"}, "start"),  # ISO 8601, not RFC 3339
    ({"start": "20300107T090000Z"}, "start"),
    ({"start": "2030-01-07T09:00+01:00"}, "start"),
    ({"start": "2030-01-07T09:00:00+0100"}, "start"),
    ({"callback_url": "https://example.com/caf\u00e9"}, "callback_url"),  # RFC 3986: ASCII
    ({"callback_url": "https://example.com:70000/"}, "callback_url"),
])
def test_spellings_the_document_does_not_allow_are_refused(http, client_key, provider_id,
                                                          change, field):
    response = http.post("/v1/bookings", json={**good_booking(provider_id), **change},
                         headers=auth(client_key))
    assert_problem(response, 422, field)


UUID_SPELLINGS = {"braces": lambda uuid_: "{" + uuid_ + "}", "urn": lambda uuid_: "urn:uuid:" + uuid_,
                  "undashed": lambda uuid_: uuid_.replace("-", "")}


@pytest.mark.parametrize("spelling", list(UUID_SPELLINGS))  # Python's UUID() takes them all
def test_a_provider_id_is_spelled_as_openapi_spells_a_uuid(http, client_key, provider_id, spelling):
    body = {**good_booking(provider_id), "provider_id": UUID_SPELLINGS[spelling](provider_id)}
    response = http.post("/v1/bookings", json=body, headers=auth(client_key))
    assert_problem(response, 422, "provider_id")


def test_webhook_endpoint_all_clients_is_a_json_boolean(http, admin_key):
    response = http.post("/v1/webhook-endpoints", headers=auth(admin_key), json={
        "url": "https://example.com/hook", "events": ["booking.confirmed"], "all_clients": 1})
    assert_problem(response, 422, "all_clients")


@pytest.mark.parametrize("date", ["20300107", "2030-W02-1"])  # ISO 8601, not YYYY-MM-DD
def test_slots_date_is_yyyy_mm_dd(http, client_key, provider_id, date):
    response = http.get(f"/v1/providers/{provider_id}/slots?date={date}", headers=auth(client_key))
    assert_problem(response, 422, "date")


def test_a_405_names_the_allowed_methods(http, client_key):
    response = http.delete("/v1/bookings", headers=auth(client_key))
    assert_problem(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


@pytest.fixture
def refused_inserts(db):
    """A constraint the submit cannot foresee: inserts for customer 'refused' violate it."""
    with row_trigger(db, "test_refuse_insert", "booking_requests", """
            IF NEW.customer_id = 'refused' THEN
                RAISE unique_violation USING MESSAGE = 'refused by the test';
            END IF;"""):
        yield


def test_a_constraint_refusing_a_submit_without_idempotency_key_is_409_not_500(
        http, client_key, provider_id, refused_inserts):
    response = http.post("/v1/bookings", json={**good_booking(provider_id), "customer_id": "refused"},
                         headers=auth(client_key))

    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


# --- services, and the service_id / service_ids that name them ------------------

GOOD_SERVICE = {"name": "Consultation", "duration_minutes": 45}
BAD_SERVICE_FIELDS = [
    ({"name": ""}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": NUL}, "name"),
    ({"name": None}, "name"),
    ({"duration_minutes": 4}, "duration_minutes"),
    ({"duration_minutes": 1441}, "duration_minutes"),
    ({"duration_minutes": "45"}, "duration_minutes"),
    ({"duration_minutes": 45.5}, "duration_minutes"),
    ({"duration_minutes": None}, "duration_minutes"),
    ({"step_minutes": 0}, "step_minutes"),
    ({"step_minutes": 1441}, "step_minutes"),
    ({"step_minutes": None}, "step_minutes"),
    ({"buffer_before_minutes": -1}, "buffer_before_minutes"),
    ({"buffer_after_minutes": 721}, "buffer_after_minutes"),
    ({"buffer_after_minutes": 10 ** 12}, "buffer_after_minutes"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": 1001}, "capacity"),
    ({"capacity": True}, "capacity"),
    ({"requires_confirmation": 1}, "requires_confirmation"),
    ({"requires_confirmation": "yes"}, "requires_confirmation"),
    ({"daily_limit": 0}, "daily_limit"),
    ({"weekly_limit": -5}, "weekly_limit"),
    ({"weekly_limit": 2 ** 31}, "weekly_limit"),  # more than PostgreSQL's integer holds
    ({"daily_limit": "3"}, "daily_limit"),
    ({"surprise": True}, "surprise"),
]


@pytest.mark.parametrize("change, field", BAD_SERVICE_FIELDS)
def test_bad_service_fields_are_named(http, admin_key, change, field):
    response = http.post("/v1/services", json={**GOOD_SERVICE, **change}, headers=auth(admin_key))
    assert_problem(response, 422, field)


@pytest.mark.parametrize("missing", ["name", "duration_minutes"])
def test_a_service_needs_a_name_and_a_duration(http, admin_key, missing):
    body = {name: value for name, value in GOOD_SERVICE.items() if name != missing}
    assert_problem(http.post("/v1/services", json=body, headers=auth(admin_key)), 422, missing)


@pytest.fixture
def service_id(http, admin_key):
    return http.post("/v1/services", json=GOOD_SERVICE, headers=auth(admin_key)).get_json()["id"]


@pytest.mark.parametrize("change, field", [
    (change, field) for change, field in BAD_SERVICE_FIELDS if change != {"duration_minutes": None}
    and change != {"name": None}] + [({}, "body")])
def test_bad_service_patches_are_named(http, admin_key, service_id, change, field):
    response = http.patch(f"/v1/services/{service_id}", json=change, headers=auth(admin_key))
    assert_problem(response, 422, field)


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_a_service_if_match_that_is_no_entity_tag_list_is_400(http, admin_key, service_id, method):
    response = http.open(f"/v1/services/{service_id}", method=method,
                         json={"name": "B"} if method == "PATCH" else None,
                         headers={**auth(admin_key), "If-Match": "yesterday"})
    assert_problem(response, 400, "If-Match")


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_services_are_404_problems(http, admin_key, method):
    for path in (f"/v1/services/{MISSING}", "/v1/services/not-a-uuid"):
        response = http.open(path, method=method, json={"name": "B"} if method == "PATCH" else None,
                             headers=auth(admin_key))
        assert_problem(response, 404)


@pytest.mark.parametrize("path, field", [
    ("/v1/services?cursor=garbage", "cursor"),
    ("/v1/services?limit=0", "limit"),
    ("/v1/services?limit=101", "limit"),
])
def test_bad_service_list_queries_are_named(http, client_key, path, field):
    assert_problem(http.get(path, headers=auth(client_key)), 422, field)


@pytest.mark.parametrize("service_ids", [
    "not a list", ["not-a-uuid"], [42], [None], [MISSING], ["{" + MISSING + "}"], [MISSING] * 1001])
def test_bad_service_ids_are_named_on_provider_create_and_patch(http, admin_key, provider_id, service_ids):
    created = http.post("/v1/providers", json={**GOOD_PROVIDER, "service_ids": service_ids},
                        headers=auth(admin_key))
    patched = http.patch(f"/v1/providers/{provider_id}", json={"service_ids": service_ids},
                         headers=auth(admin_key))
    for response in (created, patched):
        assert_problem(response, 422)
        assert any(name.startswith("service_ids") for name in response.get_json()["errors"])


@pytest.mark.parametrize("service", ["not-a-uuid", 42, ["a"], MISSING, MISSING.replace("-", "")])
def test_a_bad_service_id_on_a_booking_is_named(http, client_key, provider_id, service):
    response = http.post("/v1/bookings", json={**good_booking(provider_id), "service_id": service},
                         headers=auth(client_key))
    assert_problem(response, 422, "service_id")


@pytest.mark.parametrize("service", ["not-a-uuid", MISSING, "{" + MISSING + "}"])
def test_a_bad_service_id_on_slots_is_named(http, client_key, provider_id, service):
    response = http.get(f"/v1/providers/{provider_id}/slots",
                        query_string={"date": "2030-01-07", "service_id": service}, headers=auth(client_key))
    assert_problem(response, 422, "service_id")


def test_a_booking_of_a_service_the_provider_does_not_offer_is_named(http, client_key, provider_id,
                                                                     service_id):
    response = http.post("/v1/bookings", json={**good_booking(provider_id), "service_id": service_id},
                         headers=auth(client_key))
    assert_problem(response, 422, "service_id")
