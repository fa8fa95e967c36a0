"""The systems under test as processes, and what a client does against each."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from benchmarks.load import Client
from booking.stack import free_port, stop_process_group, wait_for_port

REPO = Path(__file__).resolve().parent.parent
DECISION_POLL_MS = "10"  # as the Procfile runs the decision workers


class Service:
    """A process tree (gunicorn or dramatiq) with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, cwd=REPO, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for_log(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.log_path.read_text().count(text) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} never logged {text!r}; see {self.log_path}")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in tree) / 2**20
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()


class PeakRss:
    """Samples the summed RSS of some services while a run goes on."""

    def __init__(self, services: list[Service]):
        self.services, self.peak, self._stop = services, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, sum(s.rss_mb() for s in self.services))


class CpuMeter:
    """CPU seconds spent during a run by every process on the machine, grouped by role
    (web, worker, postgres, redis, client = the load generator or pgbench, other), per
    decided booking: with every part on the same cores, throughput is CPU per booking.
    Sampled every 0.2 s, so that processes which end during the run (pgbench and its
    server backends) are counted too."""

    ROLES = (("gunicorn", "web"), ("dramatiq", "worker"), ("postgres", "postgres"),
             ("redis-server", "redis"), ("pgbench", "client"))

    def __init__(self):
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self):
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def per_decision_ms(self, decided: int) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for pid, (role, used) in self._last.items():
            seconds[role] = seconds.get(role, 0.0) + max(0.0, used - self._first.get(pid, 0.0))
        shares = {role: round(1000 * spent / max(1, decided), 2) for role, spent in seconds.items()
                  if spent > 0.005}
        return {"total": round(sum(shares.values()), 2), **dict(sorted(shares.items()))}

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def _sample(self, initial: bool = False) -> None:
        me = os.getpid()
        for process in psutil.process_iter(["cmdline", "cpu_times"]):
            times = process.info["cpu_times"]
            if times is None:
                continue
            used = times.user + times.system
            if initial:
                self._first[process.pid] = used
            self._last[process.pid] = (self._role(process.pid, process.info["cmdline"] or [], me), used)

    @classmethod
    def _role(cls, pid: int, cmdline: list[str], me: int) -> str:
        if pid == me:
            return "client"
        text = " ".join(cmdline)
        return next((role for marker, role in cls.ROLES if marker in text), "other")


def start_web(app: str, env: dict[str, str], log_dir: Path, name: str = "web") -> tuple[Service, str]:
    port = free_port()
    web = Service(name, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app],
                  {**env, "PORT": str(port), "BIND_HOST": "127.0.0.1"}, log_dir)
    wait_for_port(port, timeout=60)
    return web, f"http://127.0.0.1:{port}"


def start_workers(env: dict[str, str], log_dir: Path, processes: int, threads: int = 8) -> Service:
    workers = Service(f"worker-{processes}p", [
        sys.executable, "-m", "dramatiq", "workers.broker", "workers.actors", "--queues", "decisions",
        "--processes", str(processes), "--threads", str(threads)],
        {"dramatiq_worker_timeout": DECISION_POLL_MS, **env}, log_dir)
    workers.wait_for_log("Worker process is ready for action.", count=processes)
    return workers


def sync_job(request_for):
    """POST /book: 201 booked, 409 taken; decided when the answer arrives."""

    def job(client: Client, index: int):
        provider_id, start = request_for(index)
        response = client.post("/book", json={"provider_id": provider_id, "start": start,
                                              "customer_id": "bench"})
        now = time.monotonic()
        return now, now, str(response.status_code)

    return job


def pipeline_job(request_for, prefer_wait: bool = False, body_for=None):
    """POST /v1/bookings (202), then long-poll until decided; with `prefer_wait`, the
    POST itself waits (`Prefer: wait=30`) and the GET is needed only on a timeout.
    `body_for(index)`: fields added to (or replacing) the create's body."""
    headers = {"Prefer": "wait=30"} if prefer_wait else {}

    def job(client: Client, index: int):
        provider_id, start = request_for(index)
        accepted = client.post("/v1/bookings", headers=headers, json={
            "provider_id": provider_id, "customer_id": "bench", "start": start,
            **(body_for(index) if body_for else {})})
        accepted_at = time.monotonic()
        if accepted.status_code != 202:
            return accepted_at, accepted_at, f"http {accepted.status_code}"
        request = accepted.json()
        while request["status"] == "queued":
            request = client.get(f"/v1/booking-requests/{request['id']}", params={"wait": 30}).json()
        outcome = request["status"] if not request["reason"] else request["reason"]["code"]
        return accepted_at, time.monotonic(), outcome

    return job


def accept_job(request_for):
    """POST /v1/bookings and nothing more: decided when accepted (202), for a burst
    whose decisions are read from PostgreSQL afterwards."""

    def job(client: Client, index: int):
        provider_id, start = request_for(index)
        accepted = client.post("/v1/bookings", json={
            "provider_id": provider_id, "customer_id": "bench", "start": start})
        now = time.monotonic()
        return now, now, "accepted" if accepted.status_code == 202 else f"http {accepted.status_code}"

    return job
