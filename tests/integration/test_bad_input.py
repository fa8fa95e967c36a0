"""Hostile and malformed input: always a 4xx application/problem+json naming the
problem, never a 5xx."""

import json
import uuid

import pytest

from tests.conftest import auth

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


def test_if_match_must_be_an_etag(http, admin_key, provider_id):
    response = http.patch(f"/v1/providers/{provider_id}", json={"name": "B"},
                          headers={**auth(admin_key), "If-Match": "yesterday"})
    assert_problem(response, 422, "If-Match")


def test_error_bodies_never_echo_stack_traces(http, client_key):
    response = http.post("/v1/bookings", data=json.dumps({"start": {"$gt": ""}}),
                         headers={**auth(client_key), "Content-Type": "application/json"})
    assert "Traceback" not in response.get_data(as_text=True)
    assert_problem(response, 422, "start")
