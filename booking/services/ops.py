"""What an operator watches: the queue, the decisions and their latency, the workers
alive, and the webhooks that are waiting or have failed. One summary, read by
`GET /v1/ops/summary`, the /ops page and `booking status`.

Everything about requests and deliveries comes from PostgreSQL, the truth, on the
database's clock (so it is the same whichever process answers), each figure by one
query on an index of its own (migration 0009). Live workers come from their
heartbeats in Redis (booking.heartbeat)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

from marshmallow import Schema, fields
from sqlalchemy import Connection, text

from booking import heartbeat, redis_clients
from booking.db import get_engine
from booking.messages import DECIDE_PROVIDER, DELIVER_WEBHOOK

log = logging.getLogger(__name__)

DECISION_STATUSES = ("succeeded", "rejected", "failed")
WINDOW_MINUTES = 15  # decisions per minute, and the longer latency window
SHORT_WINDOW_MINUTES = 5  # the two latency windows: decision_latency's last_5m and last_15m
FAILED_DELIVERIES_SHOWN = 20
LAST_ERROR_CHARS = 300
# Counted even with no process alive on them: a 0 there is what an operator must see.
SERVICE_QUEUES = (DECIDE_PROVIDER[0], DELIVER_WEBHOOK[0])

# What waits, in one round trip of indexed reads: the partial indexes on queued requests
# (by seq, migration 0009) and on pending deliveries (migration 0002) hold only that.
# Also what /metrics's gauges read (booking.metrics).
WAITING_WORK = text("""
SELECT (SELECT count(*) FROM booking_requests WHERE status = 'queued') AS queue_depth,
       (SELECT greatest(0, extract(epoch FROM now() - created_at))::float8
          FROM booking_requests WHERE status = 'queued' ORDER BY seq LIMIT 1) AS oldest_queued_age_seconds,
       (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS webhook_backlog
""")

# One row per minute of the window (the current, partial one last), on
# booking_requests_decided_at. Latency is accepted -> decided, both stamped by PostgreSQL.
PER_MINUTE = text("""
WITH minutes AS (
  SELECT generate_series(date_trunc('minute', now()) - make_interval(mins => :window - 1),
                         date_trunc('minute', now()), interval '1 minute') AS minute
), decided AS (
  SELECT date_trunc('minute', decided_at) AS minute, status,
         extract(epoch FROM decided_at - created_at)::float8 AS latency_s
    FROM booking_requests
   WHERE decided_at >= date_trunc('minute', now()) - make_interval(mins => :window - 1)
)
SELECT minute,
       count(status) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(status) FILTER (WHERE status = 'rejected') AS rejected,
       count(status) FILTER (WHERE status = 'failed') AS failed,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_s) AS latency
  FROM minutes LEFT JOIN decided USING (minute)
 GROUP BY minute ORDER BY minute
""")

# Rolling windows ending now, on booking_requests_decided_at.
LATENCY = text("""
SELECT count(*) FILTER (WHERE decided_at >= now() - make_interval(mins => :short)) AS short_count,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_s)
         FILTER (WHERE decided_at >= now() - make_interval(mins => :short)) AS short_latency,
       count(*) AS long_count,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_s) AS long_latency
  FROM (SELECT decided_at, extract(epoch FROM decided_at - created_at)::float8 AS latency_s
          FROM booking_requests WHERE decided_at >= now() - make_interval(mins => :long)) AS decided
""")


# The newest failed deliveries (on webhook_deliveries_failed), each with its last attempt.
FAILED_DELIVERIES = text("""
SELECT d.id, d.request_id, d.message_id, d.event_type, d.url, d.attempt_count, d.created_at,
       a.at AS last_attempt_at, a.status_code AS last_status_code, a.error AS last_error
  FROM (SELECT * FROM webhook_deliveries WHERE status = 'failed'
         ORDER BY created_at DESC, id DESC LIMIT :shown) AS d
  LEFT JOIN LATERAL (SELECT at, status_code, error FROM webhook_attempts
                      WHERE delivery_id = d.id ORDER BY id DESC LIMIT 1) AS a ON true
 ORDER BY d.created_at DESC, d.id DESC
""")


def ops_summary() -> dict:
    """The operators' summary, as SummaryOut renders it: queue depth and oldest queued
    age, decisions per minute by status and decision latency percentiles (last 5 and
    15 minutes), live worker processes by queue (None when Redis cannot be read),
    the webhook backlog and the newest failed deliveries. Raises the database's errors."""
    with get_engine().connect() as conn, conn.begin():
        # One snapshot, one now(): the figures agree with each other.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        summary = {"generated_at": conn.scalar(text("SELECT now()")).astimezone(UTC),
                   **waiting_work(conn), **_decisions(conn), **_failed_deliveries(conn)}
    return {**summary, **_workers()}


def waiting_work(conn: Connection) -> dict:
    """queue_depth, oldest_queued_age_seconds (None when nothing is queued), webhook_backlog."""
    return dict(conn.execute(WAITING_WORK).one()._mapping)


def _decisions(conn: Connection) -> dict:
    minutes = conn.execute(PER_MINUTE, {"window": WINDOW_MINUTES}).all()
    latency = conn.execute(LATENCY, {"short": SHORT_WINDOW_MINUTES, "long": WINDOW_MINUTES}).one()
    per_minute = [{"minute": row.minute.astimezone(UTC), "succeeded": row.succeeded,
                   "rejected": row.rejected, "failed": row.failed,
                   "latency_seconds": _percentiles(row.latency)} for row in minutes]
    return {
        "decisions_per_minute": per_minute,
        "decisions_total": {status: sum(m[status] for m in per_minute) for status in DECISION_STATUSES},
        "decision_latency": {
            "last_5m": {"count": latency.short_count, **_percentiles(latency.short_latency, always=True)},
            "last_15m": {"count": latency.long_count, **_percentiles(latency.long_latency, always=True)},
        },
    }


