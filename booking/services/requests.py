"""Accepting booking requests (create, reschedule, cancel) and reading them back.

A request is committed as `queued` before anyone is told it was accepted; only then
is the provider's decision enqueued. If the broker is down the request still stands,
and the periodic re-drive enqueues it later."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import bindparam, func, insert, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from booking import metrics, notify, webhooks
from booking.config import get_settings
from booking.db import driver_autocommit, driver_query, new_session
from booking.logging_setup import current_request_id
from booking.services.errors import Conflict, IfMatch, InvalidInput, NotFound, TooManyRequests
from booking.services.pagination import decode_cursor, page
from models import ApiKey, Booking, BookingRequest, Provider

BOOKING_STATUSES = ("pending", "confirmed", "declined", "cancelled")  # the rest are holds


def fingerprint(kind: str, target: uuid.UUID, body: dict[str, Any]) -> str:
    """What makes two submissions 'the same request' for Idempotency-Key."""
    canonical = {key: (value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value)
                 for key, value in body.items()}
    text = json.dumps([kind, str(target), canonical], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_callback_url(url: str | None, field: str = "callback_url") -> None:
    """422 naming `field` if we would refuse to call `url` (see booking.webhooks)."""
    reason = webhooks.unsafe_url_reason(url) if url else None
    if reason:
        raise InvalidInput(f"We will not call this URL: {reason}.", {field: [reason]})


# How many undecided requests a key has, counted up to the cap (the partial index on
# queued rows per key keeps this cheap).
UNDECIDED = """SELECT count(*) AS queued FROM (
    SELECT 1 FROM booking_requests WHERE api_key_id = :api_key_id AND status = 'queued' LIMIT :cap
) AS undecided"""

# Acceptance order is commit order, per provider. A request takes its `seq` at insert
# but becomes visible at commit; were two accepts of one provider to commit out of
# `seq` order, a worker could decide the later one before the earlier is visible. So
# each accept takes the provider's transaction-scoped advisory lock before it draws
# its `seq`, and holds it until its commit. (Accepts of different providers do not
# wait for each other, but for a rare hash collision.) The acceptance time is the
# database's clock, read under the same lock, so it too is in acceptance order.
PROVIDER_QUEUE_LOCK = "pg_advisory_xact_lock(hashtextextended(CAST(:provider_id AS text), 0))"
LOCK_PROVIDER_QUEUE = text(f"SELECT {PROVIDER_QUEUE_LOCK}")

# One statement, one round trip, atomic on its own: the provider must exist, offer the
# service named (if any) and the key must be under its cap, else nothing is inserted
# (no zone: no provider; no service: not offered; no seq: over the cap). Three queries
# in a transaction cost five round trips. (A service deleted or withdrawn after this is
# the decision's business: rejected `service_not_offered`.)
ACCEPT_CREATE = text(f"""
WITH provider AS (SELECT id, timezone FROM providers WHERE id = :provider_id),
     service AS (
         SELECT s.deleted_at IS NULL AS live,
                EXISTS (SELECT 1 FROM provider_services o
                         WHERE o.provider_id = :provider_id AND o.service_id = s.id) AS offered
           FROM services s WHERE s.id = CAST(:service_id AS uuid)),
     offer AS (SELECT CAST(:service_id AS uuid) IS NULL
                      OR coalesce((SELECT live AND offered FROM service), false) AS ok),
     backlog AS ({UNDECIDED}),
     turn AS (SELECT {PROVIDER_QUEUE_LOCK}),
     accepted AS (
         INSERT INTO booking_requests (id, kind, provider_id, api_key_id, customer_id, service_id, start,
                                       recurrence, ttl_seconds, callback_url, status, idempotency_key,
                                       request_fingerprint, request_id, created_at)
         SELECT :id, :kind, provider.id, :api_key_id, :customer_id, CAST(:service_id AS uuid), :start,
                CAST(:recurrence AS jsonb), :ttl_seconds, :callback_url, 'queued', :idempotency_key,
                :request_fingerprint, :request_id, clock_timestamp()
         FROM provider, offer, backlog, turn WHERE offer.ok AND backlog.queued < :cap
         RETURNING seq, created_at)
SELECT (SELECT timezone FROM provider), (SELECT live FROM service), (SELECT ok FROM offer),
       accepted.seq, accepted.created_at
  FROM (SELECT 1) AS one LEFT JOIN accepted ON true
