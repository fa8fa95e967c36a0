"""Drill: lease expiry under a paused worker (issue 12, drill 2).

Two independent dramatiq worker groups compete for one provider. One is SIGSTOPped
(a GC pause, VM steal) inside its decision transaction, after it claimed the
provider's calendar: it holds the provider's lease and the provider's row lock and
can renew neither. Then the other group must take the provider over within the
lease's TTL and a few seconds and decide its later requests; PostgreSQL must end the
paused worker's transaction (booking.db.session_options), so that nothing of it
commits once it is resumed; and the whole history must be what a sequential,
first-come-first-served model says (tests/history.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import text

from booking import notify
from booking.config import get_settings
from tests.conftest import Api, ProcessGroup, decided_until, start_workers
from tests.history import check_history
from tests.triggers import row_trigger
from workers.lease import Lease, provider_lease_key

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SLOT = timedelta(minutes=30)
SLOW_INSERT_S = 2  # how long the first 'slow' booking insert keeps its worker mid-batch
FIND_SLEEPER_WITHIN_S = 20
# Past the pause, the paused worker's lease is gone within the TTL, and its row lock
# within the rest of the slow insert plus the idle-in-transaction timeout (= TTL); a
# re-drive pass (0.5 s in tests) and one decision come on top.
TAKEOVER_MARGIN_S = SLOW_INSERT_S + 10  # tells a takeover from a hang, even on a loaded machine
# What the resumed worker's driver says of the session PostgreSQL ended meanwhile.
CONNECTION_LOST = "server closed the connection unexpectedly"


def slot(index: int) -> str:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    return (first + SLOT * index).isoformat()


# --- the injected fault -------------------------------------------------------------

@pytest.fixture
def slow_first_insert(db):
    """A test-only trigger: the first booking insert for customer 'slow' sleeps, once
    (a sequence, since a rolled-back transaction does not undo nextval)."""
    with row_trigger(db, "test_slow_insert", "bookings", f"""
            IF NEW.customer_id = 'slow' AND nextval('test_slow_inserts') = 1 THEN
                PERFORM pg_sleep({SLOW_INSERT_S});
            END IF;""", counter="test_slow_inserts"):
        yield


# --- processes and backends -----------------------------------------------------------

def sleeping_backend(db, timeout: float) -> tuple[int, int]:
    """(pid, client port) of the backend inside the injected pg_sleep. Polled with a
    deadline: nothing announces that a backend started sleeping."""
    deadline = time.monotonic() + timeout
    with db.connect() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(text(
                "SELECT pid, client_port FROM pg_stat_activity "
                "WHERE wait_event = 'PgSleep' AND datname = current_database()")).first()
            if row is not None:
                return row.pid, row.client_port
            conn.rollback()  # statistics are a snapshot per transaction: look afresh
            time.sleep(0.02)
    raise AssertionError(f"no worker reached the slow insert within {timeout}s")


def processes_of(group: ProcessGroup) -> list[psutil.Process]:
    """dramatiq's main process and the worker processes it spawned."""
    main = psutil.Process(group.process.pid)
    return [main, *main.children(recursive=True)]


def owner_of_connection(groups: list[ProcessGroup], client_port: int,
                        server_port: int) -> tuple[ProcessGroup, psutil.Process]:
    """The worker process holding the local end of a connection to PostgreSQL."""
    for group in groups:
        for process in processes_of(group):
            if any(c.laddr and c.raddr and (c.laddr.port, c.raddr.port) == (client_port, server_port)
                   for c in process.net_connections(kind="tcp")):
                return group, process
    raise AssertionError(f"no worker process owns the connection from port {client_port}")


def backend_alive(db, pid: int) -> bool:
    with db.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                           {"pid": pid}) == 1


def resume_and_stop(groups: list[ProcessGroup]) -> None:
    """SIGCONT first: a stopped process would never act on the SIGTERM that follows."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.process.pid, signal.SIGCONT)
    for group in groups:
        group.stop()


# --- what was recorded ----------------------------------------------------------------

def outcomes(db, provider_id) -> dict:
    """Each request's recorded outcome: everything a second decision would change."""
    with db.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, status, reason_code, booking_id, decided_at FROM booking_requests "
            "WHERE provider_id = :p"), {"p": provider_id})
        return {str(row.id): tuple(row[1:]) for row in rows}


def bookings_of(db, provider_id) -> dict:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT id, period, status, version FROM bookings "
                                 "WHERE provider_id = :p"), {"p": provider_id})
        return {str(row.id): tuple(row[1:]) for row in rows}


def overlapping_confirmed_pairs(db, provider_id) -> int:
    with db.connect() as conn:
        return conn.scalar(text(
            "SELECT count(*) FROM bookings a JOIN bookings b ON a.provider_id = b.provider_id "
            "AND a.id < b.id AND a.period && b.period "
            "WHERE a.provider_id = :p AND a.status = 'confirmed' AND b.status = 'confirmed'"),
            {"p": provider_id})


