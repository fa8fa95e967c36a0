"""Every HTTP request counted and timed for /metrics (booking.metrics), by route: the URL
rule that matched (`/v1/bookings/<uuid:booking_id>`), never the path the client sent,
so that the number of series stays bounded whatever clients send."""

from __future__ import annotations

import time

from flask import Flask, g, request

from booking import metrics

UNMATCHED_ROUTE = "<unmatched>"  # a path no rule matches (404) or a method none allows (405)
# Any token is a method to HTTP; a label per invented one would be a series each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


def init_http_metrics(app: Flask) -> None:
    """Count and time every request."""
    app.before_request(_start_clock)
    app.after_request(_count_response)


def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


def _count_response(response):
    started = g.get("metrics_started")  # unset if an earlier hook answered first
    metrics.count_http_request(
        request.method if request.method in KNOWN_METHODS else OTHER_METHOD,
        request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE,
        response.status_code,
        time.perf_counter() - started if started is not None else None)
    return response