def _percentiles(values: list[float] | None, always: bool = False) -> dict | None:
    """{p50, p95, p99} in seconds; with no decisions, None (or each None if `always`)."""
    if values is None:
        return {"p50": None, "p95": None, "p99": None} if always else None
    return dict(zip(("p50", "p95", "p99"), values, strict=True))


def _failed_deliveries(conn: Connection) -> dict:
    failed = conn.execute(FAILED_DELIVERIES, {"shown": FAILED_DELIVERIES_SHOWN}).all()
    return {"failed_deliveries": [_failed_delivery(row) for row in failed]}


def _failed_delivery(row) -> dict:
    return {"id": row.id, "request_id": row.request_id, "webhook_id": row.message_id,
            "type": row.event_type, "url_host": url_host(row.url), "attempts": row.attempt_count,
            "last_status_code": row.last_status_code,
            "last_error": row.last_error[:LAST_ERROR_CHARS] if row.last_error else None,
            "last_attempt_at": _utc(row.last_attempt_at), "created_at": _utc(row.created_at)}


def url_host(url: str) -> str:
    """Host and port only: a receiver's path, query or user info can carry its tokens."""
    return urlsplit(url).netloc.rpartition("@")[2]


def _utc(instant: datetime | None) -> datetime | None:
    return instant.astimezone(UTC) if instant is not None else None


def _workers() -> dict:
    try:
        processes = heartbeat.live_processes(redis_clients.shared_client())
    except Exception as error:  # noqa: BLE001 - the rest of the summary still stands
        log.warning("could not read worker heartbeats: %s", error)
        return {"live_workers": None, "workers": None}
    by_queue = {queue: 0 for queue in SERVICE_QUEUES} | heartbeat.live_workers_by_queue(processes)
    return {"live_workers": dict(sorted(by_queue.items())),
            "workers": [{"queues": list(p.queues), "host": p.host, "pid": p.pid, "threads": p.threads}
                        for p in sorted(processes, key=lambda p: (p.queues, p.host, p.pid))]}


# --- one rendering, for /v1/ops/summary and `booking status --json` -----------------

class PercentilesOut(Schema):
    p50 = fields.Float(allow_none=True)
    p95 = fields.Float(allow_none=True)
    p99 = fields.Float(allow_none=True)


class LatencyWindowOut(PercentilesOut):
    count = fields.Integer(metadata={"description": "Requests decided in the window."})


class DecisionLatencyOut(Schema):
    last_5m = fields.Nested(LatencyWindowOut)
    last_15m = fields.Nested(LatencyWindowOut)


class MinuteOut(Schema):
    minute = fields.DateTime(format="iso", metadata={"description": "The minute's start (UTC)."})
    succeeded = fields.Integer()
    rejected = fields.Integer()
    failed = fields.Integer()
    latency_seconds = fields.Nested(PercentilesOut, allow_none=True, metadata={
        "description": "Of the requests decided in this minute; null if none were."})


class DecisionCountsOut(Schema):
    succeeded = fields.Integer()
    rejected = fields.Integer()
    failed = fields.Integer()


class WorkerOut(Schema):
    queues = fields.List(fields.String())
    host = fields.String()
    pid = fields.Integer()
    threads = fields.Integer()


class FailedDeliveryOut(Schema):
    id = fields.UUID()
    request_id = fields.UUID(allow_none=True, metadata={
        "description": "The booking request whose event it was: replay with POST "
                       "/v1/booking-requests/{request_id}/deliveries/{id}/retry."})
    webhook_id = fields.String()
    type = fields.String()
    url_host = fields.String(metadata={"description": "The receiver's host and port (not its path)."})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_attempt_at = fields.DateTime(format="iso", allow_none=True)
    created_at = fields.DateTime(format="iso")


class OpsSummaryOut(Schema):
    generated_at = fields.DateTime(format="iso", metadata={"description": "The database's clock."})
    queue_depth = fields.Integer(metadata={"description": "Requests accepted and not yet decided."})
    oldest_queued_age_seconds = fields.Float(allow_none=True, metadata={
        "description": "How long the oldest queued request has waited; null if none waits."})
    decisions_per_minute = fields.List(fields.Nested(MinuteOut), metadata={
        "description": f"The last {WINDOW_MINUTES} minutes, oldest first, the current one last."})
    decisions_total = fields.Nested(DecisionCountsOut, metadata={
        "description": "The sums of decisions_per_minute."})
    decision_latency = fields.Nested(DecisionLatencyOut, metadata={
        "description": "Seconds from acceptance to decision, over the last 5 and 15 minutes."})
    live_workers = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True, metadata={
        "description": "Worker processes heartbeating, by queue (the service's queues always listed, "
                       "0 if none); null if Redis cannot be read."})
    workers = fields.List(fields.Nested(WorkerOut), allow_none=True)
    webhook_backlog = fields.Integer(metadata={"description": "Webhook deliveries pending."})
    failed_deliveries = fields.List(fields.Nested(FailedDeliveryOut), metadata={
        "description": f"The {FAILED_DELIVERIES_SHOWN} newest failed deliveries, newest first."})
