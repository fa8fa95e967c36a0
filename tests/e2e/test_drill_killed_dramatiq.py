"""Drill: dramatiq's main process SIGKILLed (an OOM kill, a supervisor's hard stop).
No worker process may keep running unsupervised; under `booking up` everything comes
back and nothing accepted is lost; under the bare Procfile (honcho) everything stops."""

import os
import signal
import sys
from datetime import UTC, datetime, timedelta

import httpx
import psutil

from booking.stack import free_port
from tests.conftest import ProcessGroup, service_env
from tests.e2e.test_booking_up import ADMIN_KEY, ALL_WEEK, start_booking_up, wait_until_ready

KILLED_WORKERS_GONE_WITHIN_S = 10


def dramatiq_main(root: int, queue: str = "decisions") -> psutil.Process:
    """dramatiq's main process for a queue: the parent of its worker processes (the
    leaves; above it there may be the shell that honcho starts)."""
    for process in psutil.Process(root).children(recursive=True):
        command = " ".join(process.cmdline())
        if "dramatiq" in command and queue in command and not process.children():
            return process.parent()
    raise LookupError(f"no dramatiq worker process for {queue}")


def kill_main_and_wait_for_its_workers(main: psutil.Process) -> tuple[list, list]:
    workers = main.children()
    main.kill()
    gone, alive = psutil.wait_procs(workers, timeout=KILLED_WORKERS_GONE_WITHIN_S)
    return gone, alive


def test_under_booking_up_killed_dramatiq_takes_its_workers_and_everything_comes_back(tmp_path):
    service, base_url, _env = start_booking_up(tmp_path / "home")
    try:
        wait_until_ready(base_url, service)
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
        provider = api.post("/v1/providers", json={"name": "Dr. Drill", "timezone": "UTC",
                                                   "weekly_schedule": ALL_WEEK}).json()
        start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        main = dramatiq_main(service.process.pid)
        for worker in main.children():
            worker.suspend()  # so that the request below is surely still queued at the kill
        accepted = api.post("/v1/bookings", json={"provider_id": provider["id"], "customer_id": "c",
                                                  "start": start.isoformat()}).json()
        ready_before = sum("ready for action" in line for line in service.output)

        gone, orphans = kill_main_and_wait_for_its_workers(main)

        service.wait_for_output("starting them all again", timeout=60)
        wait_until_ready(base_url, service, count=ready_before + 1)
        decided = api.get(f"/v1/booking-requests/{accepted['id']}", params={"wait": 30}).json()
    finally:
        os.kill(service.process.pid, signal.SIGTERM)
        service.process.wait(timeout=60)

    assert orphans == [], f"worker processes outlived dramatiq's main process: {orphans}"
    assert len(gone) >= 1
    assert accepted["status"] == "queued" and decided["status"] == "succeeded"


def group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_under_the_procfile_killed_dramatiq_leaves_no_worker_running(stack):
    port = free_port()
    env = service_env(PORT=str(port), BIND_HOST="127.0.0.1", WEB_CONCURRENCY="1", WORKER_PROCESSES="2",
                      WORKER_THREADS="2",  # the Procfile names gunicorn and dramatiq as a shell would
                      PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    honcho = ProcessGroup([sys.executable, "-m", "honcho", "start", "-f", "Procfile"], env)
    try:
        honcho.wait_for_output("ready for action", count=3, timeout=120)  # 2 decision + 1 webhooks
        main = dramatiq_main(honcho.process.pid)

        gone, orphans = kill_main_and_wait_for_its_workers(main)

        # honcho sees a process exit and stops the rest (a supervisor above it restarts)
        exit_code = honcho.process.wait(timeout=60)
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while not group_is_empty(honcho.process.pid) and datetime.now(UTC) < deadline:
            psutil.wait_procs([p for p in psutil.process_iter() if _in_group(p, honcho.process.pid)],
                              timeout=1)
        emptied = group_is_empty(honcho.process.pid)
    finally:
        honcho.stop()

    assert orphans == [], f"worker processes outlived dramatiq's main process: {orphans}"
    assert len(gone) == 2
    assert exit_code != 0
    assert emptied, "processes of the Procfile kept running after honcho stopped"


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except (ProcessLookupError, psutil.Error):
        return False
