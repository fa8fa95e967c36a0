"""The operators' summary (`GET /v1/ops/summary`, `booking status`) over real gunicorn,
real dramatiq worker processes, PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from booking.heartbeat import BEAT_TTL_S
from tests.conftest import REPO_ROOT, Api, start_workers
from tests.integration.test_webhooks import ALL_WEEK, Receiver, a_start

NO_WORKERS = {"decisions": 0, "webhooks": 0}


def summary(api: Api) -> dict:
    response = api.http.get("/v1/ops/summary")
    assert response.status_code == 200, response.text
    return response.json()


def summary_once(api: Api, condition: Callable[[dict], bool], timeout: float) -> tuple[dict, float]:
    """The first summary that meets `condition`, polled until `timeout` seconds have
    passed, and how long it took; fails with the last summary read otherwise."""
    began = time.monotonic()
    while True:
        read = summary(api)
        if condition(read):
            return read, time.monotonic() - began
        assert time.monotonic() - began < timeout, f"not within {timeout}s: {json.dumps(read, indent=1)}"
        time.sleep(0.2)


def booking_status(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`booking status` as an operator runs it, in its own process."""
    result = subprocess.run([sys.executable, "-m", "booking.cli", "status", *args], cwd=REPO_ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def latency_s(request: dict) -> float:
    return (datetime.fromisoformat(request["decided_at"])
            - datetime.fromisoformat(request["created_at"])).total_seconds()


@pytest.fixture
def admin(admin_api: Api) -> Api:
    """The admin's view, once no worker process of an earlier test is still counted (a
    killed one drops out within the heartbeat TTL)."""
    summary_once(admin_api, lambda s: s["live_workers"] == NO_WORKERS, timeout=BEAT_TTL_S + 2)
    return admin_api


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_a_client_key_is_refused_and_no_key_is_unauthorized(client_api: Api, web):
    refused = client_api.http.get("/v1/ops/summary")
    anonymous = client_api.http.get("/v1/ops/summary", headers={"Authorization": ""})

    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 403
    assert anonymous.status_code == 401


def test_the_queue_grows_while_no_worker_runs_and_drains_into_counted_decisions(admin: Api):
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    submitted = [admin.submit(provider["id"], a_start(0)), admin.submit(provider["id"], a_start(1)),
                 admin.submit(provider["id"], a_start(0), customer_id="c-2")]  # a taken slot

    waiting = summary(admin)
    assert waiting["queue_depth"] == 3
    assert waiting["oldest_queued_age_seconds"] > 0
    assert waiting["decisions_total"] == {"succeeded": 0, "rejected": 0, "failed": 0}
    assert waiting["decision_latency"]["last_5m"] == {"count": 0, "p50": None, "p95": None, "p99": None}

    workers = start_workers(processes=2)
    try:
        decided = [admin.decided(request["id"]) for request in submitted]
        drained = summary(admin)
    finally:
        workers.stop()

    assert [request["status"] for request in decided] == ["succeeded", "succeeded", "rejected"]
    assert drained["queue_depth"] == 0 and drained["oldest_queued_age_seconds"] is None
    assert drained["decisions_total"] == {"succeeded": 2, "rejected": 1, "failed": 0}
    assert len(drained["decisions_per_minute"]) == 15
    assert sum(m["succeeded"] for m in drained["decisions_per_minute"]) == 2
    # computed from the requests' own timestamps, as PostgreSQL's percentile_cont does
    latencies = [latency_s(request) for request in decided]
    for window in ("last_5m", "last_15m"):
        figures = drained["decision_latency"][window]
        assert figures["count"] == 3
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert figures[name] == pytest.approx(percentile_cont(latencies, fraction), abs=1e-3)
    # the oldest waited at least as long as it had when the queue was read
    assert max(latencies) >= waiting["oldest_queued_age_seconds"]


def test_live_workers_are_counted_by_queue_and_drop_out_when_they_stop_or_die(admin: Api):
    deciders = start_workers(processes=2)
    senders = start_workers(processes=1, threads=2, queue="webhooks")
    try:
        alive, _ = summary_once(admin, lambda s: s["live_workers"] == {"decisions": 2, "webhooks": 1},
                                timeout=BEAT_TTL_S)
        assert sorted(w["queues"][0] for w in alive["workers"]) == ["decisions", "decisions", "webhooks"]
        assert len({w["pid"] for w in alive["workers"]}) == 3

        deciders.kill()  # SIGKILL: no shutdown hook runs, the heartbeats just stop
        _, took = summary_once(admin, lambda s: s["live_workers"] == {"decisions": 0, "webhooks": 1},
                               timeout=BEAT_TTL_S + 2)
        assert took <= BEAT_TTL_S + 1

        # A clean shutdown says so at once, well within the TTL: SIGTERM to dramatiq's main
        # process alone, as `docker stop` or systemd send it.
        os.kill(senders.process.pid, signal.SIGTERM)
        senders.process.wait(timeout=30)
        summary_once(admin, lambda s: s["live_workers"] == NO_WORKERS, timeout=1)
    finally:
        deciders.stop()
        senders.stop()


def test_a_failed_delivery_is_listed_with_what_its_replay_needs(admin: Api, receiver: Receiver):
    receiver.statuses = [500]
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    deciders = start_workers(processes=1)
    senders = start_workers(processes=1, threads=2, queue="webhooks")
    try:
        request = admin.submit(provider["id"], a_start(), callback_url=receiver.url)
        listed, _ = summary_once(admin, lambda s: s["failed_deliveries"], timeout=60)
        [failed] = listed["failed_deliveries"]
        replay = admin.http.post(
            f"/v1/booking-requests/{failed['request_id']}/deliveries/{failed['id']}/retry")
        receiver.wait_for(4)
    finally:
        deciders.stop()
        senders.stop()

    assert failed["request_id"] == request["id"]
    assert failed["type"] == "booking_request.succeeded"
    assert failed["url_host"] == f"127.0.0.1:{receiver.server.server_port}"
    assert failed["attempts"] == 3  # BOOKING_WEBHOOK_RETRY_SCHEDULE=0.3,0.3 (tests/conftest.py)
    assert failed["last_status_code"] == 500
    assert failed["webhook_id"].startswith("msg_")
    assert listed["webhook_backlog"] == 0
    assert replay.status_code == 202


def test_booking_status_json_is_the_summary_and_its_text_says_the_same(admin: Api, receiver: Receiver,
                                                                      stack):
    receiver.statuses = [500]
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    deciders = start_workers(processes=2)
    senders = start_workers(processes=1, threads=2, queue="webhooks")
    try:
        admin.decided(admin.submit(provider["id"], a_start(0))["id"])
        admin.submit(provider["id"], a_start(1), callback_url=receiver.url)
        summary_once(admin, lambda s: s["failed_deliveries"] and s["live_workers"]["decisions"] == 2,
                     timeout=60)

        before = summary(admin)
        printed = json.loads(booking_status("--json").stdout)
        after = summary(admin)
        # without the URLs: the servers the embedded stack remembers under BOOKING_HOME
        found = json.loads(booking_status("--json", DATABASE_URL="", REDIS_URL="",
                                          BOOKING_HOME=str(stack.home)).stdout)
        text = booking_status().stdout
    finally:
        deciders.stop()
        senders.stop()

    assert printed.keys() == before.keys()
    moving = {"generated_at", "decisions_per_minute"}  # the time, and the minutes with it
    assert {k: v for k, v in printed.items() if k not in moving} == {
        k: v for k, v in before.items() if k not in moving}
    assert printed["decisions_per_minute"] in (before["decisions_per_minute"], after["decisions_per_minute"])
    assert (found["queue_depth"], found["live_workers"]) == (0, {"decisions": 2, "webhooks": 1})
    failed = before["failed_deliveries"][0]
    assert "decisions 2, webhooks 1" in text and "0 queued" in text
    assert "2 succeeded, 0 rejected, 0 failed" in text
    assert f"/v1/booking-requests/{failed['request_id']}/deliveries/{failed['id']}/retry" in text
