"""The per-provider decision service.

Holding the provider's lease, a worker drains its queued requests in acceptance
order (`seq`), a batch per transaction. Each transaction reads the batch and the
calendar around it, decides in memory, then claims the calendar at the version it
read (booking.fence: the optimistic lock) before writing anything: if someone else
changed the calendar meanwhile, nothing is written and the batch is read and decided
again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.multirange import Multirange
from psycopg.types.range import Range
from sqlalchemy import Connection, bindparam, exists, func, or_, select, text, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from booking import metrics, notify
from booking.config import get_settings
from booking.db import driver_query, get_engine
from booking.fence import StaleCalendar, claim_calendar
from booking.logging_setup import about_request
from models import Booking, BookingRequest, Provider, ProviderService, Service, WebhookEndpoint
from models.calendar import CalendarRules, Interval, Recurrence, ServiceRules, occurrence_starts
from models.decisions import BatchDecider, Decision, KnownBooking, PendingRequest
from models.sessions import Session, calendar_to_read
from workers.lease import Lease, provider_lease_key
from workers.outbox import write_hold_events, write_outbox

log = logging.getLogger(__name__)

providers, requests_ = Provider.__table__, BookingRequest.__table__
bookings = Booking.__table__
endpoints = WebhookEndpoint.__table__
services, offers = Service.__table__, ProviderService.__table__
STALE_RETRIES = 20
RULE_COLUMNS = ("timezone", "slot_minutes", "weekly_schedule", "min_notice_minutes", "max_advance_days",
                "date_overrides")


class LostRequests(StaleCalendar):
    """An outcome update touched fewer queued requests than it decided: someone else
    decided them. Nothing is written; the batch is read and decided again."""


# SQLSTATE classes that say nothing about the request itself: connection exceptions
# (08), serialization failures and deadlocks (40), insufficient resources (53), lock
# not available (55), operator intervention (57: shutdowns, cancels), system errors
# (58); and an idle-in-transaction timeout (25P03). Program limits (54) and the rest
# are about what was asked, and count against the request.
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "55", "57", "58")
TRANSIENT_SQLSTATES = ("25P03",)


def is_transient(error: Exception) -> bool:
    """Connection trouble (through SQLAlchemy or the bare driver), an exhausted pool,
    or a calendar that moved: retried, never counted against a request."""
    if isinstance(error, (StaleCalendar, PoolTimeout)):
        return True
    cause = getattr(error, "orig", None) or error
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES
    return isinstance(error, (OperationalError, InterfaceError, psycopg.OperationalError,
                              psycopg.InterfaceError))


@dataclass
class Snapshot:
    provider_version: int
    now: datetime  # the database's clock: the one clock that acceptance times come from
    rules: CalendarRules
    rows: list  # queued booking_requests rows, in seq order
    pending: list[PendingRequest]  # the same, as the rules see them
    sessions: list[Session]
    bookings: list[KnownBooking]
    time_off: list[Interval]


def decide_provider_queue(provider_id: uuid.UUID) -> int:
    """Decide every queued request of a provider, oldest first, if no other worker is
    doing so. Returns how many this call decided. Safe to call any number of times.
    Raises (so that the actor retries after a backoff) when a request could not be
    decided this time and has not yet failed often enough to be marked failed."""
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
        count, more = decide_next_batch(provider_id, batch_size)
        decided += count
        if not more or not lease.extend():
            return decided


def decide_next_batch(provider_id: uuid.UUID, batch_size: int) -> tuple[int, bool]:
    """Decide up to `batch_size` queued requests in one transaction. Returns how many,
    and whether more may be queued. A request that makes deciding fail is isolated:
    the error is counted against it (see _attempt_failed), and until it is marked
    `failed` the error propagates, so the actor retries after a backoff."""
    try:
        count = _decide_batch_until_fresh(provider_id, batch_size)
        return count, count == batch_size
    except Exception as error:
        if is_transient(error):
            raise  # the actor's retry (or the re-drive) decides it once things recover
        if batch_size == 1:
            return _count_against_oldest(provider_id, error), True
        log.warning("batch for provider %s failed (%s); deciding one by one to find the request",
                    provider_id, _error_signature(error))
        return _decide_one_by_one(provider_id, batch_size), True


def _decide_one_by_one(provider_id: uuid.UUID, limit: int) -> int:
    """Up to `limit` requests one per transaction, until the one that fails is reached:
    each request before it costs one decision, not one failed batch each. The caller
    then goes on at full batch size."""
    decided = 0
    while decided < limit:
        try:
            count = _decide_batch_until_fresh(provider_id, 1)
        except Exception as error:
            if is_transient(error):
                raise
            return decided + _count_against_oldest(provider_id, error)
        if count == 0:
            break
        decided += count
    return decided


def _count_against_oldest(provider_id: uuid.UUID, error: Exception) -> int:
    """1 if the error made the oldest request `failed`; else the error propagates."""
    if not _attempt_failed(provider_id, error):
        raise error
    return 1


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
        decider = BatchDecider(snapshot.rules, snapshot.bookings, snapshot.time_off, snapshot.now,
                               snapshot.sessions, provider_id)
        decisions = decider.decide_all(snapshot.pending)
        claim_calendar(lambda statement, params: _run(conn, statement, params),
                       provider_id, snapshot.provider_version)
        write_decisions(conn, provider_id, snapshot.rows, decisions, snapshot.now, decider.expired)
        deliveries = []
        if any(row.callback_url or row.wants_events for row in snapshot.rows):
            deliveries = write_outbox(conn, [row.id for row in snapshot.rows])
        if decider.expired:
            deliveries += write_hold_events(conn, [hold.id for hold in decider.expired])
    outcomes = _outcomes(snapshot.rows, decisions, snapshot.now)
    _log_decided(provider_id, outcomes)
    metrics.count_decisions(decided for _row, decided in outcomes)
    notify.publish_decisions(row.id for row in snapshot.rows)
    notify.enqueue_deliveries(deliveries)
    return len(snapshot.rows)


def _outcomes(rows, decisions: list[Decision], decided_at: datetime) -> list[tuple]:
    """Each queued row with its outcome as /metrics counts it (decisions come in the rows'
    order; decided_at: the batch's, as written)."""
    return [(row, metrics.Decided(row.kind, "succeeded" if decision.succeeded else "rejected",
                                  decision.rejection.code if decision.rejection else "",
                                  (decided_at - row.created_at).total_seconds()))
            for row, decision in zip(rows, decisions, strict=True)]


def _log_decided(provider_id: uuid.UUID, outcomes: list[tuple]) -> None:
    """One line per request decided (once committed), carrying its X-Request-Id."""
    if not log.isEnabledFor(logging.INFO):
        return
    for row, decided in outcomes:
        reason = decided.reason or None
        log.info("request %s (%s) %s%s", row.id, row.kind, decided.status, f": {reason}" if reason else "",
                 extra={"request_id": row.request_id, "booking_request_id": str(row.id), "kind": row.kind,
                        "status": decided.status, "reason": reason, "provider_id": str(provider_id)})


# Statements are built once (composing them per call cost more CPU than running them)
# and run on the bare psycopg connection under SQLAlchemy's transaction: SQLAlchemy's
# execution layer cost ~100 us per statement, more than the driver's own work.
SERVICE_COLUMNS = ("duration_minutes", "step_minutes", "buffer_before_minutes", "buffer_after_minutes",
                   "capacity", "daily_limit", "weekly_limit", "requires_confirmation")
# A change to a client's booking made by another key (a host's confirm) is news to the
# booking's owner too.
BOOKING_OWNER = (select(bookings.c.api_key_id).where(bookings.c.id == requests_.c.booking_id)
                 .correlate_except(bookings).scalar_subquery())
QUEUED_BATCH = (
    select(requests_, providers.c.version.label("provider_version"),
           *(providers.c[name] for name in RULE_COLUMNS),
           *(services.c[name].label(f"service_{name}") for name in SERVICE_COLUMNS),
           (services.c.deleted_at.is_(None)
            & exists().where(offers.c.provider_id == requests_.c.provider_id,
                             offers.c.service_id == requests_.c.service_id)).label("service_offered"),
           # Read after the snapshot, so never before the acceptance of a row it sees (the
           # transaction's now() can be: a request may commit after the transaction began).
           func.clock_timestamp().label("db_now"),
           exists().where(or_(endpoints.c.api_key_id == requests_.c.api_key_id,
                              endpoints.c.all_clients,
                              endpoints.c.api_key_id == BOOKING_OWNER)).label("wants_events"))
    .join(providers, providers.c.id == requests_.c.provider_id)
    .outerjoin(services, services.c.id == requests_.c.service_id)
    .where(requests_.c.provider_id == bindparam("provider_id"), requests_.c.status == "queued")
    .order_by(requests_.c.seq).limit(bindparam("batch_size"))
)


def read_snapshot(conn: Connection, provider_id: uuid.UUID, batch_size: int) -> Snapshot | None:
    """The provider's calendar as far as the next batch of queued requests needs it:
    two queries (the queued rows with their provider and services; the sessions,
    bookings and time off around the requested times)."""
    from booking.services.providers import calendar_rules

    rows = _run(conn, QUEUED_BATCH, {"provider_id": provider_id, "batch_size": batch_size}).fetchall()
    if not rows:
        return None
    rules = calendar_rules(rows[0])
    pending = [_pending(row) for row in rows]
    sessions_, bookings_, time_off_ = _calendar_around(conn, provider_id, rules, pending)
    return Snapshot(rows[0].provider_version, rows[0].db_now, rules, rows, pending, sessions_,
                    bookings_, time_off_)


def _service_rules(row) -> ServiceRules | None:
    if row.service_id is None:
        return None
    return ServiceRules(row.service_id, **{name: getattr(row, f"service_{name}") for name in SERVICE_COLUMNS},
                        offered=bool(row.service_offered))


def _pending(row) -> PendingRequest:
    return PendingRequest(id=row.id, kind=row.kind, accepted_at=row.created_at,
                          start=row.start, booking_id=row.booking_id,
                          if_match_versions=row.if_match_versions, customer_id=row.customer_id,
                          service=_service_rules(row),
                          recurrence=Recurrence(**row.recurrence) if row.recurrence else None,
                          ttl_seconds=row.ttl_seconds)


def _requested_window(rules: CalendarRules, pending: list[PendingRequest]) -> Multirange | None:
    """Real time that the batch's requested starts could touch: each one's occupied
    interval, and whole provider-local weeks where a limit counts seats. A multirange,
    so that requests months apart do not read every session between them."""
    spans = [Range(span.start, span.end, "[)")
             for request in pending for start in _requested_starts(rules, request)
             for span in calendar_to_read(rules, request.service or rules.implicit_service(), start, start)]
    return Multirange(spans) if spans else None


def _requested_starts(rules: CalendarRules, request: PendingRequest) -> list[datetime]:
    if request.start is None:
        return []
    if request.recurrence is None:
        return [request.start]
    return [s for s in occurrence_starts(rules.timezone, request.start, request.recurrence) if s is not None]


# Held rows keep their seats until a writer expires them, so a session's customers
# include every `held` one; the decider reads those holds' expiries with them and gives
# back the seats of those that no request from then on may see (BatchDecider).
CALENDAR_AROUND = text("""
WITH near AS (
    SELECT s.* FROM sessions s
     WHERE s.provider_id = :provider_id AND s.seats_taken > 0
       AND (s.occupied && CAST(:window AS tstzmultirange)
            OR s.id IN (SELECT session_id FROM bookings WHERE id = ANY(CAST(:referenced AS uuid[])))))
SELECT 'session' AS source, s.id, s.occupied AS period, s.period AS appointment, s.service_id,
       s.capacity, NULL::int AS version, NULL::text AS status, NULL::text AS customer_id,
       ARRAY(SELECT b.customer_id FROM bookings b
              WHERE b.session_id = s.id AND b.status IN ('pending', 'confirmed', 'held')) AS customers,
       NULL::timestamptz AS expires_at
  FROM near s
UNION ALL
SELECT 'booking', b.id, b.period, NULL, b.service_id, NULL, b.version, b.status, b.customer_id, NULL,
       b.expires_at
  FROM bookings b
 WHERE b.provider_id = :provider_id AND b.id = ANY(CAST(:referenced AS uuid[]))
UNION ALL
SELECT 'booking', b.id, b.period, NULL, b.service_id, NULL, b.version, b.status, b.customer_id, NULL,
       b.expires_at
  FROM near s JOIN bookings b ON b.session_id = s.id AND b.status = 'held'
UNION ALL
SELECT 'time_off', t.id, t.period, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM time_off t
 WHERE t.provider_id = :provider_id AND t.period && CAST(:window AS tstzmultirange)
""")


def _calendar_around(conn: Connection, provider_id, rules: CalendarRules, pending: list[PendingRequest]):
    """Sessions with seats taken and time off around the batch's requested times, the
    sessions and bookings that reschedules and cancels name, in one round trip."""
    window = _requested_window(rules, pending)
    referenced = [request.booking_id for request in pending if request.booking_id is not None]
    found = _run(conn, CALENDAR_AROUND, {"provider_id": provider_id, "window": window,
                                         "referenced": referenced}).fetchall()
    sessions_ = [Session(r.id, r.service_id, _interval(r.appointment), _interval(r.period), r.capacity,
                         list(r.customers)) for r in found if r.source == "session"]
    bookings_ = list({r.id: KnownBooking(r.id, _interval(r.period), r.status, r.version, r.customer_id,
                                         r.service_id, r.expires_at)
                      for r in found if r.source == "booking"}.values())  # a held one may come twice
    time_off_ = [_interval(r.period) for r in found if r.source == "time_off"]
    return sessions_, bookings_, time_off_


def _interval(period: Range) -> Interval:
    return Interval(period.lower, period.upper)


def _range(interval: Interval) -> Range:
    return Range(interval.start, interval.end, "[)")


# Moves and cancels name the version they replace: one that moved under us touches no row.
CANCEL_BOOKING = update(bookings).where(
    bookings.c.id == bindparam("b_id"), bookings.c.version == bindparam("b_version")).values(
    status="cancelled", cancel_reason=bindparam("b_reason"), version=bookings.c.version + 1,
    updated_at=func.now())
# The host's word on a pending booking (the seat trigger frees a declined one's seat).
DECIDE_PENDING = update(bookings).where(
    bookings.c.id == bindparam("b_id"), bookings.c.version == bindparam("b_version"),
    bookings.c.status == "pending").values(
    status=bindparam("b_status"), cancel_reason=bindparam("b_reason"), version=bookings.c.version + 1,
    updated_at=func.now())
# A hold confirmed (its seat stays), released or expired (the seat trigger frees it).
SET_HOLD_STATUS = update(bookings).where(
    bookings.c.id == bindparam("b_id"), bookings.c.version == bindparam("b_version"),
    bookings.c.status == "held").values(
    status=bindparam("b_status"), version=bookings.c.version + 1, updated_at=func.now())
MOVE_BOOKING = update(bookings).where(
    bookings.c.id == bindparam("b_id"), bookings.c.version == bindparam("b_version")).values(
    period=bindparam("b_period"), version=bookings.c.version + 1, updated_at=func.now())
# All of a batch's new bookings in one plain statement; the seat trigger puts each in its
# session (booking_take_seats, migration 0005). Not executemany: psycopg runs that as a
# pipeline ending in a Flush, and a Flush received while the session is idle in its
# transaction switches PostgreSQL's idle_in_transaction_session_timeout off (seen on
# 18.6): a worker paused right after it would hold the provider for good.
INSERT_BOOKINGS = text("""
INSERT INTO bookings (id, provider_id, api_key_id, customer_id, service_id, series_id, period, status,
                      expires_at, version)
SELECT b.id, :provider_id, b.api_key_id, b.customer_id, b.service_id, b.series_id,
       tstzrange(b.starts, b.ends, '[)'), b.status, b.expires_at, 1
  FROM unnest(CAST(:ids AS uuid[]), CAST(:key_ids AS uuid[]), CAST(:customer_ids AS text[]),
              CAST(:service_ids AS uuid[]), CAST(:series_ids AS uuid[]), CAST(:starts AS timestamptz[]),
              CAST(:ends AS timestamptz[]), CAST(:statuses AS text[]), CAST(:expiries AS timestamptz[]))
       AS b(id, api_key_id, customer_id, service_id, series_id, starts, ends, status, expires_at)
""")
# Every outcome of the batch in one statement, so its row count says whether each
# request was still queued.
DECIDE_REQUESTS = text("""
UPDATE booking_requests AS r
   SET status = d.status, reason_code = d.code, reason_message = d.message,
       booking_id = d.booking_id, reason_occurrence = d.occurrence, decided_at = :decided_at
  FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:codes AS text[]),
              CAST(:messages AS text[]), CAST(:booking_ids AS uuid[]), CAST(:occurrences AS int[]))
       AS d(id, status, code, message, booking_id, occurrence)
 WHERE r.id = d.id AND r.status = 'queued'
""")


def write_decisions(conn: Connection, provider_id: uuid.UUID, rows, decisions: list[Decision],
                    now: datetime, expired: Sequence[KnownBooking] = ()) -> None:
    """Write a batch's outcomes (after the claim), first expiring the holds that the
    decisions found expired. Raises LostRequests, rolling all of it back, if any booking
    or request was no longer as the snapshot saw it."""
    row_by_id = {row.id: row for row in rows}
    new_bookings = []
    changes = [(SET_HOLD_STATUS, {"b_id": hold.id, "b_version": hold.version, "b_status": "expired"})
               for hold in expired]
    for decision in decisions:
        kind = decision.change[0] if decision.change else None
        if kind in ("create", "hold"):
            row = row_by_id[decision.request_id]
            new_bookings.extend(_new_bookings(decision, row))
        elif kind == "hold_status":
            changes.append((SET_HOLD_STATUS, {"b_id": decision.booking_id, "b_status": decision.status,
                                              "b_version": decision.changed_version}))
        elif kind == "move":
            changes.append((MOVE_BOOKING, {"b_id": decision.booking_id, "b_version": decision.changed_version,
                                           "b_period": _range(decision.session.appointment)}))
        elif kind in ("confirm_booking", "decline_booking"):
            changes.append((DECIDE_PENDING, {"b_id": decision.booking_id,
                                             "b_version": decision.changed_version,
                                             "b_status": decision.status,
                                             "b_reason": row_by_id[decision.request_id].cancel_reason}))
        elif kind == "cancel":
            changes.append((CANCEL_BOOKING, {"b_id": decision.booking_id,
                                             "b_version": decision.changed_version,
                                             "b_reason": row_by_id[decision.request_id].cancel_reason}))
    # Moves and cancels first, in the order decided: they free the seats that later
    # creates may take (a session this batch emptied then takes the service's shape of
    # today, as the decider gave it), and a booking changed twice goes from each
    # version to the next.
    for statement, parameters in changes:
        if _run(conn, statement, parameters).rowcount != 1:
            raise LostRequests(f"booking {parameters['b_id']} moved under provider {provider_id}")
    if new_bookings:
        _run(conn, INSERT_BOOKINGS, _booking_arrays(provider_id, new_bookings))
    if _run(conn, DECIDE_REQUESTS, _outcome_arrays(decisions, now)).rowcount != len(decisions):
        raise LostRequests(f"requests of provider {provider_id} were decided by someone else")


def _new_bookings(decision: Decision, row) -> list[tuple]:
    """(booking id, request row, session, status, series id, expiry) of each booking a
    create (or hold) makes."""
    if decision.series is None:
        return [(decision.booking_id, row, decision.session, decision.status, None, decision.expires_at)]
    return [(booking_id, row, session, decision.status, row.id, None)
            for booking_id, session in decision.series]


def _booking_arrays(provider_id: uuid.UUID, new_bookings: list) -> dict:
    return {"provider_id": provider_id,
            "ids": [booking_id for booking_id, *_rest in new_bookings],
            "key_ids": [row.api_key_id for _id, row, *_rest in new_bookings],
            "customer_ids": [row.customer_id for _id, row, *_rest in new_bookings],
            "service_ids": [session.service_id for _id, _row, session, *_rest in new_bookings],
            "series_ids": [series_id for *_rest, series_id, _expiry in new_bookings],
            "expiries": [expiry for *_rest, expiry in new_bookings],
            "starts": [session.appointment.start for _id, _row, session, *_rest in new_bookings],
            "ends": [session.appointment.end for _id, _row, session, *_rest in new_bookings],
            "statuses": [status for _id, _row, _session, status, *_rest in new_bookings]}


def _outcome_arrays(decisions: list[Decision], now: datetime) -> dict:
    return {"decided_at": now,
            "ids": [d.request_id for d in decisions],
            "statuses": ["succeeded" if d.rejection is None else "rejected" for d in decisions],
            "codes": [d.rejection.code if d.rejection else None for d in decisions],
            "messages": [d.rejection.message if d.rejection else None for d in decisions],
            "booking_ids": [d.booking_id for d in decisions],
            "occurrences": [d.occurrence for d in decisions]}


def _run(conn: Connection, statement, parameters: dict) -> psycopg.Cursor:
    driver = conn.connection.driver_connection
    return driver.cursor(row_factory=namedtuple_row).execute(*driver_query(statement, parameters))


# --- a request that cannot be decided ----------------------------------------------

OLDEST_QUEUED = text("""
SELECT id, request_id, attempts, last_error FROM booking_requests
 WHERE provider_id = :provider_id AND status = 'queued' ORDER BY seq LIMIT 1""")
# A try counts only if the last counted one is at least :spacing seconds old (the
# database's clock): every submit for the provider brings a message, and a burst of
# them must not spend a request's tries within milliseconds.
COUNT_ATTEMPT = text("""
UPDATE booking_requests
   SET attempts = attempts + 1,
       error_streak = CASE WHEN last_error = :signature THEN error_streak + 1 ELSE 1 END,
       last_error = :signature, last_attempt_at = now()
 WHERE id = :request_id AND status = 'queued'
   AND (last_attempt_at IS NULL OR last_attempt_at <= now() - make_interval(secs => :spacing))
RETURNING attempts, error_streak""")
FAIL_REQUEST = text("""
UPDATE booking_requests
   SET status = 'failed', reason_code = 'internal_error',
       reason_message = 'the request could not be decided', decided_at = now()
 WHERE id = :request_id AND status = 'queued'
RETURNING kind, extract(epoch FROM decided_at - created_at) AS seconds""")


def _error_signature(error: Exception) -> str:
    """What makes two failures 'the same error': the type, and PostgreSQL's SQLSTATE."""
    cause = getattr(error, "orig", None) or error
    sqlstate = getattr(cause, "sqlstate", None)
    return f"{type(cause).__module__}.{type(cause).__qualname__}" + (f" [{sqlstate}]" if sqlstate else "")


def _attempt_failed(provider_id: uuid.UUID, error: Exception) -> bool:
    """Count a failed try against the provider's oldest queued request. True if that
    made it `failed`: the same error `decide_max_attempts` times in a row, or any
    errors three times as often, on tries at least `decide_attempt_spacing_s` apart."""
    settings = get_settings()
    signature = _error_signature(error)
    with get_engine().begin() as conn:
        oldest = conn.execute(OLDEST_QUEUED, {"provider_id": provider_id}).one_or_none()
        if oldest is None:
            return False
        counted = conn.execute(COUNT_ATTEMPT, {"request_id": oldest.id, "signature": signature,
                                               "spacing": settings.decide_attempt_spacing_s}).one_or_none()
    if counted is None:
        return False  # too soon after the last counted try, or decided meanwhile
    limit = settings.decide_max_attempts
    with about_request(oldest.request_id):
        log.warning("request %s of provider %s failed to be decided (same error %s of %s times): %s: %s",
                    oldest.id, provider_id, counted.error_streak, limit, signature, error)
        if counted.error_streak < limit and counted.attempts < 3 * limit:
            return False
        return _fail_request(provider_id, oldest.id)


def _outbox_if_possible(conn: Connection, request_id: uuid.UUID) -> list[uuid.UUID]:
    """The failed request's webhooks, unless writing them is what keeps failing: the
    outcome must stand either way, or the request would block its provider for good."""
    try:
        with conn.begin_nested():
            return write_outbox(conn, [request_id])
    except Exception:  # noqa: BLE001 - logged; the failed outcome is what matters here
        log.exception("webhooks of failed request %s could not be written", request_id)
        return []


def _fail_request(provider_id: uuid.UUID, request_id: uuid.UUID) -> bool:
    """Mark the request `failed` (internal_error), under the calendar fence like any
    other outcome, so that a worker still deciding it cannot also book it."""
    with get_engine().begin() as conn:
        claim_calendar(conn.execute, provider_id)
        failed = conn.execute(FAIL_REQUEST, {"request_id": request_id}).one_or_none()
        if failed is None:
            return False  # decided meanwhile after all
        deliveries = _outbox_if_possible(conn, request_id)
    log.error("request %s of provider %s marked failed after repeated errors", request_id, provider_id)
    metrics.count_decisions([metrics.Decided(failed.kind, "failed", "internal_error", float(failed.seconds))])
    notify.publish_decisions([request_id])
    notify.enqueue_deliveries(deliveries)
    return True
