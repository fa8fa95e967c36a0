"""Abuse limits: per-key rate limits shared through Redis, the undecided-request cap,
input bounds, response hardening, and secrets kept as secrets at rest."""

import re
import sys
import uuid

import httpx
import pytest
from cryptography.fernet import InvalidToken
from sqlalchemy import text

from api import create_app
from booking.stack import free_port, wait_for_port
from tests.conftest import ProcessGroup, auth, service_env

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


@pytest.fixture
def strict_http(stack, db):
    app = create_app({"TESTING": True, "RATE_LIMIT_READ": "5/minute", "RATE_LIMIT_SUBMIT": "2/minute",
                      "CORS_ORIGINS": {"https://portal.example"}})
    return app.test_client()


def new_provider(http, admin_key) -> str:
    response = http.post("/v1/providers", json={"name": "P", "timezone": "UTC",
                                                "weekly_schedule": ALL_WEEK}, headers=auth(admin_key))
    return response.get_json()["id"]


def submit(http, key, provider_id, hour=9):
    return http.post("/v1/bookings", json={"provider_id": provider_id, "customer_id": "c",
                                           "start": f"2030-01-07T{hour:02}:00:00Z"}, headers=auth(key))


def test_reads_past_the_budget_get_429_with_rate_limit_headers(strict_http, client_key):
    answers = [strict_http.get("/v1/bookings", headers=auth(client_key)) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "5" for a in answers)
    refused = answers[-1]
    assert refused.mimetype == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert 0 < int(refused.headers["RateLimit-Reset"]) <= 60


def test_submits_have_their_own_budget_and_keys_do_not_share(strict_http, stack, client_key,
                                                             other_client_key, admin_key):
    provider_id = new_provider(create_app({"TESTING": True}).test_client(), admin_key)

    mine = [submit(strict_http, client_key, provider_id, hour).status_code for hour in (9, 10, 11)]
    read = strict_http.get("/v1/bookings", headers=auth(client_key))
    theirs = submit(strict_http, other_client_key, provider_id, 12)

    assert mine == [202, 202, 429]
    assert read.status_code == 200 and read.headers["RateLimit-Limit"] == "5"
    assert theirs.status_code == 202


def test_the_budget_is_shared_by_two_web_processes(stack, db, client_key):
    port = free_port()
    server = ProcessGroup([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"],
                          service_env(PORT=str(port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY="2",
                                      BOOKING_RATE_LIMIT_READ="10/minute"))
    try:
        wait_for_port(port)
        statuses, served_by = [], set()
        while len(served_by) < 2 and len(statuses) < 300:  # fresh connections until both served
            statuses.append(httpx.get(f"http://127.0.0.1:{port}/v1/bookings",
                                      headers=auth(client_key)).status_code)
            served_by = set(re.findall(r'<(\d+)> \\?"GET /v1/bookings', "".join(server.output)))
    finally:
        server.stop()
    assert len(served_by) == 2, "one process served everything; the test proved nothing"
    assert statuses.count(200) == min(10, len(statuses))
    assert set(statuses) <= {200, 429}


def test_a_client_may_not_flood_the_queue(http, admin_key, client_key, other_client_key, setting_env):
    setting_env("BOOKING_MAX_QUEUED_PER_CLIENT", "3")
    provider_id = new_provider(http, admin_key)

    mine = [submit(http, client_key, provider_id, hour) for hour in (9, 10, 11, 12)]
    theirs = submit(http, other_client_key, provider_id, 13)

    assert [r.status_code for r in mine] == [202, 202, 202, 429]
    assert "api_key" in mine[-1].get_json()["errors"]
    assert mine[-1].headers["Retry-After"] == "1"
    assert theirs.status_code == 202


def test_json_nesting_is_bounded(http, client_key):
    deep = http.post("/v1/bookings", data="[" * 33 + "]" * 33,
                     headers={**auth(client_key), "Content-Type": "application/json"})
    shallow = http.post("/v1/bookings", data="[" * 32 + "]" * 32,
                        headers={**auth(client_key), "Content-Type": "application/json"})

    assert deep.status_code == 400 and "body" in deep.get_json()["errors"]
    assert shallow.status_code == 422


def test_responses_are_hardened(strict_http, client_key):
    response = strict_http.get("/v1/bookings", headers=auth(client_key))

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_cors_answers_listed_origins_only_and_never_with_credentials(strict_http, client_key):
    preflight = {"Origin": "https://portal.example", "Access-Control-Request-Method": "POST"}
    listed = strict_http.options("/v1/bookings", headers=preflight)
    unlisted = strict_http.options("/v1/bookings", headers={**preflight, "Origin": "https://evil.example"})
    actual = strict_http.get("/v1/bookings", headers={**auth(client_key), "Origin": "https://portal.example"})

    assert listed.status_code == 204
    assert listed.headers["Access-Control-Allow-Origin"] == "https://portal.example"
    allowed = {h.strip() for h in listed.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"Authorization", "Idempotency-Key", "Prefer", "X-Request-Id"} <= allowed
    assert "Access-Control-Allow-Origin" not in unlisted.headers
    assert actual.headers["Access-Control-Allow-Origin"] == "https://portal.example"
    assert {"RateLimit-Remaining", "X-Request-Id"} <= {
        h.strip() for h in actual.headers["Access-Control-Expose-Headers"].split(",")}
    assert all("Access-Control-Allow-Credentials" not in r.headers for r in (listed, actual))


def test_server_tells_no_version(web):
    response = httpx.get(f"{web}/healthz")
    assert not re.search(r"\d", response.headers.get("Server", ""))


def test_a_database_dump_holds_no_usable_secret(http, db, admin_key, monkeypatch):
    created = http.post("/v1/api-keys", json={"name": "portal", "role": "client"},
                        headers=auth(admin_key)).get_json()
    with db.connect() as conn:
        row = conn.execute(text("SELECT * FROM api_keys WHERE id = :id"),
                           {"id": uuid.UUID(created["id"])}).mappings().one()

    dump = " ".join(str(value) for value in row.values())
    assert created["key"] not in dump and created["webhook_secret"] not in dump
    assert row["webhook_secret"].startswith("enc:v1:")
    assert created["key"].startswith("bk_")
    from booking.secrets import unseal

    assert unseal(row["webhook_secret"]) == created["webhook_secret"]
    monkeypatch.setenv("BOOKING_SECRET_KEY", "a-different-key")
    with pytest.raises(InvalidToken):
        unseal(row["webhook_secret"])
