"""The per-provider decision service.

Holding the provider's lease, a worker drains its queued requests in acceptance
order (`seq`), a batch per transaction. Each transaction first bumps the provider's
version from the one it read (optimistic lock): if someone else changed the calendar
meanwhile, nothing is written and the batch is read and decided again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.range import Range
from sqlalchemy import (
    Connection,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.exc import InterfaceError, OperationalError

from booking import notify
from booking.config import get_settings
from booking.db import driver_query, get_engine
from models import Booking, BookingRequest, Provider, TimeOff, WebhookEndpoint
from models.calendar import CalendarRules, Interval
from models.decisions import BatchDecider, Decision, KnownBooking, PendingRequest
from workers.lease import Lease, provider_lease_key
from workers.outbox import write_outbox

log = logging.getLogger(__name__)

providers, requests_ = Provider.__table__, BookingRequest.__table__
bookings, time_off = Booking.__table__, TimeOff.__table__
endpoints = WebhookEndpoint.__table__
STALE_RETRIES = 20
RULE_COLUMNS = ("timezone", "slot_minutes", "weekly_schedule", "min_notice_minutes", "max_advance_days")


class StaleCalendar(Exception):
    """The provider's version moved between our read and our write."""


# Connection trouble, whether it surfaces through SQLAlchemy or the bare driver.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError,
                    StaleCalendar)


@dataclass
class Snapshot:
    provider_version: int
    rules: CalendarRules
    rows: list  # queued booking_requests rows, in seq order
    bookings: list[KnownBooking]
    time_off: list[Interval]


def decide_provider_queue(provider_id: uuid.UUID) -> int:
    """Decide every queued request of a provider, oldest first, if no other worker is
    doing so. Returns how many this call decided. Safe to call any number of times."""
    settings = get_settings()
    lease = Lease(notify.redis_client(), provider_lease_key(provider_id), settings.lease_ttl_ms)
    decided = 0
    # A request committed while another worker drains has its message knock; that
    # worker sees the knock as it lets go and drains again.
    while lease.acquire_or_knock():
        try:
            decided += _drain(provider_id, lease, settings.decide_batch_size)
        finally:
            knocked = lease.release_reporting_knock()
        if not knocked:
            break
    return decided


def _drain(provider_id: uuid.UUID, lease: Lease, batch_size: int) -> int:
    decided = 0
    while True:
        count = decide_next_batch(provider_id, batch_size)
        decided += count
        if count < batch_size or not lease.extend():
            return decided


def decide_next_batch(provider_id: uuid.UUID, batch_size: int) -> int:
    """Decide up to `batch_size` queued requests in one transaction; 0 if none.
    A request that makes deciding fail is isolated and marked `failed`."""
    try:
        return _decide_batch_until_fresh(provider_id, batch_size)
    except TRANSIENT_ERRORS:
        raise  # the actor's retry (or the re-drive) decides it once things recover
    except Exception:
        if batch_size > 1:
            log.exception("batch for provider %s failed; deciding one by one", provider_id)
            return decide_next_batch(provider_id, 1)
        return _fail_oldest_request(provider_id)


def _decide_batch_until_fresh(provider_id: uuid.UUID, batch_size: int) -> int:
    for _attempt in range(STALE_RETRIES):
        try:
            return _decide_batch_once(provider_id, batch_size)
        except StaleCalendar:
            log.info("provider %s changed during a decision; deciding again", provider_id)
    raise StaleCalendar(f"provider {provider_id} kept changing")


def _decide_batch_once(provider_id: uuid.UUID, batch_size: int) -> int:
    with get_engine().begin() as conn:
        snapshot = read_snapshot(conn, provider_id, batch_size)
        if snapshot is None:
            return 0
        now = datetime.now(UTC)
        decider = BatchDecider(snapshot.rules, snapshot.bookings, snapshot.time_off, now)
        decisions = decider.decide_all([_pending(row) for row in snapshot.rows])
        claim_calendar(conn, provider_id, snapshot.provider_version)
        write_decisions(conn, provider_id, snapshot.rows, decisions, now)
        deliveries = []
        if any(row.callback_url or row.wants_events for row in snapshot.rows):
            deliveries = write_outbox(conn, [row.id for row in snapshot.rows])
    notify.publish_decisions(row.id for row in snapshot.rows)
    notify.enqueue_deliveries(deliveries)
    return len(snapshot.rows)