""")



def submit_create(key: ApiKey, provider_id: uuid.UUID, customer_id: str, start: datetime,
                  callback_url: str | None, idempotency_key: str | None,
                  service_id: uuid.UUID | None = None, recurrence: dict | None = None) -> BookingRequest:
    """Accept a request to book `start` with a provider, of one of its services (default:
    its implicit one), or a series (`recurrence`: {"frequency", "interval", "count"}).
    422 naming `provider_id` if the provider is unknown, `service_id` if the service is
    unknown, deleted or not offered by the provider."""
    check_callback_url(callback_url)
    body = {"customer_id": customer_id, "start": start, "callback_url": callback_url}
    # Only when given: fingerprints of earlier submissions stay as they were.
    if service_id is not None:
        body["service_id"] = str(service_id)
    if recurrence is not None:
        body["recurrence"] = recurrence
    request = BookingRequest(kind="create", provider_id=provider_id, customer_id=customer_id,
                             service_id=service_id, start=start, recurrence=recurrence,
                             callback_url=callback_url)
    return submit_for_slot(key, request, body, idempotency_key)


def submit_for_slot(key: ApiKey, request: BookingRequest, body: dict[str, Any],
                    idempotency_key: str | None) -> BookingRequest:
    """Accept a request that names a provider's slot rather than a booking (a create or a
    hold); `body` is what makes two submissions the same for Idempotency-Key."""
    print_ = fingerprint(request.kind, request.provider_id, body) if idempotency_key else None
    earlier = _earlier_submission(key, idempotency_key, print_)
    if earlier is not None:
        return earlier
    request.id, request.api_key_id, request.status = uuid.uuid4(), key.id, "queued"
    request.idempotency_key, request.request_fingerprint = idempotency_key, print_
    request.request_id = current_request_id()  # the X-Request-Id it came with, for its log lines
    provider_id = request.provider_id
    try:
        zone = _insert_create(request)
    except psycopg.errors.IntegrityError as error:
        return _raced_submission(key, idempotency_key, print_, error)
    request.provider = Provider(id=provider_id, timezone=zone)  # what presenting it needs
    metrics.count_accepted(request.kind)
    notify.enqueue_decision(provider_id)
    return request


def _insert_create(request: BookingRequest) -> str:
    """Insert the queued request; the provider's time zone. 422 or 429 if refused."""
    cap = max_queued_per_client()
    columns = ("id", "kind", "provider_id", "api_key_id", "customer_id", "service_id", "start", "ttl_seconds",
               "callback_url", "idempotency_key", "request_fingerprint", "request_id")
    recurrence = json.dumps(request.recurrence) if request.recurrence is not None else None
    with driver_autocommit() as conn:
        zone, service_live, offered, seq, created_at = conn.execute(*driver_query(ACCEPT_CREATE, {
            "cap": cap, "recurrence": recurrence,
            **{name: getattr(request, name) for name in columns}})).fetchone()
    if zone is None:
        raise InvalidInput("No such provider.", {"provider_id": ["no such provider"]})
    if not offered:
        raise _service_refused(service_live)
    if seq is None:
        raise _over_cap(cap)
    request.seq, request.created_at = seq, created_at
    return zone


def _service_refused(service_live: bool | None) -> InvalidInput:
    if not service_live:  # None: no such row; False: deleted
        return InvalidInput("No such service.", {"service_id": ["no such service"]})
    return InvalidInput("The provider does not offer this service.",
                        {"service_id": ["not offered by this provider"]})


def submit_change(key: ApiKey, kind: str, booking_id: uuid.UUID, start: datetime | None,
                  cancel_reason: str | None, callback_url: str | None,
                  idempotency_key: str | None, if_match: IfMatch | None = None) -> BookingRequest:
    """Accept a reschedule, a cancel, or the host's confirm_booking / decline_booking (the
    view lets only admins ask for those) of a booking the key can see (404 otherwise).
    With `if_match`: 412 unless the booking is now at a version it names, and the
    change is rejected `booking_changed` if the booking has moved on by the time it is
    decided (two changes made against one version: the first one wins)."""
    check_callback_url(callback_url)
    body = {"start": start, "reason": cancel_reason, "callback_url": callback_url}
    if if_match is not None:  # only then: fingerprints of earlier submissions stay as they were
        body["if_match"] = sorted(if_match.versions)

    def build(session: Session) -> BookingRequest:
        booking = _visible_booking(session, key, booking_id)
        if if_match is not None:
            if_match.check("booking", booking.version)
        # The booking's service goes with the request: the worker reads the service (what
        # a reschedule's new interval takes, whether it is still offered) from the request.
        return BookingRequest(kind=kind, provider=booking.provider, booking=booking,
                              customer_id=booking.customer_id, service_id=booking.service_id, start=start,
                              cancel_reason=cancel_reason, callback_url=callback_url,
                              if_match_versions=sorted(if_match.versions) if if_match else None)

    return _accept(key, kind, booking_id, body, idempotency_key, build)