def bookings_not_owned_once(db, provider_id) -> int:
    """Bookings that are not the booking of exactly one succeeded create."""
    with db.connect() as conn:
        return conn.scalar(text(
            "SELECT count(*) FROM bookings b WHERE b.provider_id = :p AND (SELECT count(*) "
            "FROM booking_requests r WHERE r.booking_id = b.id AND r.kind = 'create' "
            "AND r.status = 'succeeded') <> 1"), {"p": provider_id})


def postgres_ended_for_idling(stack, backend_pid: int) -> bool:
    log = (stack.postgres.data_dir / "server.log").read_text(errors="replace")
    return any(f"[{backend_pid}]" in line and "idle-in-transaction timeout" in line
               for line in log.splitlines())


def outcome(decided: dict) -> tuple[str, str | None]:
    return decided["status"], (decided["reason"] or {}).get("code")


# --- the traffic ------------------------------------------------------------------------

def change(api: Api, booking_id: str, action: str, **body) -> dict:
    response = api.http.post(f"/v1/bookings/{booking_id}/{action}", json=body)
    assert response.status_code == 202, response.text
    return response.json()


Wave = Callable[[Api, str, str], list[dict]]  # (client, provider id, warm booking id)
OK, TAKEN = ("succeeded", None), ("rejected", "slot_unavailable")


@dataclass(frozen=True)
class Scenario:
    first_wave: Wave  # decided in the batch that is paused; its first request is 'slow'
    first_outcomes: list
    later_wave: Wave  # accepted while that worker is paused
    later_outcomes: list


ONE_INSERT = Scenario(
    # one new booking in the paused batch: its insert is a plain statement
    first_wave=lambda api, p, warm: [api.submit(p, slot(0), "slow"),
                                     api.submit(p, slot(0), "c-1"),
                                     change(api, warm, "reschedule", start=slot(7))],
    first_outcomes=[OK, TAKEN, OK],
    later_wave=lambda api, p, warm: [api.submit(p, slot(0), "late-0"),
                                     change(api, warm, "cancel", reason="drill"),
                                     api.submit(p, slot(7), "late-7"),  # freed by the cancel
                                     api.submit(p, slot(10), "late-10"),  # freed by the move
                                     api.submit(p, slot(1), "late-1"),
                                     api.submit(p, slot(1), "late-1b")],
    later_outcomes=[TAKEN, OK, OK, OK, OK, TAKEN])

SEVERAL_INSERTS = Scenario(
    # four new bookings in the paused batch, written by one multi-row statement (they once
    # went through psycopg's executemany, whose pipeline disarmed the idle timeout)
    first_wave=lambda api, p, warm: [api.submit(p, slot(0), "slow"),
                                     api.submit(p, slot(1), "c-1"),
                                     api.submit(p, slot(2), "c-2"),
                                     api.submit(p, slot(0), "c-3"),
                                     api.submit(p, slot(3), "c-4")],
    first_outcomes=[OK, OK, OK, TAKEN, OK],
    later_wave=lambda api, p, warm: [api.submit(p, slot(0), "late-0"),
                                     api.submit(p, slot(1), "late-1"),
                                     change(api, warm, "reschedule", start=slot(6)),
                                     change(api, warm, "cancel", reason="drill"),
                                     api.submit(p, slot(6), "late-6"),
                                     api.submit(p, slot(10), "late-10"),
                                     api.submit(p, slot(5), "late-5")],
    later_outcomes=[TAKEN, TAKEN, OK, OK, OK, OK, OK])


def submitted_in_one_batch(wave: Callable[[], list[dict]], provider_id: str, ttl_ms: int) -> list[dict]:
    """Submit a wave while holding the provider's lease, as a third worker would, so
    that the workers only knock; then let go and ask for a decision: whoever takes
    the lease finds the whole wave queued and decides it in one transaction."""
    lease = Lease(notify.redis_client(), provider_lease_key(provider_id), ttl_ms * 10)
    # The worker that decided the warm-up booking lets go of the lease just after its
    # decision is announced: wait for that, with a deadline.
    deadline = time.monotonic() + ttl_ms / 1000 + 5
    while not lease.acquire():
        assert time.monotonic() < deadline, "the provider's lease was never let go"
        time.sleep(0.01)
    try:
        submitted = wave()
    finally:
        lease.release()
    assert notify.enqueue_decision(provider_id)
    return submitted


# --- the drill ---------------------------------------------------------------------------

# A multi-row insert once went through psycopg's executemany, whose pipeline ends in a
# Flush; a Flush received while idle in transaction disarms PostgreSQL's
# idle_in_transaction_session_timeout (18.6), so a worker paused right after it held the
# provider until resumed. The second case keeps that from coming back.


