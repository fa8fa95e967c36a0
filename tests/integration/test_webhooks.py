"""Webhooks to a real HTTP receiver on loopback, verified with the `standardwebhooks`
library (not with our own signing code)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from tests.conftest import Api, auth, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


class Receiver:
    """A webhook receiver: answers with the scripted statuses (the last one repeats),
    records every request, and can hang until released."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses = [200]
        self.hang = threading.Event()
        self.release = threading.Event()
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with receiver._arrived:
                    receiver.requests.append({"headers": dict(self.headers), "body": body})
                    index = len(receiver.requests) - 1
                    receiver._arrived.notify_all()
                if receiver.hang.is_set():
                    receiver.release.wait(60)
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"

    def wait_for(self, count: int, timeout: float = 60) -> list[dict]:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"received {len(self.requests)} of {count}")
            return list(self.requests)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def all_workers(stack):
    deciders = start_workers(processes=1)
    senders = start_workers(processes=1, threads=4, queue="webhooks")
    yield
    deciders.stop()
    senders.stop()


@pytest.fixture
def setup(all_workers, web, admin_api: Api, admin_key):
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    created = admin_api.http.post("/v1/api-keys", json={"name": "portal", "role": "client"}).json()
    return provider, Api(web, created["key"]), created


def a_start(hours: int = 0) -> str:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (first + timedelta(hours=hours)).isoformat()


def deliveries(client: Api, request_id: str) -> list[dict]:
    return client.http.get(f"/v1/booking-requests/{request_id}/deliveries").json()["items"]


