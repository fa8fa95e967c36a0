"""The one load generator every system is measured with: Python threads, one
keep-alive HTTP/1.1 connection each (the standard library's http.client: the
generator shares the machine with what it measures, and httpx cost it about three
times the CPU per request), closed loop (a client sends its next request when the
last is done) or open loop (requests leave on a fixed schedule whatever happened
before)."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit


class Response:
    def __init__(self, status_code: int, body: bytes):
        self.status_code, self.body = status_code, body

    def json(self):
        return json.loads(self.body)


class Client:
    """Just enough of an HTTP client for the benchmark: JSON in, status and JSON out."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 60):
        url = urlsplit(base_url)
        self.host, self.port, self.timeout = url.hostname, url.port, timeout
        self.headers = {"Accept": "application/json", **(headers or {})}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None) -> Response:
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {**self.headers, **(headers or {})}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, payload, all_headers)
            answer = self.connection.getresponse()
        except (http.client.HTTPException, ConnectionError):
            # the server closed an idle connection: open another once, as any client would
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.connection.request(method, path, payload, all_headers)
            answer = self.connection.getresponse()
        return Response(answer.status, answer.read())

    def post(self, path: str, json=None, headers=None) -> Response:
        return self.request("POST", path, json, headers)

    def get(self, path: str, params: dict | None = None) -> Response:
        return self.request("GET", f"{path}?{urlencode(params)}" if params else path)

    def close(self) -> None:
        self.connection.close()


# job(client, index) -> (accepted_at, decided_at, outcome); times from time.monotonic()
Job = Callable[[Client, int], tuple[float, float, str]]


@dataclass
class Run:
    started: float
    finished: float = 0.0
    accepted_times: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    @property
    def elapsed(self) -> float:
        return self.finished - self.started

    def accepted_per_s(self) -> float:
        return len(self.accepted_times) / max(1e-9, max(self.accepted_times) - self.started)

    def decided_per_s(self) -> float:
        return len(self.latencies_ms) / max(1e-9, self.elapsed)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def closed_loop(base_url: str, job: Job, clients: int, total: int, headers=None,
                timeout: float = 60) -> Run:
    counter, lock = itertools.count(), threading.Lock()
    run = Run(started=time.monotonic())

    def client_loop():
        client = Client(base_url, headers, timeout)
        while (index := next(counter)) < total:
            began = time.monotonic()
            accepted_at, decided_at, outcome = job(client, index)
            with lock:
                run.accepted_times.append(accepted_at)
                run.latencies_ms.append((decided_at - began) * 1000)
                run.outcomes[outcome] += 1
        client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.finished = time.monotonic()
    return run


def guarded(job: Job) -> Job:
    """The job, with a timeout or a broken connection recorded as its outcome
    ("timeout", "error <type>") instead of ending the client's thread; the
    connection is dropped so that the next request opens a fresh one."""

    def guarded_job(client: Client, index: int):
        try:
            return job(client, index)
        except TimeoutError:
            outcome = "timeout"
        except (OSError, http.client.HTTPException) as error:
            outcome = f"error {type(error).__name__}"
        client.connection.close()
        now = time.monotonic()
        return now, now, outcome

    return guarded_job


def open_loop(base_url: str, job: Job, rate: float, seconds: float, headers=None) -> Run:
    """Requests leave at `rate` per second; latency counts from the scheduled send
    time, so a slow server cannot hide its queueing (no coordinated omission)."""
    total = max(1, int(rate * seconds))
    run, lock = Run(started=time.monotonic()), threading.Lock()
    local = threading.local()

    def fire(index: int, scheduled: float):
        if not hasattr(local, "client"):
            local.client = Client(base_url, headers)
        accepted_at, decided_at, outcome = job(local.client, index)
        with lock:
            run.accepted_times.append(accepted_at)
            run.latencies_ms.append((decided_at - scheduled) * 1000)
            run.outcomes[outcome] += 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        for index in range(total):
            scheduled = run.started + index / rate
            time.sleep(max(0.0, scheduled - time.monotonic()))
            pool.submit(fire, index, scheduled)
    run.finished = time.monotonic()
    return run
