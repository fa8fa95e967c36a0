"""`booking status`: the operators' summary (booking.services.ops) in a terminal, or as
the JSON of `GET /v1/ops/summary` for scripts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime

from booking.config import get_settings


@contextlib.contextmanager
def summary_urls() -> Iterator[None]:
    """DATABASE_URL and REDIS_URL from the environment, else those of the embedded stack
    that `booking up` runs. Its Redis is only ever read, never started: the heartbeats
    are in the one the workers use, and without one no worker is running anyway."""
    from booking.cli import service_urls
    from booking.stack import EmbeddedStack, port_is_open

    settings = get_settings()
    redis_url = settings.redis_url
    if not redis_url:
        embedded = EmbeddedStack(settings.home).redis
        redis_url = embedded.url if port_is_open(embedded.port) else None
    with service_urls(with_redis=False):
        if redis_url:
            os.environ["REDIS_URL"] = redis_url
            get_settings.cache_clear()
        yield


def describe(summary: dict) -> str:
    """The summary (as OpsSummaryOut renders it) as lines for people."""
    latency, failed = summary["decision_latency"], summary["failed_deliveries"]
    lines = [
        f"Booking processor at {_when(summary['generated_at'])}",
        f"  queue       {summary['queue_depth']} queued"
        + (f", oldest waiting {seconds(summary['oldest_queued_age_seconds'])}"
           if summary["oldest_queued_age_seconds"] is not None else ""),
        "  decisions   last 15 min: " + ", ".join(
            f"{count} {status}" for status, count in summary["decisions_total"].items()),
        "              per minute (oldest first): " + " ".join(
            str(m["succeeded"] + m["rejected"] + m["failed"]) for m in summary["decisions_per_minute"]),
        f"  latency     last 5 min:  {_percentiles(latency['last_5m'])}",
        f"              last 15 min: {_percentiles(latency['last_15m'])}",
        f"  workers     {_workers(summary['live_workers'])}",
        f"  webhooks    {summary['webhook_backlog']} pending, "
        f"{len(failed)} failed recently" + (":" if failed else ""),
    ]
    for delivery in failed:
        lines += _failed_delivery(delivery)
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z")


def _percentiles(window: dict) -> str:
    if not window["count"]:
        return "no decisions"
    return (f"p50 {seconds(window['p50'])}, p95 {seconds(window['p95'])}, p99 {seconds(window['p99'])}"
            f" ({window['count']} decided)")


def _workers(by_queue: dict | None) -> str:
    if by_queue is None:
        return "unknown (Redis unreachable)"
    return ", ".join(f"{queue} {count}" for queue, count in by_queue.items()) + " (live processes by queue)"


def _failed_delivery(delivery: dict) -> list[str]:
    answer = (f"HTTP {delivery['last_status_code']}" if delivery["last_status_code"] is not None
              else delivery["last_error"] or "-")
    lines = [f"    {_when(delivery['created_at'])}  {delivery['type']}  to {delivery['url_host']}"
             f"  {delivery['attempts']} attempt(s), last: {answer}"]
    if delivery["request_id"]:
        lines.append(f"      replay: POST /v1/booking-requests/{delivery['request_id']}"
                     f"/deliveries/{delivery['id']}/retry")
    return lines