INSERTED_COLUMNS = ("id", "kind", "provider_id", "api_key_id", "booking_id", "customer_id", "service_id",
                    "start", "cancel_reason", "callback_url", "status", "idempotency_key",
                    "request_fingerprint", "if_match_versions", "request_id")


def _accept(key: ApiKey, kind: str, target: uuid.UUID, body: dict[str, Any],
            idempotency_key: str | None, build) -> BookingRequest:
    print_ = fingerprint(kind, target, body) if idempotency_key else None
    earlier = _earlier_submission(key, idempotency_key, print_)
    if earlier is not None:
        return earlier
    try:
        with new_session() as session, session.begin():
            _check_queued_cap(session, key)
            request = build(session)
            request.id, request.api_key_id, request.status = uuid.uuid4(), key.id, "queued"
            request.provider_id, request.booking_id = request.provider.id, request.booking.id
            request.idempotency_key, request.request_fingerprint = idempotency_key, print_
            request.request_id = current_request_id()  # the X-Request-Id it came with
            _insert_in_acceptance_order(session, request)
    except IntegrityError as error:
        return _raced_submission(key, idempotency_key, print_, error)
    metrics.count_accepted(request.kind)
    notify.enqueue_decision(request.provider_id)
    return request


def _raced_submission(key: ApiKey, idempotency_key: str | None, print_: str | None,
                      error: Exception) -> BookingRequest:
    """After an insert refused by a constraint: two submissions with one Idempotency-Key
    raced and the other one won (its request is the answer), or the state changed
    under us (409, never a 500)."""
    earlier = _earlier_submission(key, idempotency_key, print_)
    if earlier is None:
        raise Conflict("The request conflicts with the current state; try again.") from error
    return earlier


def _insert_in_acceptance_order(session: Session, request: BookingRequest) -> None:
    """Insert under the provider's queue lock (see ACCEPT_CREATE); the row's `seq` and
    acceptance time (the database's clock) are read back onto `request`."""
    session.execute(LOCK_PROVIDER_QUEUE, {"provider_id": request.provider_id})
    request.seq, request.created_at = session.execute(
        insert(_requests).values({name: getattr(request, name) for name in INSERTED_COLUMNS})
        .values(created_at=func.clock_timestamp())
        .returning(_requests.c.seq, _requests.c.created_at)).one()


def _check_queued_cap(session: Session, key: ApiKey) -> None:
    """One client may not flood the queues: 429 past BOOKING_MAX_QUEUED_PER_CLIENT
    undecided requests. (Concurrent submits may overshoot by a few; it is a guard.)"""
    cap = max_queued_per_client()
    if session.scalar(text(UNDECIDED), {"api_key_id": key.id, "cap": cap}) >= cap:
        raise _over_cap(cap)


def _over_cap(cap: int) -> TooManyRequests:
    return TooManyRequests(f"This key has {cap} undecided requests, the most allowed; "
                           "wait for some to be decided.",
                           {"api_key": [f"at most {cap} undecided requests"]})


def max_queued_per_client() -> int:
    return get_settings().max_queued_per_client


def _earlier_submission(key: ApiKey, idempotency_key: str | None,
                        print_: str | None) -> BookingRequest | None:
    """The request accepted earlier under this Idempotency-Key; 422 if it was another request."""
    if not idempotency_key:
        return None
    with new_session() as session:
        earlier = session.scalar(
            select(BookingRequest).options(joinedload(BookingRequest.provider),
                                           joinedload(BookingRequest.booking))
            .where(BookingRequest.api_key_id == key.id,
                   BookingRequest.idempotency_key == idempotency_key)
        )
        if earlier is not None:
            load_series([earlier], session)
    if earlier is not None and earlier.request_fingerprint != print_:
        raise InvalidInput("This Idempotency-Key was used with a different request.",
                           {"Idempotency-Key": ["reused with a different request"]})
    return earlier


def _visible_booking(session: Session, key: ApiKey, booking_id: uuid.UUID) -> Booking:
    """A booking the key may see (its own, or any for an admin); a hold is no booking."""
    booking = session.get(Booking, booking_id)
    if (booking is None or booking.status not in BOOKING_STATUSES
            or not (key.is_admin or booking.api_key_id == key.id)):
        raise NotFound("No such booking.")
    return booking