# Statements are built once (composing them per call cost more CPU than running them)
# and run on the bare psycopg connection under SQLAlchemy's transaction: SQLAlchemy's
# execution layer cost ~100 us per statement, more than the driver's own work.
QUEUED_BATCH = (
    select(requests_, providers.c.version.label("provider_version"),
           *(providers.c[name] for name in RULE_COLUMNS),
           exists().where(or_(endpoints.c.api_key_id == requests_.c.api_key_id,
                              endpoints.c.all_clients)).label("wants_events"))
    .join(providers, providers.c.id == requests_.c.provider_id)
    .where(requests_.c.provider_id == bindparam("provider_id"), requests_.c.status == "queued")
    .order_by(requests_.c.seq).limit(bindparam("batch_size"))
)


def read_snapshot(conn: Connection, provider_id: uuid.UUID, batch_size: int) -> Snapshot | None:
    """The provider's calendar as far as the next batch of queued requests needs it:
    two queries (the queued rows with their provider; the bookings and time off around
    the requested times)."""
    from booking.services.providers import calendar_rules

    rows = _run(conn, QUEUED_BATCH, {"provider_id": provider_id, "batch_size": batch_size}).fetchall()
    if not rows:
        return None
    rules = calendar_rules(rows[0])
    bookings_, time_off_ = _calendar_around(conn, provider_id, rows, rules.slot_length)
    return Snapshot(rows[0].provider_version, rules, rows, bookings_, time_off_)


def _requested_window(rows, slot_length: timedelta) -> Range | None:
    starts = [row.start for row in rows if row.start is not None]
    if not starts:
        return None
    return Range(min(starts), max(starts) + slot_length, "[)")


def _calendar_query(by_window: bool, by_id: bool):
    """Confirmed bookings overlapping :window and/or the bookings named in :referenced,
    and time off overlapping :window, of :provider_id."""
    conditions = []
    if by_window:
        conditions.append((bookings.c.status == "confirmed")
                          & bookings.c.period.overlaps(bindparam("window", type_=bookings.c.period.type)))
    if by_id:
        conditions.append(bookings.c.id == any_(bindparam("referenced", type_=ARRAY(UUID))))
    parts = [select(literal("booking").label("source"), bookings.c.id, bookings.c.period,
                    bookings.c.status).where(bookings.c.provider_id == bindparam("provider_id"),
                                             or_(*conditions))]
    if by_window:
        parts.append(select(literal("time_off"), time_off.c.id, time_off.c.period, literal(None))
                     .where(time_off.c.provider_id == bindparam("provider_id"),
                            time_off.c.period.overlaps(bindparam("window", type_=time_off.c.period.type))))
    return union_all(*parts)


CALENDAR_QUERIES = {(w, i): _calendar_query(w, i) for w in (True, False) for i in (True, False) if w or i}


def _calendar_around(conn: Connection, provider_id, rows, slot_length: timedelta):
    """Confirmed bookings and time off overlapping the batch's requested times, plus the
    bookings that reschedules and cancels name, in one round trip."""
    window = _requested_window(rows, slot_length)
    referenced = [row.booking_id for row in rows if row.booking_id is not None]
    query = CALENDAR_QUERIES[(window is not None, bool(referenced))]
    found = _run(conn, query, {"provider_id": provider_id, "window": window,
                               "referenced": referenced}).fetchall()
    return ([KnownBooking(r.id, Interval(r.period.lower, r.period.upper), r.status)
             for r in found if r.source == "booking"],
            [Interval(r.period.lower, r.period.upper) for r in found if r.source == "time_off"])


def _pending(row) -> PendingRequest:
    return PendingRequest(id=row.id, kind=row.kind, accepted_at=row.created_at,
                          start=row.start, booking_id=row.booking_id)


CLAIM = (update(providers)
         .where(providers.c.id == bindparam("p_id"), providers.c.version == bindparam("seen"))
         .values(version=providers.c.version + 1))
CANCEL_BOOKING = update(bookings).where(bookings.c.id == bindparam("b_id")).values(
    status="cancelled", cancel_reason=bindparam("b_reason"), version=bookings.c.version + 1,
    updated_at=func.now())
