"""Prometheus metrics, summed across every web and worker process (design §9).

Multiprocess mode (prometheus_client's): a process started with PROMETHEUS_MULTIPROC_DIR
writes its counters and histograms to memory-mapped files of its own in that directory,
and `GET /metrics`, in whichever web process answers, sums the files of all of them, of
processes that have exited included (a counter must not drop when a process does). The
variable is read when prometheus_client is first imported (here, on import), so it
comes from whoever starts the processes, never from Python: `booking up`, the compose
entrypoint, the tests; they also empty the directory first. Without it (unit tests, a
bare process) each process counts alone and /metrics shows that process's counts.

Queue depth, the oldest queued request's age and the webhook backlog are not counted
anywhere: they are read from PostgreSQL (the truth, whatever process answers) when
scraped, at most once a second per process.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import glob
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import psycopg
from dramatiq.middleware.prometheus import Prometheus
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy.exc import SQLAlchemyError

from booking.db import autocommit
from booking.services.ops import waiting_work  # the summary's own query: one truth for both

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# docker-compose.yml: containers have PID namespaces of their own, so two containers'
# processes could have one pid and write one file. Each container writes to its own
# subdirectory (its PROMETHEUS_MULTIPROC_DIR) of a volume they share, named here, and
# /metrics sums every subdirectory.
SHARED_DIR_ENV = "BOOKING_METRICS_SHARED_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Decisions wait behind a provider's queue; a backlog can take minutes to drain.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Long-polls (?wait=N, up to 60 s) are requests too.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS_ACCEPTED = Counter(
    "booking_requests_accepted", "Booking requests accepted (queued), by kind. A repeat with the "
    "same Idempotency-Key is the earlier request, not a new one.", ["kind"])
REQUESTS_DECIDED = Counter(
    "booking_requests_decided", "Booking requests decided, by kind, status (succeeded, rejected, "
    "failed) and reason code (empty when succeeded).", ["kind", "status", "reason"])
DECISION_LATENCY = Histogram(
    "booking_decision_latency_seconds", "From a request's acceptance to its decision (the "
    "database's clock).", ["kind"], buckets=LATENCY_BUCKETS)
WEBHOOK_DELIVERIES = Counter(
    "booking_webhook_deliveries", "Webhook delivery attempts by outcome: delivered; retried "
    "(it failed and another attempt is scheduled); failed (it failed and the delivery is given "
    "up).", ["outcome"])
HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests answered, by method, route (the URL rule, not the path) and "
    "status.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request, by route.", ["route"],
    buckets=HTTP_BUCKETS)

# A labelled series exists only from its first increment, and rate() cannot count the
# first sample of a series: a first failure would never raise an alert. The outcomes an
# alert watches start at 0 in every process.
for _outcome in ("delivered", "retried", "failed"):
    WEBHOOK_DELIVERIES.labels(_outcome)
REQUESTS_DECIDED.labels("create", "failed", "internal_error")


# --- what the processes count ----------------------------------------------------

def count_accepted(kind: str) -> None:
    REQUESTS_ACCEPTED.labels(kind).inc()


class Decided(NamedTuple):
    kind: str
    status: str  # succeeded, rejected, failed
    reason: str  # the reason code; "" when succeeded
    seconds: float  # from acceptance to decision


def count_decisions(decided: Iterable[Decided]) -> None:
    """A batch's decisions, once committed: one counter write per outcome the batch had
    (a write to a shared file, not free), one latency observation per request."""
    outcomes = collections.Counter()
    for decision in decided:
        outcomes[decision.kind, decision.status, decision.reason] += 1
        # Never negative since decisions read the clock after their snapshot; clamped all
        # the same, as a histogram cannot take a negative observation.
        DECISION_LATENCY.labels(decision.kind).observe(max(0.0, decision.seconds))
    for labels, count in outcomes.items():
        REQUESTS_DECIDED.labels(*labels).inc(count)


def count_delivery_attempt(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def count_http_request(method: str, route: str, status: int, seconds: float | None) -> None:
    _http_requests(method, route, status).inc()
    if seconds is not None:
        _http_duration(route).observe(seconds)


# Every request counts: the labelled child is looked up once per label set, not built
# again each time (`labels()` checks and joins its values under a lock). The label sets
# are bounded (methods, URL rules, statuses), so the caches are too.
@functools.cache
def _http_requests(method: str, route: str, status: int):
    return HTTP_REQUESTS.labels(method, route, status)


@functools.cache
def _http_duration(route: str):
    return HTTP_DURATION.labels(route)


# --- what GET /metrics answers ----------------------------------------------------

def metrics_public() -> bool:
    """BOOKING_METRICS_PUBLIC=1: /metrics without an API key (a scraper on a private
    network that cannot send one)."""
    return (os.environ.get("BOOKING_METRICS_PUBLIC") or "").strip().lower() in ("1", "true", "yes")


def exposition() -> bytes:
    """Every series of every process, and the queue gauges, in Prometheus's text format.
    A registry per scrape, as prometheus_client advises in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_counted_series())
    registry.register(DATABASE_GAUGES)
    return generate_latest(registry)


