"""Shared fixtures. Integration and e2e tests run against a real PostgreSQL and a real
Redis (embedded servers under a temporary BOOKING_HOME), a schema built by the Alembic
migrations, real `dramatiq` worker processes and a real gunicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Short enough that recovery tests finish in seconds; long enough for a normal decision.
WORKER_ENV = {"BOOKING_REDRIVE_INTERVAL": "0.5", "BOOKING_REDRIVE_AFTER": "1",
              "BOOKING_LEASE_TTL_MS": "3000", "BOOKING_DECIDE_ATTEMPT_SPACING": "0.2",
              # receivers in tests listen on loopback; the SSRF tests lift this themselves
              "BOOKING_WEBHOOK_ALLOW_PRIVATE": "1", "BOOKING_WEBHOOK_RETRY_SCHEDULE": "0.3,0.3",
              "BOOKING_WEBHOOK_TIMEOUT": "30", "BOOKING_SECRET_KEY": "test-only-secret-key",
              # generous budgets; the rate-limit tests set their own
              "BOOKING_RATE_LIMIT_SUBMIT": "100000/second", "BOOKING_RATE_LIMIT_READ": "100000/second"}


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator:
    """Embedded PostgreSQL and Redis for the whole run, schema from `alembic upgrade head`."""
    from booking.config import get_settings
    from booking.db import migrate
    from booking.stack import EmbeddedStack

    stack = EmbeddedStack(tmp_path_factory.mktemp("booking-home"), durable=False)
    stack.start()
    os.environ.update(DATABASE_URL=stack.postgres.url, REDIS_URL=stack.redis.url, **WORKER_ENV)
    get_settings.cache_clear()
    try:
        migrate()
        yield stack
    finally:
        stack.stop()


@contextlib.contextmanager
def migrated_postgres(directory: Path, settings) -> Iterator:
    """A PostgreSQL server of a test's own (which it may stop and start), migrated to
    head, stopped afterwards. `settings`: its server settings (see booking.stack)."""
    from booking.db import migrate
    from booking.stack import EmbeddedPostgres, free_port

    postgres = EmbeddedPostgres(directory / "postgres", free_port(), settings)
    postgres.start()
    try:
        migrate(postgres.url)
        yield postgres
    finally:
        postgres.stop()


@pytest.fixture
def setting_env(monkeypatch):
    """Change a setting for one test as an operator would, through the environment:
    setting_env("NAME", "value"), or setting_env("NAME") to unset it. Settings are read
    once per process, so the cache is cleared on each change and after the test."""
    from booking.config import get_settings

    def change(name: str, value: str | None = None) -> None:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield change
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def db(stack):
    """Empty tables for each test."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from booking.db import get_engine

    for attempt in range(10):
        try:
            with get_engine().begin() as conn:
                conn.execute(text("TRUNCATE webhook_attempts, webhook_deliveries, webhook_endpoints, "
                                  "booking_requests, bookings, sessions, time_off, provider_services, "
                                  "services, providers, api_keys"))
            break
        except OperationalError:
            # a running worker's sweep query can deadlock with TRUNCATE's table locks
            if attempt == 9:
                raise
    yield get_engine()


@pytest.fixture
def admin_key(db) -> str:
    from booking.services.keys import create_key

    return create_key("test admin", "admin").key


@pytest.fixture
def client_key(db) -> str:
    from booking.services.keys import create_key

    return create_key("portal", "client").key


@pytest.fixture
def other_client_key(db) -> str:
    from booking.services.keys import create_key

    return create_key("reception desk", "client").key


@pytest.fixture(scope="session")
def app(stack):
    from api import create_app

    return create_app({"TESTING": True})


@pytest.fixture
def http(app, db):
    """The app in-process (Flask test client), over real PostgreSQL and Redis."""
    return app.test_client()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- real processes -------------------------------------------------------------

