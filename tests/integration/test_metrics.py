"""GET /metrics through real processes: two gunicorn workers, two dramatiq decision
processes and a webhook sender, all writing into one fresh PROMETHEUS_MULTIPROC_DIR. The
scrape, parsed with prometheus_client's own parser, must sum every one of them to
exactly what the API says happened."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from booking.stack import free_port, port_is_open
from tests.conftest import Api, ProcessGroup, auth, running_web, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
CREATE_ROUTE = "/v1/bookings"
CANCEL_ROUTE = "/v1/bookings/<uuid:booking_id>/cancel"
SLOTS_PER_ROUND = 4  # each asked for by two customers: one wins, one is slot_unavailable
MAX_ROUNDS = 10


# --- the processes -----------------------------------------------------------------

@dataclass
class Service:
    base_url: str
    web: ProcessGroup
    deciders: ProcessGroup
    senders: ProcessGroup
    metrics_dir: Path
    dramatiq_own_dir: Path  # where stock Dramatiq middleware would have written
    dramatiq_own_port: int  # where it would have served


@pytest.fixture
def service(stack, db, tmp_path) -> Service:
    metrics_dir, dramatiq_own_dir = tmp_path / "metrics", tmp_path / "dramatiq-prometheus"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "dramatiq_prom_db": str(dramatiq_own_dir),
           "dramatiq_prom_port": str(free_port())}
    deciders = start_workers(processes=2, **env)
    senders = start_workers(processes=1, queue="webhooks", **env)
    try:
        with running_web(processes=2, **env) as (base_url, web):
            yield Service(base_url, web, deciders, senders, metrics_dir, dramatiq_own_dir,
                          int(env["dramatiq_prom_port"]))
    finally:
        deciders.stop()
        senders.stop()


class Receiver:
    """A webhook receiver on loopback answering every POST with one status."""

    def __init__(self, status: int):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"


@pytest.fixture
def receivers():
    ok, broken = Receiver(200), Receiver(500)
    yield ok, broken
    ok.server.shutdown()
    broken.server.shutdown()


# --- scraping ------------------------------------------------------------------------

class Scrape:
    """One /metrics answer, parsed by prometheus_client.parser."""

    def __init__(self, text: str):
        self.text = text
        self.samples = [sample for family in text_string_to_metric_families(text)
                        for sample in family.samples]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def by(self, name: str, *label_names: str) -> dict[tuple, float]:
        """The samples called `name`, non-zero, keyed by the values of `label_names`."""
        found = Counter()
        for s in self.samples:
            if s.name == name and s.value:
                found[tuple(s.labels[n] for n in label_names)] += s.value
        return dict(found)

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def scrape(base_url: str, key: str) -> Scrape:
    response = httpx.get(f"{base_url}/metrics", headers=auth(key), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def scrape_once(base_url: str, key: str, settled, timeout: float = 30) -> Scrape:
    """The scrape once `settled(scrape)` holds: a worker counts just after its commit,
    so the last decision or delivery a client sees may not be counted yet."""
    deadline = time.monotonic() + timeout
    while True:
        result = scrape(base_url, key)
        if settled(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def file_totals(path: Path, name: str, **labels: str) -> float:
    """What the one process that wrote `path` counted."""
    return sum(s.value for family in MultiProcessCollector.merge([str(path)])
               for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def children(group: ProcessGroup) -> list[int]:
    return [child.pid for child in psutil.Process(group.process.pid).children()]


# --- the client's side ---------------------------------------------------------------

def a_start(hour: int) -> str:
    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    return (day + timedelta(hours=hour)).isoformat()


def post_on_new_connection(base_url: str, key: str, path: str, body: dict) -> dict:
    """A POST on a connection of its own, so that the kernel hands it to whichever
    gunicorn worker it likes, not to the one holding a kept-alive connection."""
    response = httpx.post(f"{base_url}{path}", json=body, headers={**auth(key), "Connection": "close"},
                          timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def submit_round(base_url: str, key: str, provider_id: str, round_: int, callback_urls: list) -> list[dict]:
    """SLOTS_PER_ROUND new slots, each asked for by two customers at once."""
    bodies = [{"provider_id": provider_id, "customer_id": f"c-{round_}-{slot}-{who}",
               "start": a_start(round_ * SLOTS_PER_ROUND + slot)}
              for slot in range(SLOTS_PER_ROUND) for who in ("a", "b")]
    for body, url in zip(bodies, callback_urls, strict=False):
        body["callback_url"] = url
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: post_on_new_connection(base_url, key, CREATE_ROUTE, body), bodies))


def web_workers_that_served_creates(service: Service) -> set[int]:
    return {pid for pid in children(service.web)
            if (service.metrics_dir / f"counter_{pid}.db").exists()
            and file_totals(service.metrics_dir / f"counter_{pid}.db", "http_requests_total",
                            method="POST", route=CREATE_ROUTE) > 0}


def delivery_attempts(client: Api, request_ids: list[str], timeout: float = 60) -> Counter:
    """Attempts by outcome as /metrics counts them, from the requests' delivery logs once
    none is pending (polled as a client would)."""
    deadline = time.monotonic() + timeout
    while True:
        logs = [client.http.get(f"/v1/booking-requests/{rid}/deliveries").json()["items"]
                for rid in request_ids]
        settled = all(log and all(d["status"] != "pending" for d in log) for log in logs)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    outcomes = Counter()
    for delivery in (d for log in logs for d in log):
        outcomes[delivery["status"]] += 1  # the last attempt: delivered, or given up (failed)
        if len(delivery["attempts"]) > 1:
            outcomes["retried"] += len(delivery["attempts"]) - 1
    return outcomes


def seconds_to_decision(decided: dict) -> float:
    return max(0.0, (datetime.fromisoformat(decided["decided_at"])
                     - datetime.fromisoformat(decided["created_at"])).total_seconds())


# --- the tests -----------------------------------------------------------------------

def test_the_scrape_sums_every_process_to_what_happened(service, receivers, admin_key, client_key):
    admin, client = Api(service.base_url, admin_key), Api(service.base_url, client_key)
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    ok_receiver, broken_receiver = receivers

    # Given creates in rounds (half win their slot, half find it taken), from many
    # connections, until both gunicorn workers have served some
    accepted, rounds = [], 0
    while rounds < 3 or (len(web_workers_that_served_creates(service)) < 2 and rounds < MAX_ROUNDS):
        callbacks = [ok_receiver.url, ok_receiver.url, broken_receiver.url] if rounds == 0 else []
        accepted += submit_round(service.base_url, client_key, provider["id"], rounds, callbacks)
        rounds += 1
    # ... one of them sent again with the Idempotency-Key it was first sent with
    first = client.http.post(CREATE_ROUTE, headers={"Idempotency-Key": "once"}, json={
        "provider_id": provider["id"], "customer_id": "c-once", "start": a_start(100)})
    again = client.http.post(CREATE_ROUTE, headers={"Idempotency-Key": "once"}, json={
        "provider_id": provider["id"], "customer_id": "c-once", "start": a_start(100)})
    assert first.status_code == again.status_code == 202 and first.json()["id"] == again.json()["id"]
    accepted.append(first.json())
    decided = [client.decided(request["id"]) for request in accepted]
    # ... and cancels: two bookings, one of them twice (the second finds it cancelled)
    won = [request["booking_id"] for request in decided if request["status"] == "succeeded"][:2]
    cancels = [post_on_new_connection(service.base_url, client_key, f"/v1/bookings/{booking_id}/cancel", {})
               for booking_id in (won[0], won[1], won[0])]
    decided += [client.decided(request["id"]) for request in cancels]
    # ... and a path no route matches
    stray = f"/no-such-page-{uuid.uuid4().hex}"
    assert httpx.get(f"{service.base_url}{stray}").status_code == 404

    # When scraped once the workers have counted what they did
    expected_outcomes = Counter((r["kind"], r["status"], (r["reason"] or {}).get("code", ""))
                                for r in decided)
    expected_deliveries = delivery_attempts(client, [r["id"] for r in accepted if r["callback_url"]])
    result = scrape_once(service.base_url, admin_key, lambda s: (
        s.total("booking_requests_decided_total") == len(decided)
        and s.total("booking_webhook_deliveries_total") == sum(expected_deliveries.values())
        and s.total("booking_queue_depth") == 0 and s.total("booking_webhook_backlog") == 0))

    # Then every counter sums, over every process, to exactly what the API says happened
    n_creates = SLOTS_PER_ROUND * 2 * rounds + 1
    assert len(decided) == n_creates + 3
    assert result.by("booking_requests_accepted_total", "kind") == {("create",): n_creates, ("cancel",): 3}
    assert result.by("booking_requests_decided_total", "kind", "status", "reason") == expected_outcomes
    assert expected_outcomes[("create", "succeeded", "")] == SLOTS_PER_ROUND * rounds + 1
    assert expected_outcomes[("create", "rejected", "slot_unavailable")] == SLOTS_PER_ROUND * rounds
    assert expected_outcomes[("cancel", "rejected", "booking_cancelled")] == 1
    # ... the latency histogram holds each decision once, as its timestamps say
    assert result.by("booking_decision_latency_seconds_count", "kind") == {
        ("create",): n_creates, ("cancel",): 3}
    assert result.total("booking_decision_latency_seconds_count") == len(decided)
    assert result.total("booking_decision_latency_seconds_sum") == pytest.approx(
        sum(seconds_to_decision(r) for r in decided), abs=1e-3)
    assert result.total("booking_decision_latency_seconds_bucket", kind="create", le="+Inf") == n_creates
    # ... webhook attempts by outcome, as the delivery logs tell them
    assert expected_deliveries == {"delivered": 2, "retried": 2, "failed": 1}
    assert result.by("booking_webhook_deliveries_total", "outcome") == {
        (outcome,): count for outcome, count in expected_deliveries.items()}
    # ... HTTP requests by route (the rule, never the path), both gunicorn workers' summed
    assert result.total("http_requests_total", method="POST", route=CREATE_ROUTE,
                        status="202") == n_creates + 1
    assert result.total("http_requests_total", method="POST", route=CANCEL_ROUTE, status="202") == 3
    assert result.total("http_request_duration_seconds_count", route=CREATE_ROUTE) == n_creates + 1
    assert result.total("http_requests_total", route="<unmatched>", status="404") >= 1
    assert stray not in result.text and won[0] not in result.text
    served = web_workers_that_served_creates(service)
    assert len(served) == 2, f"only gunicorn worker(s) {served} served creates in {rounds} rounds"
    assert sum(file_totals(service.metrics_dir / f"counter_{pid}.db", "http_requests_total",
                           method="POST", route=CREATE_ROUTE) for pid in served) == n_creates + 1
    # ... the gauges read from PostgreSQL: present, and all drained
    gauges = ("booking_queue_depth", "booking_queue_oldest_age_seconds", "booking_webhook_backlog")
    assert {s.name for s in result.samples} >= set(gauges)
    assert result.total("booking_queue_depth") == 0
    assert result.total("booking_queue_oldest_age_seconds") == 0
    assert result.total("booking_webhook_backlog") == 0
    # ... and Dramatiq's own, written where ours are, with no exposition server of its own
    assert result.total("dramatiq_messages_total", queue_name="decisions") > 0
    assert result.total("dramatiq_messages_total", queue_name="webhooks") > 0
    assert not list(service.dramatiq_own_dir.glob("*.db"))
    assert not port_is_open(service.dramatiq_own_port)


def test_an_exited_worker_leaves_its_counts_but_not_its_live_gauges(service, admin_key, client_key):
    client = Api(service.base_url, client_key)
    provider = Api(service.base_url, admin_key).create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    requests = [client.submit(provider["id"], a_start(hour), customer_id=f"c-{hour}") for hour in range(6)]
    assert all(client.decided(r["id"])["status"] == "succeeded" for r in requests)
    deciders = children(service.deciders)
    settled = scrape_once(service.base_url, admin_key,
                          lambda s: s.total("booking_requests_decided_total") == len(requests))
    assert settled.total("booking_requests_decided_total") == len(requests)
    live_gauges = [service.metrics_dir / f"gauge_livesum_{pid}.db" for pid in deciders]
    assert any(path.exists() for path in live_gauges)  # dramatiq_messages_inprogress

    # as a supervisor stops it (docker stop, systemd): SIGTERM to dramatiq's main process,
    # which stops its worker processes
    os.kill(service.deciders.process.pid, signal.SIGTERM)
    service.deciders.process.wait(timeout=60)

    assert not any(path.exists() for path in live_gauges)
    after = scrape(service.base_url, admin_key)
    assert after.total("booking_requests_decided_total", kind="create", status="succeeded") == len(requests)
    assert after.total("dramatiq_messages_inprogress") == 0


def test_metrics_need_an_admin_key(stack, admin_key, client_key, tmp_path):
    with running_web(processes=1, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)) as (base_url, _web):
        anonymous = httpx.get(f"{base_url}/metrics")
        as_client = httpx.get(f"{base_url}/metrics", headers=auth(client_key))
        as_admin = httpx.get(f"{base_url}/metrics", headers=auth(admin_key))

    assert anonymous.status_code == 401 and as_client.status_code == 403
    for refused in (anonymous, as_client):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == refused.status_code
        assert "booking_requests_decided" not in refused.text
    assert as_admin.status_code == 200 and "booking_queue_depth" in as_admin.text


def test_public_metrics_of_a_single_process_without_a_multiprocess_dir(stack, db, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with running_web(processes=1, BOOKING_METRICS_PUBLIC="1") as (base_url, _web):
        assert httpx.get(f"{base_url}/healthz").status_code == 200

        response = httpx.get(f"{base_url}/metrics")

    assert response.status_code == 200, response.text
    result = Scrape(response.text)
    assert result.total("http_requests_total", method="GET", route="/healthz", status="200") == 1
    assert result.total("booking_queue_depth") == 0
    assert "process_cpu_seconds_total" in result.names()  # this process's own, as no directory is shared
    # what alerts watch is there at 0 before anything happened: rate() never counts a first sample
    zeros = {(s.name, s.labels.get("outcome"), s.labels.get("status"))
             for s in result.samples if s.value == 0}
    assert ("booking_webhook_deliveries_total", "failed", None) in zeros
    assert ("booking_requests_decided_total", None, "failed") in zeros