def settled_deliveries(client: Api, request_id: str, timeout: float = 60) -> list[dict]:
    """The delivery log once nothing is pending: polled as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        items = deliveries(client, request_id)
        if items and all(d["status"] != "pending" for d in items) or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_the_outcome_arrives_signed_and_verifies_with_standardwebhooks(setup, receiver):
    provider, client, created = setup
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)

    delivered = receiver.wait_for(1)[0]
    payload = Webhook(created["webhook_secret"]).verify(delivered["body"], delivered["headers"])

    assert payload["type"] == "booking_request.succeeded"
    assert payload["data"] == client.http.get(f"/v1/booking-requests/{request['id']}").json()
    assert delivered["headers"]["webhook-id"].startswith("msg_")
    log = settled_deliveries(client, request["id"])
    assert [(d["status"], d["type"], len(d["attempts"])) for d in log] == [
        ("delivered", "booking_request.succeeded", 1)]
    assert log[0]["attempts"][0]["status_code"] == 200


def test_a_rejection_is_delivered_as_booking_request_rejected(setup, receiver):
    provider, client, created = setup
    client.submit(provider["id"], a_start(), customer_id="first")
    client.submit(provider["id"], a_start(), callback_url=receiver.url)

    delivered = receiver.wait_for(1)[0]
    payload = Webhook(created["webhook_secret"]).verify(delivered["body"], delivered["headers"])
    assert payload["type"] == "booking_request.rejected"
    assert payload["data"]["reason"]["code"] == "slot_unavailable"


def test_a_flaky_receiver_gets_three_attempts_with_one_webhook_id(setup, receiver):
    provider, client, _ = setup
    receiver.statuses = [500, 502, 200]
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)

    attempts = receiver.wait_for(3)

    assert len({a["headers"]["webhook-id"] for a in attempts}) == 1
    log = settled_deliveries(client, request["id"])
    assert log[0]["status"] == "delivered"
    assert [a["status_code"] for a in log[0]["attempts"]] == [500, 502, 200]


def test_a_dead_receiver_ends_failed_after_the_schedule_and_the_booking_stands(setup, receiver):
    provider, client, _ = setup
    receiver.statuses = [500]
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)

    log = settled_deliveries(client, request["id"])

    assert log[0]["status"] == "failed"
    assert len(log[0]["attempts"]) == 3  # the first attempt and the schedule's two retries
    assert log[0]["next_attempt_at"] is None
    assert client.http.get(f"/v1/booking-requests/{request['id']}").json()["status"] == "succeeded"


def test_410_gone_stops_retrying(setup, receiver):
    provider, client, _ = setup
    receiver.statuses = [410]
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)

    log = settled_deliveries(client, request["id"])

    assert [(d["status"], len(d["attempts"])) for d in log] == [("failed", 1)]


def test_replay_resends_with_the_same_webhook_id(setup, receiver):
    provider, client, _ = setup
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)
    first = receiver.wait_for(1)[0]
    delivery = settled_deliveries(client, request["id"])[0]

    replay = client.http.post(
        f"/v1/booking-requests/{request['id']}/deliveries/{delivery['id']}/retry")

    assert replay.status_code == 202
    again = receiver.wait_for(2)[1]
    assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"]
    assert again["body"] == first["body"]


def test_a_replay_asked_for_during_an_attempt_is_sent_after_it(setup, receiver):
    provider, client, _ = setup
    receiver.hang.set()
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)
    first = receiver.wait_for(1)[0]  # the first attempt is now in flight
    delivery = deliveries(client, request["id"])[0]

    replay = client.http.post(f"/v1/booking-requests/{request['id']}/deliveries/{delivery['id']}/retry")
    receiver.release.set()

    assert replay.status_code == 202
    again = receiver.wait_for(2, timeout=30)[1]
    assert again["headers"]["webhook-id"] == first["headers"]["webhook-id"]


def test_during_rotation_both_old_and_new_secrets_verify(setup, receiver):
    provider, client, created = setup
    rotated = client.http.post(f"/v1/api-keys/{created['id']}/rotate-webhook-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["webhook_secret"]
    assert new_secret != created["webhook_secret"]

    client.submit(provider["id"], a_start(), callback_url=receiver.url)
    delivered = receiver.wait_for(1)[0]

    for secret in (created["webhook_secret"], new_secret):
        assert Webhook(secret).verify(delivered["body"], delivered["headers"])["type"]
    assert len(delivered["headers"]["webhook-signature"].split(" ")) == 2


def test_a_hanging_receiver_does_not_delay_other_decisions(setup, receiver):
    provider, client, _ = setup
    receiver.hang.set()
    hung = client.submit(provider["id"], a_start(), callback_url=receiver.url)
    receiver.wait_for(1)  # the delivery is now stuck inside the receiver

    later = client.decided(client.submit(provider["id"], a_start(hours=1))["id"], timeout=30)

    assert later["status"] == "succeeded"
    assert [(d["status"], d["attempts"]) for d in deliveries(client, hung["id"])] == [("pending", [])]
    receiver.release.set()
    assert settled_deliveries(client, hung["id"])[0]["status"] == "delivered"


def test_registered_endpoints_receive_booking_events(setup, receiver, admin_api: Api):
    provider, client, created = setup
    endpoint = client.http.post("/v1/webhook-endpoints", json={
        "url": receiver.url, "events": ["booking.confirmed", "booking.cancelled"]})
    assert endpoint.status_code == 201
    assert client.http.post("/v1/webhook-endpoints", json={
        "url": receiver.url, "events": ["booking.confirmed"], "all_clients": True}).status_code == 403

    booking = client.decided(client.submit(provider["id"], a_start())["id"])["booking"]
    client.decided(client.http.post(f"/v1/bookings/{booking['id']}/cancel", json={}).json()["id"])

    events = [Webhook(created["webhook_secret"]).verify(r["body"], r["headers"])
              for r in receiver.wait_for(2)]
    assert sorted(e["type"] for e in events) == ["booking.cancelled", "booking.confirmed"]
    assert {e["data"]["id"] for e in events} == {booking["id"]}
    assert [e["id"] for e in client.http.get("/v1/webhook-endpoints").json()["items"]] == [
        endpoint.json()["id"]]
    assert client.http.delete(f"/v1/webhook-endpoints/{endpoint.json()['id']}").status_code == 204


def test_another_client_cannot_see_or_replay_deliveries(setup, receiver, web, other_client_key):
    provider, client, _ = setup
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)
    delivery = settled_deliveries(client, request["id"])[0]
    other = Api(web, other_client_key)

    assert other.http.get(f"/v1/booking-requests/{request['id']}/deliveries").status_code == 404
    assert other.http.post(f"/v1/booking-requests/{request['id']}/deliveries/"
                           f"{delivery['id']}/retry").status_code == 404


def test_a_client_sees_and_replays_only_deliveries_to_its_own_urls(setup, receiver, admin_api: Api):
    provider, client, _ = setup
    admin_url = receiver.url.replace("/hooks", "/admin-hooks")
    assert admin_api.http.post("/v1/webhook-endpoints", json={
        "url": admin_url, "events": ["booking_request.succeeded"], "all_clients": True}).status_code == 201
    request = client.submit(provider["id"], a_start(), callback_url=receiver.url)
    client.decided(request["id"])

    everything = settled_deliveries(admin_api, request["id"])
    admins = next(d for d in everything if d["url"] == admin_url)
    own = deliveries(client, request["id"])
    replay = client.http.post(f"/v1/booking-requests/{request['id']}/deliveries/{admins['id']}/retry")

    assert sorted(d["url"] for d in everything) == sorted([receiver.url, admin_url])
    assert [d["url"] for d in own] == [receiver.url]
    assert replay.status_code == 404
    assert admin_api.http.post(f"/v1/booking-requests/{request['id']}/deliveries/"
                               f"{own[0]['id']}/retry").status_code == 202


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/hook", "http://[::1]/hook",
    "http://10.1.2.3/hook", "http://172.16.0.9/hook", "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data", "http://169.254.10.10/hook", "http://0.0.0.0/hook",
])
def test_private_targets_are_refused_unless_allowed(http, client_key, admin_key, url, setting_env):
    setting_env("BOOKING_WEBHOOK_ALLOW_PRIVATE")
    provider = http.post("/v1/providers", json={"name": "P", "timezone": "UTC",
                                                "weekly_schedule": ALL_WEEK},
                         headers=auth(admin_key)).get_json()
    submit = http.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                             "start": a_start(), "callback_url": url},
                       headers=auth(client_key))
    endpoint = http.post("/v1/webhook-endpoints", json={"url": url, "events": ["booking.confirmed"]},
                         headers=auth(client_key))

    assert submit.status_code == 422 and "callback_url" in submit.get_json()["errors"]
    assert endpoint.status_code == 422 and "url" in endpoint.get_json()["errors"]
    setting_env("BOOKING_WEBHOOK_ALLOW_PRIVATE", "1")
    allowed = http.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                              "start": a_start(), "callback_url": url},
                        headers=auth(client_key))
    assert allowed.status_code == 202
    assert json.loads(allowed.get_data())["callback_url"] == url