MOVE_BOOKING = update(bookings).where(bookings.c.id == bindparam("b_id")).values(
    period=bindparam("b_period"), version=bookings.c.version + 1, updated_at=func.now())
INSERT_BOOKING = insert(bookings).values({name: bindparam(name) for name in (
    "id", "provider_id", "api_key_id", "customer_id", "period", "status", "version")})
DECIDE_REQUEST = update(requests_).where(
    requests_.c.id == bindparam("r_id"), requests_.c.status == "queued").values(
    status=bindparam("r_status"), reason_code=bindparam("r_code"), reason_message=bindparam("r_message"),
    booking_id=bindparam("r_booking"), decided_at=bindparam("r_decided_at"))


def claim_calendar(conn: Connection, provider_id: uuid.UUID, seen_version: int) -> None:
    """The optimistic lock, taken before any write: it also row-locks the provider,
    so a concurrent writer waits for us and then finds the version moved."""
    if _run(conn, CLAIM, {"p_id": provider_id, "seen": seen_version}).rowcount != 1:
        raise StaleCalendar(provider_id)


def write_decisions(conn: Connection, provider_id: uuid.UUID, rows, decisions: list[Decision],
                    now: datetime) -> None:
    row_by_id = {row.id: row for row in rows}
    new_bookings, moves, cancels = [], [], []
    for decision in decisions:
        kind, interval = decision.change or (None, None)
        if kind == "create":
            row = row_by_id[decision.request_id]
            new_bookings.append({
                "id": decision.booking_id, "provider_id": provider_id,
                "api_key_id": row.api_key_id, "customer_id": row.customer_id,
                "period": Range(interval.start, interval.end, "[)"),
                "status": "confirmed", "version": 1,
            })
        elif kind == "move":
            moves.append({"b_id": decision.booking_id,
                          "b_period": Range(interval.start, interval.end, "[)")})
        elif kind == "cancel":
            cancels.append({"b_id": decision.booking_id,
                            "b_reason": row_by_id[decision.request_id].cancel_reason})
    # Cancels and moves first: they free the times that later creates may take.
    _execute_many(conn, CANCEL_BOOKING, cancels)
    _execute_many(conn, MOVE_BOOKING, moves)
    _execute_many(conn, INSERT_BOOKING, new_bookings)
    _execute_many(conn, DECIDE_REQUEST, [{**_request_outcome(d), "r_decided_at": now} for d in decisions])


def _request_outcome(decision: Decision) -> dict:
    rejection = decision.rejection
    return {"r_id": decision.request_id,
            "r_status": "succeeded" if rejection is None else "rejected",
            "r_code": rejection.code if rejection else None,
            "r_message": rejection.message if rejection else None,
            "r_booking": decision.booking_id}


def _run(conn: Connection, statement, parameters: dict) -> psycopg.Cursor:
    driver = conn.connection.driver_connection
    return driver.cursor(row_factory=namedtuple_row).execute(*driver_query(statement, parameters))


def _execute_many(conn: Connection, statement, parameters: list[dict]) -> None:
    cursor = conn.connection.driver_connection.cursor()
    if len(parameters) == 1:  # executemany's pipeline costs more than it saves for one row
        cursor.execute(*driver_query(statement, parameters[0]))
    elif parameters:
        sql = driver_query(statement, {})[0]
        cursor.executemany(sql, [driver_query(statement, row)[1] for row in parameters])


def _fail_oldest_request(provider_id: uuid.UUID) -> int:
    """Last resort for a request that cannot be decided: mark it failed so that it
    does not block the provider's queue forever."""
    log.exception("request of provider %s cannot be decided; marking it failed", provider_id)
    with get_engine().begin() as conn:
        oldest = conn.execute(
            select(requests_.c.id)
            .where(requests_.c.provider_id == provider_id, requests_.c.status == "queued")
            .order_by(requests_.c.seq).limit(1).with_for_update()).one_or_none()
        if oldest is None:
            return 0
        conn.execute(update(requests_).where(requests_.c.id == oldest.id).values(
            status="failed", reason_code="internal_error",
            reason_message="the request could not be decided", decided_at=func.now()))
        deliveries = write_outbox(conn, [oldest.id])
    notify.publish_decisions([oldest.id])
    notify.enqueue_deliveries(deliveries)
    return 1
