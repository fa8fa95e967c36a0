"""`booking up` (what `make run` runs): embedded servers, migrations, Procfile, clean stop."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from booking.stack import free_port, port_is_open
from tests.conftest import ProcessGroup

ADMIN_KEY = "bk_e2e_admin_key_for_this_test_only"
ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


READY = "Worker process is ready for action."


def wait_until_ready(base_url: str, service: ProcessGroup, timeout: float = 120, count: int = 1) -> None:
    service.wait_for_output(READY, count=count, timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # gunicorn announces nothing when its socket starts answering
    raise TimeoutError(f"{base_url}/readyz never answered 200:\n{''.join(service.output[-40:])}")


def decision_worker_processes(root: int) -> list[psutil.Process]:
    """The worker processes of the decisions queue: leaves under dramatiq's main process
    (which itself may run under the shell that honcho starts)."""
    workers = [process for process in psutil.Process(root).children(recursive=True)
               if "dramatiq" in " ".join(process.cmdline()) and "decisions" in " ".join(process.cmdline())
               and not process.children()]
    if not workers:
        raise LookupError("no decision worker process")
    return workers


def start_booking_up(home: Path) -> tuple[ProcessGroup, str, dict[str, str]]:
    """`booking up` (what `make run` runs) as on a fresh machine: no servers and no
    BOOKING_SECRET_KEY given. Its process group, base URL and environment."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "BOOKING_SECRET_KEY")}
    env.update(BOOKING_HOME=str(home), PORT=str(port), BOOKING_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY,
               PYTHONUNBUFFERED="1")
    return ProcessGroup([sys.executable, "-m", "booking.cli", "up"], env), f"http://127.0.0.1:{port}", env


def test_booking_up_serves_decides_and_stops_what_it_started(tmp_path):
    home = tmp_path / "home"
    service, base_url, env = start_booking_up(home)
    try:
        wait_until_ready(base_url, service)
        made = subprocess.run([sys.executable, "-m", "booking.cli", "keys", "create", "--name", "ops",
                               "--role", "admin"], env=env, capture_output=True, text=True, check=True)
        cli_key = json.loads(made.stdout)["key"]
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {cli_key}"})
        provider = api.post("/v1/providers", json={
            "name": "Dr. E2E", "timezone": "Asia/Tokyo", "weekly_schedule": ALL_WEEK}).json()
        start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        request = api.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                                 "start": start.isoformat()}).json()
        decided = api.get(f"/v1/booking-requests/{request['id']}", params={"wait": 30}).json()
        bootstrap = httpx.get(f"{base_url}/v1/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"})

        # The decision workers die: dramatiq exits, honcho stops the rest, and `booking up`
        # starts them all again; a request accepted before the kill is decided after it.
        # Frozen (SIGSTOP) before the request is accepted, no decider can take it, so the
        # status read while they are frozen is its status at the kill.
        deciders = decision_worker_processes(service.process.pid)
        for decider in deciders:
            decider.suspend()
        later = api.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                               "start": (start + timedelta(hours=1)).isoformat()}).json()
        at_kill = api.get(f"/v1/booking-requests/{later['id']}").json()
        ready_before = sum(READY in line for line in service.output)
        killed_at = datetime.now(UTC)
        for decider in deciders:
            decider.kill()  # SIGKILL, which a stopped process gets at once
        service.wait_for_output("starting them all again", timeout=60)
        wait_until_ready(base_url, service, count=ready_before + 1)
        after_restart = api.get(f"/v1/booking-requests/{later['id']}", params={"wait": 30}).json()
    finally:
        os.kill(service.process.pid, signal.SIGTERM)  # as `kill <pid of booking up>` would
        exit_code = service.process.wait(timeout=60)

    assert decided["status"] == "succeeded"
    assert at_kill["status"] == "queued"
    assert after_restart["status"] == "succeeded"
    assert datetime.fromisoformat(after_restart["decided_at"]) > killed_at
    assert decided["booking"]["start"].endswith("+09:00")
    assert {k["name"] for k in bootstrap.json()["items"]} == {"bootstrap admin", "ops"}
    assert (home / "secret_key").stat().st_mode & 0o077 == 0  # generated, readable by us only
    assert exit_code == 0
    ports = json.loads((home / "stack.json").read_text())
    assert not any(port_is_open(p) for p in ports.values())
    assert subprocess.run(["pgrep", "-f", str(home)], capture_output=True).returncode == 1
