"""Drive every endpoint with real keys against real processes (gunicorn with two
workers, two dramatiq decision workers, the webhook sender), capture everything they
write, and read it as an operator's log pipeline would: every line one JSON object; the
client's X-Request-Id on the web's, the decision worker's and the webhook sender's lines
about its request; a malformed one replaced; and no secrets (API keys, webhook secrets,
signatures, Authorization, a token in a webhook URL's query string, BOOKING_SECRET_KEY)."""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Api, running_web, start_workers
from tests.integration.test_webhooks import ALL_WEEK, Receiver

BOGUS_KEY = "bk_this_key_does_not_exist_but_must_not_be_logged_either"
# Every character class a sane id may use.
CLIENT_REQUEST_ID = f"client-{uuid.uuid4().hex[:12]}:trace_1.2"
MARKER = f"malformed{uuid.uuid4().hex[:12]}"  # never in any line: a malformed id is dropped whole
MALFORMED_REQUEST_IDS = {"too long": MARKER + "x" * 200, "a control character": f"{MARKER}\tid",
                         "a space": f"{MARKER} id", "a quote": f'{MARKER}"id'}
MADE_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# dramatiq's main process writes its own lines (booting, forwarding a stop signal) before
# it would ever import our code; its worker processes' lines are ours from process boot on.
DRAMATIQ_MAIN_PROCESS = "] [dramatiq.MainProcess] ["


def a_start(hours: int) -> str:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (first + timedelta(hours=hours)).isoformat()


@dataclass
class Flow:
    secrets: list[str] = field(default_factory=list)
    accepted: httpx.Response | None = None  # the submit made under CLIENT_REQUEST_ID
    resource: dict = field(default_factory=dict)  # its request, once decided
    malformed: dict[str, tuple[httpx.Response, dict]] = field(default_factory=dict)
    web: list[str] = field(default_factory=list)
    deciders: list[str] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)

    def every_line(self) -> list[str]:
        return self.web + self.deciders + self.senders


def drive_every_endpoint(base: str, admin: Api, receiver: Receiver, flow: Flow) -> None:
    """Every operation, as clients would use it; notes the secrets that were in play."""
    url_token = f"qs_{uuid.uuid4().hex}"  # receivers put tokens in query strings
    hook_url = f"{receiver.url}?token={url_token}"
    created = admin.http.post("/v1/api-keys", json={"name": "portal", "role": "client"}).json()
    client = Api(base, created["key"])
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    pid = provider["id"]
    admin.http.get("/v1/providers")
    admin.http.get(f"/v1/providers/{pid}")
    admin.http.patch(f"/v1/providers/{pid}", json={"name": "Renamed"}, headers={"If-Match": '"1"'})
    off = admin.http.post(f"/v1/providers/{pid}/time-off",
                          json={"start": a_start(30), "end": a_start(31), "reason": "x"}).json()
    admin.http.get(f"/v1/providers/{pid}/time-off")
    admin.http.delete(f"/v1/providers/{pid}/time-off/{off['id']}")
    client.http.get(f"/v1/providers/{pid}/slots", params={"date": a_start(0)[:10]})
    endpoint = client.http.post("/v1/webhook-endpoints", json={
        "url": hook_url, "events": ["booking.confirmed"]}).json()
    client.http.get("/v1/webhook-endpoints")
    flow.accepted = submit(client, pid, a_start(1), CLIENT_REQUEST_ID, callback_url=hook_url)
    request = flow.accepted.json()
    flow.resource = client.decided(request["id"])
    booking = flow.resource["booking"]
    client.decided(client.http.post(f"/v1/bookings/{booking['id']}/reschedule",
                                    json={"start": a_start(2), "callback_url": hook_url}).json()["id"])
    client.decided(client.http.post(f"/v1/bookings/{booking['id']}/cancel",
                                    json={"reason": "ill", "callback_url": hook_url}).json()["id"])
    client.http.get("/v1/bookings")
    client.http.get(f"/v1/bookings/{booking['id']}")
    client.http.get("/v1/booking-requests")
    receiver.wait_for(4)
    deliveries = client.http.get(f"/v1/booking-requests/{request['id']}/deliveries").json()["items"]
    assert {d["url"] for d in deliveries} == {hook_url}  # the token did travel
    client.http.post(f"/v1/booking-requests/{request['id']}/deliveries/{deliveries[0]['id']}/retry")
    rotated = client.http.post(f"/v1/api-keys/{created['id']}/rotate-webhook-secret").json()
    client.http.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    for hours, (name, malformed) in enumerate(MALFORMED_REQUEST_IDS.items(), start=3):
        accepted = submit(client, pid, a_start(hours), malformed)
        flow.malformed[name] = accepted, client.decided(accepted.json()["id"])
    admin.http.get("/v1/api-keys")
    # hostile and broken calls, which are the ones most likely to be logged
    httpx.get(f"{base}/v1/bookings", headers={"Authorization": f"Bearer {BOGUS_KEY}"})
    client.http.post("/v1/bookings", content=f'{{"customer_id": "{created["key"]}"',
                     headers={"Content-Type": "application/json"})
    client.http.get(f"/v1/bookings?cursor={created['webhook_secret'][:40]}")
    admin.http.delete(f"/v1/api-keys/{created['id']}")
    client.http.get("/v1/bookings")  # revoked: 401
    receiver.wait_for(5)
    flow.secrets += [created["key"], created["webhook_secret"], rotated["webhook_secret"], BOGUS_KEY,
                     url_token, *{r["headers"]["webhook-signature"] for r in receiver.requests}]