_requests, _bookings, _providers = BookingRequest.__table__, Booking.__table__, Provider.__table__
_BOOKING_COLUMNS = [column.label(f"booking__{column.name}") for column in _bookings.c]
# A statement run on the bare driver (booking.db.driver_query), not an ORM query: this
# runs twice per long-poll, and the ORM's joined eager loading cost more CPU than the
# rest of the request together.
READ_REQUEST = (
    select(_requests, _providers.c.timezone, *_BOOKING_COLUMNS)
    .join(_providers, _providers.c.id == _requests.c.provider_id)
    .outerjoin(_bookings, _bookings.c.id == _requests.c.booking_id)
    .where(_requests.c.id == bindparam("request_id"))
)


def get_request(key: ApiKey, request_id: uuid.UUID) -> BookingRequest:
    """The request, if the key may see it (its own, or any for an admin); else 404.
    (Detached objects with what presenting them needs: the provider's zone, the booking.)"""
    with driver_autocommit() as conn:
        row = conn.cursor(row_factory=dict_row).execute(
            *driver_query(READ_REQUEST, {"request_id": request_id})).fetchone()
    if row is None or not (key.is_admin or row["api_key_id"] == key.id):
        raise NotFound("No such booking request.")
    request = BookingRequest(**{column.name: row[column.name] for column in _requests.c})
    request.provider = Provider(id=row["provider_id"], timezone=row["timezone"])
    if row["booking_id"] is not None:
        request.booking = Booking(**{column.name: row[f"booking__{column.name}"] for column in _bookings.c})
    load_series([request])
    return request


def load_series(requests: list[BookingRequest], session: Session | None = None) -> None:
    """Give each succeeded series request its bookings (`series_bookings`, in start
    order), in one query; other requests get None."""
    wanted = [r for r in requests if r.recurrence and r.status == "succeeded"]
    for request in requests:
        request.series_bookings = None
    if not wanted:
        return
    query = (select(Booking).where(Booking.series_id.in_([r.id for r in wanted]))
             .order_by(func.lower(Booking.period)))
    if session is not None:
        found = list(session.scalars(query))
    else:
        with new_session() as own:
            found = list(own.scalars(query))
    for request in wanted:
        request.series_bookings = [b for b in found if b.series_id == request.id]


def wait_for_decision(key: ApiKey, request_id: uuid.UUID, timeout: float) -> BookingRequest:
    """The request as soon as it is decided, or still queued once `timeout` passes."""
    if timeout <= 0:
        return get_request(key, request_id)
    deadline = time.monotonic() + timeout
    # Registered before reading, so a decision landing between the two still wakes us.
    with notify.decision_waiter(request_id) as wait:
        request = get_request(key, request_id)
        while request.status == "queued" and (remaining := deadline - time.monotonic()) > 0:
            wait(remaining)
            request = get_request(key, request_id)
    return request


def list_requests(key: ApiKey, status: str | None, limit: int,
                  cursor: str | None) -> tuple[list[BookingRequest], str | None]:
    query = (select(BookingRequest)
             .options(joinedload(BookingRequest.provider), joinedload(BookingRequest.booking))
             .order_by(BookingRequest.seq).limit(limit + 1))
    if not key.is_admin:
        query = query.where(BookingRequest.api_key_id == key.id)
    if status:
        query = query.where(BookingRequest.status == status)
    if cursor:
        (after,) = decode_cursor(cursor, int)
        query = query.where(BookingRequest.seq > after)
    with new_session() as session:
        rows = list(session.scalars(query).unique())
        load_series(rows, session)
    return page(rows, limit, lambda r: (r.seq,))


def get_booking(key: ApiKey, booking_id: uuid.UUID) -> Booking:
    with new_session() as session:
        booking = _visible_booking(session, key, booking_id)
        session.refresh(booking, ["provider"])
        return booking


def list_bookings(key: ApiKey, filters: dict[str, Any], limit: int,
                  cursor: str | None) -> tuple[list[Booking], str | None]:
    start = func.lower(Booking.period)
    query = (select(Booking).options(joinedload(Booking.provider))
             .order_by(start, Booking.id).limit(limit + 1))
    query = query.where(Booking.status.in_(BOOKING_STATUSES))  # holds are read as holds
    if not key.is_admin:
        query = query.where(Booking.api_key_id == key.id)
    for name in ("provider_id", "customer_id", "status", "series_id"):
        if filters.get(name) is not None:
            query = query.where(getattr(Booking, name) == filters[name])
    if filters.get("from") is not None:
        query = query.where(func.upper(Booking.period) > filters["from"])
    if filters.get("to") is not None:
        query = query.where(start < filters["to"])
    if cursor:
        query = query.where(tuple_(start, Booking.id) > decode_cursor(cursor, datetime, uuid.UUID))
    with new_session() as session:
        rows = list(session.scalars(query))
    return page(rows, limit, lambda b: (b.period.lower, b.id))