class ProcessGroup:
    """A child process (and its children) that a test can stop or kill."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.output: list[str] = []
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._lines = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lines:
                self.output.append(line)
                self._lines.notify_all()

    def wait_for_output(self, text: str, count: int = 1, timeout: float = 60) -> None:
        with self._lines:
            done = self._lines.wait_for(
                lambda: sum(text in line for line in self.output) >= count
                or self.process.poll() is not None, timeout)
        if not done or self.process.poll() is not None:
            raise RuntimeError(f"never saw {text!r} x{count}:\n{''.join(self.output[-50:])}")

    def kill(self) -> None:
        """SIGKILL the whole group: no cleanup, no acks, as a crashed host would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        from booking.stack import stop_process_group

        stop_process_group(self.process)


def service_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def start_workers(processes: int = 2, threads: int = 4, queue: str = "decisions",
                  **env: str) -> ProcessGroup:
    """Real `dramatiq` worker processes for one queue, as the Procfile runs them."""
    workers = ProcessGroup(
        [sys.executable, "-m", "dramatiq", "workers.broker", "workers.actors", "--queues", queue,
         "--processes", str(processes), "--threads", str(threads)],
        service_env(dramatiq_worker_timeout="10", **env))
    workers.wait_for_output("Worker process is ready for action.", count=processes)
    return workers


@pytest.fixture(scope="module")
def workers(stack) -> Iterator[ProcessGroup]:
    """Two real `dramatiq` worker processes for the module's tests."""
    group = start_workers()
    yield group
    group.stop()


@contextlib.contextmanager
def running_web(processes: int = 2, **env: str) -> Iterator[tuple[str, ProcessGroup]]:
    """The API under gunicorn, as the Procfile runs it, on a free loopback port, with
    `env` over this process's environment. Yields its base URL and its process group."""
    from booking.stack import free_port, wait_for_port

    port = free_port()
    server = ProcessGroup([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"],
                          service_env(PORT=str(port), BIND_HOST="127.0.0.1",
                                      WEB_CONCURRENCY=str(processes), **env))
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def web(stack) -> Iterator[str]:
    """The API under gunicorn for the whole run. Yields its base URL."""
    with running_web() as (base_url, _server):
        yield base_url


def decided_until(api: Api, requests: list[dict], deadline: float, since: float) -> tuple[list, list]:
    """Each request as long-polled until `deadline` (monotonic), and when each answer
    came, in seconds after `since`."""
    decided, seconds = [], []
    for request in requests:
        decided.append(api.decided(request["id"], timeout=max(0.1, deadline - time.monotonic())))
        seconds.append(time.monotonic() - since)
    return decided, seconds


class Api:
    """A client application's view of the service: HTTP with one API key."""

    def __init__(self, base_url: str, key: str):
        self.http = httpx.Client(base_url=base_url, headers=auth(key), timeout=60)

    def create_provider(self, **fields) -> dict:
        body = {"name": "Dr. Ada", "timezone": "Europe/Berlin", "weekly_schedule": {}, **fields}
        response = self.http.post("/v1/providers", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def submit(self, provider_id: str, start: str, customer_id: str = "c-1", **extra) -> dict:
        response = self.http.post("/v1/bookings", json={
            "provider_id": provider_id, "customer_id": customer_id, "start": start, **extra})
        assert response.status_code == 202, response.text
        return response.json()

    def decided(self, request_id: str, timeout: float = 60) -> dict:
        """The request once decided, awaited by long-polling (no client-side sleeps)."""
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0, min(30, deadline - time.monotonic()))
            body = self.http.get(f"/v1/booking-requests/{request_id}", params={"wait": wait}).json()
            if body["status"] != "queued" or time.monotonic() >= deadline:
                return body


@pytest.fixture
def admin_api(web, admin_key) -> Api:
    return Api(web, admin_key)


@pytest.fixture
def client_api(web, client_key) -> Api:
    return Api(web, client_key)
