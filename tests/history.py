"""A small, independent model of one provider's calendar, to check a history.

It knows nothing of the workers' code: it reads what PostgreSQL recorded (every
request in acceptance order with its outcome, every booking) and replays the
requests one by one through a sequential model of the rules, first come, first
served. Any request whose recorded outcome differs from the model's, any request
left undecided, and any difference between the final bookings are reported; and,
given what a webhook receiver got, any decided request whose callback (or subscribed
endpoint) did not get exactly the events the model predicts (at least once, one
`webhook-id` for repeats).

The model covers calendars where every requested start is on the slot grid, inside
working hours, clear of time off and within notice and advance limits (the histories
the concurrency tests make), so the only reasons are about the slots themselves."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text


@dataclass(frozen=True)
class Recorded:
    id: uuid.UUID
    seq: int
    kind: str
    start: datetime | None
    booking_id: uuid.UUID | None
    if_match_versions: list[int] | None
    status: str
    reason_code: str | None
    callback_url: str | None = None


@dataclass
class ModelBooking:
    start: datetime
    cancelled: bool = False
    version: int = 1


@dataclass
class Model:
    """What a sequential, first-come-first-served decider would have done."""

    slot: timedelta
    bookings: dict[uuid.UUID, ModelBooking] = field(default_factory=dict)

    def taken(self, start: datetime, ignoring: uuid.UUID | None = None) -> bool:
        end = start + self.slot
        return any(not b.cancelled and b.start < end and start < b.start + self.slot
                   for booking_id, b in self.bookings.items() if booking_id != ignoring)

    def apply(self, request: Recorded) -> tuple[str, str | None]:
        if request.kind == "create":
            if self.taken(request.start):
                return "rejected", "slot_unavailable"
            # The model cannot invent the booking id; it takes the one that was stored.
            self.bookings[request.booking_id or uuid.uuid4()] = ModelBooking(request.start)
            return "succeeded", None
        booking = self.bookings.get(request.booking_id)
        if booking is None:
            return "rejected", "booking_not_found"
        if request.if_match_versions is not None and booking.version not in request.if_match_versions:
            return "rejected", "booking_changed"
        if booking.cancelled:
            return "rejected", "booking_cancelled"
        if request.kind == "cancel":
            booking.cancelled, booking.version = True, booking.version + 1
            return "succeeded", None
        if self.taken(request.start, ignoring=request.booking_id):
            return "rejected", "slot_unavailable"
        booking.start, booking.version = request.start, booking.version + 1
        return "succeeded", None


def recorded_history(conn, provider_id) -> list[Recorded]:
    rows = conn.execute(text(
        "SELECT id, seq, kind, start, booking_id, if_match_versions, status, reason_code, callback_url "
        "FROM booking_requests WHERE provider_id = :p ORDER BY seq"), {"p": provider_id})
    return [Recorded(*row) for row in rows]


def stored_bookings(conn, provider_id) -> dict[uuid.UUID, tuple[datetime, str, int]]:
    rows = conn.execute(text("SELECT id, lower(period), status, version FROM bookings "
                             "WHERE provider_id = :p"), {"p": provider_id})
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def check_history(conn, provider_id, slot: timedelta) -> list[str]:
    """Every way the recorded history differs from the model's; empty if none."""
    model, problems = Model(slot), []
    for request in recorded_history(conn, provider_id):
        if request.status == "queued":
            problems.append(f"seq {request.seq} ({request.kind}) was never decided")
            continue
        expected = model.apply(request)
        if (request.status, request.reason_code) != expected:
            problems.append(f"seq {request.seq} {request.kind} {request.start}: recorded "
                            f"{request.status}/{request.reason_code}, model {expected[0]}/{expected[1]}")
    problems += _booking_differences(model, stored_bookings(conn, provider_id))
    return problems


def _booking_differences(model: Model, stored: dict) -> list[str]:
    expected = {booking_id: (b.start, "cancelled" if b.cancelled else "confirmed", b.version)
                for booking_id, b in model.bookings.items()}
    return [f"booking {booking_id}: stored {stored.get(booking_id)}, model {expected.get(booking_id)}"
            for booking_id in sorted(set(expected) | set(stored), key=str)
            if stored.get(booking_id) != expected.get(booking_id)]


BOOKING_EVENTS = {"create": "booking.confirmed", "reschedule": "booking.rescheduled",
                  "cancel": "booking.cancelled"}


def check_webhooks(conn, provider_id, received: Iterable[dict],
                   subscribed: frozenset[str] = frozenset()) -> list[str]:
    """Every decided request got the events its outcome calls for, at least once and
    always under one `webhook-id`, and no other: `booking_request.<status>` at its
    callback URL, if it gave one, and the `booking.*` event of a succeeded change if
    the receiver's endpoint is `subscribed` to it. `received`: what the receiver
    recorded, each {"headers": {...}, "body": "..."}."""
    got = _received_by_request(conn, provider_id, received)
    problems = []
    for request in recorded_history(conn, provider_id):
        events = got.pop(str(request.id), {})
        expected = _expected_events(request, subscribed)
        if set(events) != expected:
            problems.append(f"seq {request.seq}: webhook events {sorted(events)}, model {sorted(expected)}")
        problems += [f"seq {request.seq}: {event} came under {len(ids)} webhook-ids"
                     for event, ids in events.items() if len(ids) != 1]
    return problems + [f"events for request {rid} of no recorded request" for rid in got]


def _expected_events(request: Recorded, subscribed: frozenset[str]) -> set[str]:
    expected = set()
    if request.callback_url and request.status != "queued":
        expected.add(f"booking_request.{request.status}")
    if request.status == "succeeded" and BOOKING_EVENTS[request.kind] in subscribed:
        expected.add(BOOKING_EVENTS[request.kind])
    return expected


def _received_by_request(conn, provider_id, received: Iterable[dict]) -> dict[str, dict[str, set[str]]]:
    """Event type -> webhook-ids, per request id. A booking.* event carries the booking,
    not the request: its webhook-id (the outbox row's message id) says which request."""
    request_of = {message_id: str(request_id) for message_id, request_id in conn.execute(text(
        "SELECT d.message_id, d.request_id FROM webhook_deliveries d "
        "JOIN booking_requests r ON r.id = d.request_id WHERE r.provider_id = :p"), {"p": provider_id})}
    got: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for delivery in received:
        headers = {name.lower(): value for name, value in delivery["headers"].items()}
        event = json.loads(delivery["body"])
        if event["type"].startswith("booking_request."):
            request_id = event["data"]["id"]
        else:
            request_id = request_of.get(headers["webhook-id"], f"unknown ({headers['webhook-id']})")
        got[request_id][event["type"]].add(headers["webhook-id"])
    return got