def submit(client: Api, provider_id: str, start: str, request_id: str, **extra) -> httpx.Response:
    response = client.http.post("/v1/bookings", headers={"X-Request-Id": request_id}, json={
        "provider_id": provider_id, "customer_id": "c-1", "start": start, **extra})
    assert response.status_code == 202, response.text
    return response


@pytest.fixture(scope="module")
def flow(stack) -> Flow:
    """The whole flow once, through every process; what each one wrote, once stopped."""
    from booking.services.keys import create_key

    admin_key = create_key("log test admin", "admin").key
    flow = Flow(secrets=[admin_key, os.environ["BOOKING_SECRET_KEY"]])
    receiver = Receiver()
    deciders = start_workers(processes=2)
    senders = start_workers(processes=1, queue="webhooks")
    try:
        with running_web(processes=2) as (base, web):
            drive_every_endpoint(base, Api(base, admin_key), receiver, flow)
    finally:
        for group in (deciders, senders):
            group.stop()
        receiver.server.shutdown()
    flow.web, flow.deciders, flow.senders = web.output, deciders.output, senders.output
    return flow


def parsed(lines: list[str]) -> list[dict]:
    """The lines that are JSON objects, as objects (that every line is one: the first test)."""
    return [record for record in map(as_object, lines) if record is not None]


def as_object(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def about(lines: list[str], request_id: str) -> list[dict]:
    return [line for line in parsed(lines) if line.get("request_id") == request_id]


def test_every_line_of_every_process_is_one_json_object(flow):
    for process, lines in (("web", flow.web), ("decision workers", flow.deciders),
                           ("webhook sender", flow.senders)):
        not_json = [line for line in lines if as_object(line) is None and DRAMATIQ_MAIN_PROCESS not in line]
        assert not_json == [], f"{process} wrote lines that are no JSON object"
        assert all({"ts", "level", "logger", "msg", "pid"} <= r.keys() for r in parsed(lines))
    dramatiq_own = [line for line in flow.deciders + flow.senders if DRAMATIQ_MAIN_PROCESS in line]
    assert len(dramatiq_own) <= 2 * 2  # its boot line and the stop it forwards, per group


def test_we_captured_every_process(flow):
    web = parsed(flow.web)
    assert any(r["logger"] == "gunicorn.access" for r in web)
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["msg"] for r in web)
    assert sum("Worker process is ready" in r["msg"] for r in parsed(flow.deciders + flow.senders)) == 3
    assert any(r["msg"].startswith("webhook delivery") for r in parsed(flow.senders))


def test_the_client_request_id_is_echoed_and_kept_on_the_request(flow):
    assert flow.accepted.headers["X-Request-Id"] == CLIENT_REQUEST_ID
    assert flow.accepted.json()["request_id"] == CLIENT_REQUEST_ID
    assert flow.resource["status"] == "succeeded" and flow.resource["request_id"] == CLIENT_REQUEST_ID


def test_the_client_request_id_is_on_the_web_worker_and_webhook_lines_about_it(flow):
    request_id = flow.resource["id"]
    [submitted] = [r for r in about(flow.web, CLIENT_REQUEST_ID) if r["logger"] == "gunicorn.access"]
    assert (submitted["method"], submitted["path"], submitted["status"]) == ("POST", "/v1/bookings", 202)
    decided = [r for r in parsed(flow.deciders) if r.get("booking_request_id") == request_id]
    assert [(r["request_id"], r["kind"], r["status"]) for r in decided] == [
        (CLIENT_REQUEST_ID, "create", "succeeded")]
    sent = [r for r in parsed(flow.senders) if r.get("booking_request_id") == request_id]
    # the callback, the endpoint's booking.confirmed, and the retry asked for
    assert len(sent) >= 3 and {r.get("request_id") for r in sent} == {CLIENT_REQUEST_ID}
    assert {r["event_type"] for r in sent} == {"booking_request.succeeded", "booking.confirmed"}


@pytest.mark.parametrize("name", MALFORMED_REQUEST_IDS)
def test_a_malformed_request_id_is_replaced_by_a_made_one(flow, name):
    accepted, resource = flow.malformed[name]
    made = accepted.headers["X-Request-Id"]
    assert MADE_REQUEST_ID.fullmatch(made)
    assert resource["request_id"] == made
    assert ("gunicorn.access", "POST") in {(r["logger"], r.get("method")) for r in about(flow.web, made)}
    assert [r["status"] for r in about(flow.deciders, made)] == ["succeeded"]
    assert MARKER not in "".join(flow.every_line())


def test_no_secret_reaches_any_log(flow):
    logs = "".join(flow.every_line())
    assert "GET /v1/bookings" in logs  # we did capture
    for secret in flow.secrets:
        for signature in secret.split(" "):
            assert signature.removeprefix("v1,") not in logs
    assert "Bearer" not in logs and "whsec_" not in logs
