"""A Redis that accepts connections but never answers (a hung server, a black-holed
route) holds no web request past its bound: submits are accepted (the row is in
PostgreSQL; the re-drive enqueues later), reads answer, rate limits fail open. And a
Redis slower than a web request may wait still serves the workers."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from booking.stack import free_port, wait_for_port
from tests.conftest import Api, ProcessGroup, service_env, start_workers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def prompt_s(redis_calls: int) -> float:
    """How long a request may take that waits on `redis_calls` calls to a Redis that
    never answers: 0.5 s each, and slack for the rest of the work. (Before the fix: 10 s
    per enqueue and 2 s per rate limit check; 5 s for readiness.)"""
    return 0.5 * redis_calls + 0.75


class LoopbackServer:
    """A TCP server on loopback that accepts connections and hands each to `serve`."""

    def __init__(self, serve):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


def black_hole() -> LoopbackServer:
    """A Redis that accepts connections and never answers."""
    return LoopbackServer(serve=lambda conn: None)


def slow_redis(target_port: int, delay_s: float) -> LoopbackServer:
    """The real Redis behind a proxy that holds each of its replies for `delay_s`."""

    def serve(client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(client, upstream, 0), daemon=True).start()
        pump(upstream, client, delay_s)

    return LoopbackServer(serve)


def pump(source: socket.socket, sink: socket.socket, delay_s: float) -> None:
    try:
        while chunk := source.recv(65536):
            time.sleep(delay_s)  # the latency being simulated, not a synchronisation
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            end.close()


@pytest.fixture(scope="module")
def hole() -> Iterator[LoopbackServer]:
    server = black_hole()
    yield server
    server.close()


@pytest.fixture(scope="module")
def web_over_hole(stack, hole) -> Iterator[str]:
    """The API under gunicorn with REDIS_URL pointing at the black hole; it must start
    (create_app never waits on Redis) and answer its liveness check."""
    port = free_port()
    server = ProcessGroup([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"],
                          service_env(PORT=str(port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY="1",
                                      REDIS_URL=hole.url))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, timeout=60)
        assert httpx.get(f"{base_url}/healthz", timeout=30).status_code == 200
        yield base_url
    finally:
        server.stop()


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def tomorrow_at_nine() -> str:
    """A start the provider's default advance window (365 days) allows."""
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC).isoformat()


def request_status(db, request_id: str) -> str:
    with db.connect() as conn:
        return conn.scalar(text("SELECT status FROM booking_requests WHERE id = :id"), {"id": request_id})


def test_a_submit_is_accepted_promptly_when_redis_never_answers(web_over_hole, hole, db):
    from booking.services.keys import create_key

    admin = Api(web_over_hole, create_key("admin", "admin").key)
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)

    submitted, took = timed(lambda: admin.http.post("/v1/bookings", json={
        "provider_id": provider["id"], "customer_id": "c-1", "start": tomorrow_at_nine()}))

    assert submitted.status_code == 202, submitted.text
    assert took < prompt_s(redis_calls=2), took  # the rate limit, the enqueue
    assert request_status(db, submitted.json()["id"]) == "queued"  # the re-drive's to enqueue
    assert hole.connections, "the app never reached for Redis; nothing was tested"


def test_a_read_answers_promptly_when_redis_never_answers(web_over_hole, db):
    from booking.services.keys import create_key

    admin = Api(web_over_hole, create_key("admin", "admin").key)
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    request_id = admin.submit(provider["id"], tomorrow_at_nine())["id"]

    read, took = timed(lambda: admin.http.get(f"/v1/booking-requests/{request_id}"))

    assert read.status_code == 200 and read.json()["status"] == "queued"
    assert took < prompt_s(redis_calls=1), took  # the rate limit
    assert "RateLimit-Limit" not in read.headers  # the limits failed open


def test_readiness_says_redis_is_unavailable_promptly_when_it_never_answers(web_over_hole):
    ready, took = timed(lambda: httpx.get(f"{web_over_hole}/readyz", timeout=30))

    assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
    assert took < prompt_s(redis_calls=1), took  # a PING


def test_workers_ride_out_a_redis_slower_than_a_web_request_may_wait(stack, db, admin_api, client_api):
    # Each reply comes later than a web request's 0.5 s bound, well within a worker's.
    slow = slow_redis(stack.redis.port, delay_s=0.7)
    workers = start_workers(processes=1, threads=2, REDIS_URL=slow.url)
    try:
        provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
        decided = client_api.decided(client_api.submit(provider["id"], tomorrow_at_nine())["id"],
                                     timeout=60)
    finally:
        workers.stop()
        slow.close()

    assert decided["status"] == "succeeded"