def _counted_series():
    if os.environ.get(SHARED_DIR_ENV):
        return SharedDirCollector(os.environ[SHARED_DIR_ENV])
    if os.environ.get(MULTIPROC_DIR_ENV):
        return MultiProcessCollector(None)
    return REGISTRY  # this process's own, the process and GC collectors with them


class SharedDirCollector:
    """The files of every process in every subdirectory of `root`, summed as
    MultiProcessCollector sums those of one directory."""

    def __init__(self, root: str):
        self.root = root

    def collect(self):
        files = glob.glob(os.path.join(self.root, "*", "*.db"))
        return MultiProcessCollector.merge(files, accumulate=True)


READ_AT_MOST_EVERY_S = 1.0


class DatabaseGauges:
    """booking_queue_depth, booking_queue_oldest_age_seconds and booking_webhook_backlog,
    read from PostgreSQL when scraped; reused for a second, so that scrapes (several
    Prometheus servers, a person refreshing) cost the database one query a second per
    process at most. If PostgreSQL cannot answer, they are left out of the scrape (the
    counters are still worth having) rather than reported as zero."""

    def __init__(self):
        self._read_at: float | None = None
        self._values: dict[str, float] = {}

    def collect(self):
        values = self._fresh_values()
        if values is None:
            return
        yield GaugeMetricFamily("booking_queue_depth", "Booking requests queued (accepted, not yet "
                                "decided), from PostgreSQL.", value=values["queue_depth"])
        yield GaugeMetricFamily("booking_queue_oldest_age_seconds", "Age of the oldest queued "
                                "request (0 when none is queued), from PostgreSQL.",
                                value=values["oldest_age"])
        yield GaugeMetricFamily("booking_webhook_backlog", "Webhook deliveries pending (not yet "
                                "delivered or given up), from PostgreSQL.", value=values["webhook_backlog"])

    def _fresh_values(self) -> dict[str, float] | None:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= READ_AT_MOST_EVERY_S:
            try:
                self._values = _read_waiting_work()
            except (SQLAlchemyError, psycopg.Error) as error:
                log.warning("queue gauges left out of the scrape: %s", _first_line(error))
                return None
            self._read_at = now
        return self._values


def _read_waiting_work() -> dict[str, float]:
    with autocommit() as conn:
        waiting = waiting_work(conn)
    return {"queue_depth": waiting["queue_depth"], "oldest_age": waiting["oldest_queued_age_seconds"] or 0.0,
            "webhook_backlog": waiting["webhook_backlog"]}


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


DATABASE_GAUGES = DatabaseGauges()


# --- Dramatiq's own ------------------------------------------------------------------

def mark_this_process_dead() -> None:
    """A process that exits takes its live gauges (multiprocess_mode live*) with it; its
    counters stay in the sums. (gunicorn's workers: gunicorn.conf.py's child_exit.)"""
    if os.environ.get(MULTIPROC_DIR_ENV):
        mark_process_dead(os.getpid(), os.environ[MULTIPROC_DIR_ENV])


class WorkerMetrics(Prometheus):
    """Dramatiq's own series (dramatiq_messages_total, dramatiq_message_duration_milliseconds,
    ...), from its Prometheus middleware, written into this process's PROMETHEUS_MULTIPROC_DIR
    beside ours, for the web's /metrics to serve. Unlike the stock middleware:

    - no exposition server forked on :9191 (two dramatiq mains on one host would fight
      for the port, and /metrics already serves every process's files);
    - the directory stays the one the process was started with: the stock middleware
      points PROMETHEUS_MULTIPROC_DIR at its own (dramatiq_prom_db, default
      /tmp/dramatiq-prometheus, made when its module is imported and otherwise unused)
      when the process boots;
    - messages waiting out a delay in a process that dies leave the gauge with it
      (livesum, not a series per pid for ever).

    Hooks that run when enqueueing run in web processes too, which never boot as
    workers: they count nothing there."""

    booted = False

    @property
    def forks(self):
        return []

    def after_process_boot(self, broker):
        with _environment_kept(MULTIPROC_DIR_ENV, MULTIPROC_DIR_ENV.lower()):
            super().after_process_boot(broker)
        self.inprogress_delayed_messages = Gauge(
            "dramatiq_delayed_messages_inprogress", "The number of delayed messages in memory.",
            ["queue_name", "actor_name"], registry=None, multiprocess_mode="livesum")
        self.booted = True

    def after_enqueue(self, broker, message, delay):
        if self.booted:
            super().after_enqueue(broker, message, delay)

    def after_worker_shutdown(self, broker, worker):
        mark_this_process_dead()


@contextlib.contextmanager
def _environment_kept(*names: str) -> Iterator[None]:
    kept = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