@dataclass
class PausedWorker:
    group: ProcessGroup
    process: psutil.Process
    backend_pid: int
    at: float  # time.monotonic() of the SIGSTOP


def stop_the_worker_in_the_slow_insert(stack, db, groups: list[ProcessGroup]) -> PausedWorker:
    """SIGSTOP whichever worker process is inside the injected pg_sleep: after its
    claim, holding the provider's lease and row lock, with its batch not yet written."""
    backend_pid, client_port = sleeping_backend(db, FIND_SLEEPER_WITHIN_S)
    group, process = owner_of_connection(groups, client_port, stack.postgres.port)
    os.kill(process.pid, signal.SIGSTOP)
    return PausedWorker(group, process, backend_pid, time.monotonic())


def resume_and_await_its_failed_write(paused: PausedWorker) -> None:
    """SIGCONT, then wait until the resumed worker's next statement on its old
    session has failed (the driver finds the connection closed by the server)."""
    seen = sum(CONNECTION_LOST in line for line in paused.group.output)
    os.kill(paused.process.pid, signal.SIGCONT)
    paused.group.wait_for_output(CONNECTION_LOST, count=seen + 1, timeout=30)


@pytest.mark.parametrize("scenario", [
    pytest.param(ONE_INSERT, id="paused-in-a-single-row-insert"),
    pytest.param(SEVERAL_INSERTS, id="paused-in-a-multi-row-insert"),
])
def test_a_worker_paused_mid_batch_loses_its_provider_and_its_stale_transaction_commits_nothing(
        scenario: Scenario, stack, db, slow_first_insert, admin_api: Api, client_api: Api):
    ttl_ms = get_settings().lease_ttl_ms
    takeover_bound = ttl_ms / 1000 + TAKEOVER_MARGIN_S
    pid = admin_api.create_provider(timezone="UTC", slot_minutes=30, weekly_schedule=ALL_WEEK,
                                    min_notice_minutes=0)["id"]
    groups = [start_workers(processes=1), start_workers(processes=1)]
    try:
        # Given two competing worker groups, a booking, and a worker stuck mid-batch after its claim,
        warm = client_api.decided(client_api.submit(pid, slot(10), "warm")["id"], timeout=30)
        assert warm["status"] == "succeeded", warm
        warm_id = warm["booking"]["id"]
        first = submitted_in_one_batch(lambda: scenario.first_wave(client_api, pid, warm_id), pid, ttl_ms)

        # when that worker process is stopped past its lease's TTL,
        paused = stop_the_worker_in_the_slow_insert(stack, db, groups)
        in_flight = [r for r in first if outcomes(db, pid)[r["id"]][0] == "queued"]
        later = scenario.later_wave(client_api, pid, warm_id)

        # then the other group decides what was accepted meanwhile, within the bound,
        decided_later, seconds = decided_until(client_api, later, paused.at + takeover_bound, paused.at)
        print(f"\n[drill 2] {len(in_flight)} request(s) in the paused transaction, {len(later)} "
              f"accepted during the pause: their long-polls answered {seconds[0]:.2f}s to {seconds[-1]:.2f}s "
              f"after SIGSTOP (bound {takeover_bound:.1f}s)")
        assert [r["status"] for r in decided_later].count("queued") == 0, (
            f"no takeover within {takeover_bound:.1f}s of the pause: {[outcome(r) for r in decided_later]}")
        assert paused.process.status() == psutil.STATUS_STOPPED  # so decided by the other group
        decided_first = [client_api.decided(r["id"], timeout=10) for r in first]
        # with the paused transaction ended by PostgreSQL, not committed;
        assert not backend_alive(db, paused.backend_pid)
        assert postgres_ended_for_idling(stack, paused.backend_pid)
        recorded_before_resume = outcomes(db, pid), bookings_of(db, pid)

        # and once resumed, its next write fails and it decides nothing a second time.
        resume_and_await_its_failed_write(paused)
        sentinel = client_api.decided(client_api.submit(pid, slot(20), "after-resume")["id"], timeout=30)
    finally:
        resume_and_stop(groups)

    assert len(in_flight) == len(first) > 0
    assert [outcome(r) for r in decided_first] == scenario.first_outcomes
    assert [outcome(r) for r in decided_later] == scenario.later_outcomes
    assert outcome(sentinel) == OK
    recorded_outcomes, recorded_bookings = outcomes(db, pid), bookings_of(db, pid)
    del recorded_outcomes[sentinel["id"]], recorded_bookings[sentinel["booking"]["id"]]
    assert (recorded_outcomes, recorded_bookings) == recorded_before_resume
    assert bookings_not_owned_once(db, pid) == 0
    assert overlapping_confirmed_pairs(db, pid) == 0
    with db.connect() as conn:
        assert check_history(conn, pid, SLOT) == []
