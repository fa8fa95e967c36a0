"""`waiters`: many clients long-polling at once must cost the web almost nothing.

With `waiters` requests queued and nothing deciding them yet, as many clients long-poll
them (`GET /v1/booking-requests/{id}?wait=30`, one connection each). While they all
wait, /healthz and new submits (`POST /v1/bookings`) are timed. Then `start_deciding`
lets the workers loose, and each waiter's answer is timed against its request's
`decided_at`.

The load generator is one asyncio loop speaking raw HTTP/1.1 (a connection per request,
`Connection: close`): a thousand parked sockets cost it nothing, where a thousand OS
threads of httpx would fight the server for the same cores.

Wake latency is `answer received - decided_at`. `decided_at` is PostgreSQL's now() in
the decision transaction, i.e. that transaction's start, so the figure overstates
commit -> answer by the transaction's length (a few ms when a provider has one or two
requests queued, as with `uniform` requests over many providers). The answer is timed on
this process's wall clock; given `database_url`, the offset between it and PostgreSQL's
clock is measured and taken out. Either way, run this on the database's host.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

WAITERS = 1000
WAIT_S = 30  # the longest wait the API allows
PROBE_S = 5.0  # how long /healthz and submits are timed while everyone waits
PROBE_TIMEOUT_S = 10.0  # a probe this late is an error, and counts at this latency
HEALTHZ_EVERY_S = 0.02
SUBMIT_EVERY_S = 0.025  # 40/s: inside the default per-key submit budget with two keys
SETUP_CONCURRENCY = 16
# After the last waiter's request is sent, before probing: the server takes in the
# arrivals (a key check and one read each) so that probes time the waiting, not the arriving.
SETTLE_S = 3.0
DECIDE_TIMEOUT_S = 120.0  # once deciding starts, how long a waiter keeps re-polling

RequestFor = Callable[[int], tuple[str, str]]  # index -> (provider_id, start)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    received_at: float  # wall clock (time.time()), when the last byte came in

    def json(self) -> dict:
        return json.loads(self.body)


class Endpoint:
    """HTTP/1.1 over a fresh connection per request, as a new client would come."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80

    async def request(self, method: str, path: str, key: str | None = None, body: dict | None = None,
                      timeout: float = PROBE_TIMEOUT_S, sent: Callable[[], None] | None = None) -> Answer:
        return await asyncio.wait_for(self._exchange(method, path, key, body, sent), timeout)

    async def _exchange(self, method, path, key, body, sent) -> Answer:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self._encode(method, path, key, body))
            await writer.drain()
            if sent:
                sent()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
            length = headers.get("content-length")
            content = await (reader.readexactly(int(length)) if length else reader.read())
            return Answer(int(head[0].split()[1]), content, time.time())
        finally:
            writer.close()

    def _encode(self, method, path, key, body) -> bytes:
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close"]
        if key:
            lines.append(f"Authorization: Bearer {key}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Waited:
    """One waiter's end: its answer's time and the decision's, or what went wrong."""
    answered_at: float | None = None
    decided_at: float | None = None  # PostgreSQL's clock, epoch seconds
    error: str | None = None


def measure_waiters(base_url: str, keys: Sequence[str], request_for: RequestFor,
                    start_deciding: Callable[[], object], *, database_url: str | None = None,
                    waiters: int = WAITERS, probe_s: float = PROBE_S,
                    say: Callable[[str], None] = print) -> dict:
    """`waiters` concurrent long-polls on queued requests against the web at `base_url`,
    whose requests nothing may decide until `start_deciding()` is called (it may block,
    e.g. while it starts worker processes). `keys`: client keys, used in turn (each
    within the service's per-key budgets); `request_for(i)`: the i-th submit's provider
    and start. Returns {"waiters", "healthz_p99_ms", "submit_p99_ms", "wake_p99_ms",
    "errors"}; errors counts failed submits and probes, probes later than
    PROBE_TIMEOUT_S, and waiters that got no decision or one made before deciding began."""
    _allow_open_files(waiters + 256)
    offset_s = postgres_clock_offset_s(database_url) if database_url else 0.0
    return asyncio.run(_measure(Endpoint(base_url), list(keys), request_for, start_deciding,
                                waiters, probe_s, offset_s, say))


async def _measure(endpoint: Endpoint, keys: list[str], request_for: RequestFor, start_deciding,
                   waiters: int, probe_s: float, offset_s: float, say) -> dict:
    queued, setup_errors = await _submit_queued(endpoint, keys, request_for, waiters)
    say(f"  waiters: {len(queued)} requests queued ({setup_errors} failed); opening as many long-polls")
    stop_at: list[float] = []  # set once deciding has begun: waiters stop re-polling then
    sent = _Countdown(len(queued))
    tasks = [asyncio.create_task(_wait_for_decision(endpoint, key, request_id, sent.tick, stop_at))
             for key, request_id in queued]
    await sent.done(timeout=60)
    await asyncio.sleep(SETTLE_S)
    say(f"  waiters: {sent.count} of {len(queued)} waiting; timing /healthz and submits for {probe_s:g} s")
    until = time.monotonic() + probe_s
    (healthz, healthz_errors), (submits, submit_errors) = await asyncio.gather(
        _probe(lambda i: endpoint.request("GET", "/healthz"), {200}, HEALTHZ_EVERY_S, until),
        _probe(lambda i: _submit(endpoint, keys, request_for, waiters + i), {202}, SUBMIT_EVERY_S, until))
    deciding_from = time.time()
    await asyncio.get_running_loop().run_in_executor(None, start_deciding)
    stop_at.append(time.monotonic() + DECIDE_TIMEOUT_S)
    waited = await _gather_waiters(tasks, DECIDE_TIMEOUT_S + WAIT_S + PROBE_TIMEOUT_S)
    wakes, waiter_errors = _wake_latencies_ms(waited, deciding_from, offset_s)
    say(f"  waiters: errors: setup {setup_errors}, healthz {healthz_errors} of {len(healthz)}, "
        f"submits {submit_errors} of {len(submits)}, waiters {waiter_errors} of {len(waited)} "
        f"({_error_kinds(waited)}); clock offset {offset_s * 1000:.1f} ms")
    return {"waiters": len(queued), "healthz_p99_ms": percentile(healthz, 99),
            "submit_p99_ms": percentile(submits, 99), "wake_p99_ms": percentile(wakes, 99),
            "errors": setup_errors + healthz_errors + submit_errors + waiter_errors}


async def _submit(endpoint: Endpoint, keys: list[str], request_for: RequestFor, index: int) -> Answer:
    provider_id, start = request_for(index)
    return await endpoint.request("POST", "/v1/bookings", keys[index % len(keys)], {
        "provider_id": provider_id, "customer_id": f"waiter-{index}", "start": start})


async def _submit_queued(endpoint: Endpoint, keys: list[str], request_for: RequestFor,
                         count: int) -> tuple[list[tuple[str, str]], int]:
    """Submit `count` requests, a few at a time. Returns [(key, request id)], failures."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def one(index: int) -> tuple[str, str] | None:
        async with gate:
            try:
                answer = await _submit(endpoint, keys, request_for, index)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                return None
        return (keys[index % len(keys)], answer.json()["id"]) if answer.status == 202 else None

    done = await asyncio.gather(*(one(index) for index in range(count)))
    queued = [pair for pair in done if pair is not None]
    return queued, count - len(queued)


async def _wait_for_decision(endpoint: Endpoint, key: str, request_id: str, sent: Callable[[], None],
                             stop_at: list[float]) -> Waited:
    """Long-poll until decided, as a client would: a wait that ends queued is asked again,
    until `stop_at` (once deciding has begun)."""
    path = f"/v1/booking-requests/{request_id}?wait={WAIT_S}"
    joining: Callable[[], None] | None = sent  # only the first ask counts as joining the wait
    try:
        while True:
            answer = await endpoint.request("GET", path, key, timeout=WAIT_S + PROBE_TIMEOUT_S, sent=joining)
            joining = None
            if answer.status != 200:
                return Waited(error=f"http {answer.status}")
            body = answer.json()
            if body["status"] != "queued":
                return Waited(answer.received_at, datetime.fromisoformat(body["decided_at"]).timestamp())
            if stop_at and time.monotonic() > stop_at[0]:
                return Waited(error="never decided")
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
        return Waited(error=type(error).__name__)


async def _gather_waiters(tasks: list[asyncio.Task], timeout: float) -> list[Waited]:
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)
    for task in tasks:
        task.cancel()
    return [task.result() if task.done() and not task.cancelled() else Waited(error="no answer")
            for task in tasks]


async def _probe(ask: Callable[[int], Awaitable[Answer]], expected: set[int], every_s: float,
                 until: float) -> tuple[list[float], int]:
    """Ask one at a time, every `every_s`, until `until`: latencies in ms, and failures."""
    latencies, errors, index = [], 0, 0
    while time.monotonic() < until:
        began = time.monotonic()
        try:
            failed = (await ask(index)).status not in expected
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            failed = True
        elapsed = time.monotonic() - began
        latencies.append(elapsed * 1000)
        errors += failed
        index += 1
        await asyncio.sleep(max(0.0, every_s - elapsed))
    return latencies, errors


def _wake_latencies_ms(waited: list[Waited], deciding_from: float,
                       offset_s: float) -> tuple[list[float], int]:
    """Decision (on this process's clock) -> answer, per waiter; a waiter whose request was
    decided before deciding began proves nothing about waking, and counts as an error."""
    wakes, errors = [], 0
    for one in waited:
        if one.error is not None:
            errors += 1
            continue
        decided_here = one.decided_at - offset_s
        if decided_here < deciding_from:
            one.error = "decided before deciding began"
            errors += 1
            continue
        wakes.append(max(0.0, one.answered_at - decided_here) * 1000)
    return wakes, errors


def _error_kinds(waited: list[Waited]) -> str:
    kinds: dict[str, int] = {}
    for one in waited:
        if one.error:
            kinds[one.error] = kinds.get(one.error, 0) + 1
    return ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())) or "none"


class _Countdown:
    """Counts waiters whose request is on the wire."""

    def __init__(self, total: int):
        self.total, self.count, self._all = total, 0, asyncio.Event()
        if total == 0:
            self._all.set()

    def tick(self) -> None:
        self.count += 1
        if self.count >= self.total:
            self._all.set()

    async def done(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._all.wait(), timeout)
        except TimeoutError:
            pass  # probe anyway: the figures will say what a server that stopped accepting does


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)], 1)


def postgres_clock_offset_s(database_url: str) -> float:
    """PostgreSQL's clock minus this process's wall clock, from the quickest of a few
    bracketed reads (off by at most half that round trip)."""
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(5):
            before = time.time()
            (server_now,) = conn.execute("SELECT clock_timestamp()").fetchone()
            after = time.time()
            samples.append((after - before, server_now.timestamp() - (before + after) / 2))
    return min(samples)[1]


def _allow_open_files(needed: int) -> None:
    """A socket per waiter: raise this process's soft limit on open files if it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY
                                                    else min(needed, hard), hard))
