"""Per-key rate limits, shared by every web process through Redis (the `limits`
library, the engine of flask-limiter). Submits and reads have separate budgets.
If Redis is unreachable the limits fail open: refusing service then would turn a
cache outage into an API outage, and acceptance itself never needs Redis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from api.problems import problem

log = logging.getLogger(__name__)

SUBMIT_ENDPOINTS = {"bookings.Bookings", "bookings.Reschedule", "bookings.Cancel"}


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset_in: int  # seconds until the window resets


class RateLimits:
    def __init__(self, redis_url: str, submit: str, read: str):
        self.limiter = FixedWindowRateLimiter(storage_from_string(redis_url))
        self.submit, self.read = parse(submit), parse(read)

    def spend(self, key_id: str, kind: str) -> tuple[bool, Budget]:
        item: RateLimitItem = self.submit if kind == "submit" else self.read
        allowed = self.limiter.hit(item, kind, key_id)
        stats = self.limiter.get_window_stats(item, kind, key_id)
        reset_in = max(1, math.ceil(stats.reset_time - time.time()))
        return allowed, Budget(item.amount, stats.remaining, reset_in)


def init_rate_limits(app: Flask, redis_url: str) -> None:
    app.extensions["rate_limits"] = RateLimits(
        redis_url, app.config["RATE_LIMIT_SUBMIT"], app.config["RATE_LIMIT_READ"])
    app.after_request(add_rate_limit_headers)


def enforce_rate_limit():
    """After authentication: spend one unit of the key's budget, or answer 429."""
    kind = "submit" if request.method == "POST" and request.endpoint in SUBMIT_ENDPOINTS else "read"
    try:
        allowed, budget = current_app.extensions["rate_limits"].spend(str(g.api_key.id), kind)
    except Exception as error:  # noqa: BLE001 - fail open, see module docstring
        log.warning("rate limits unavailable: %s", error)
        return None
    g.rate_budget = budget
    if allowed:
        return None
    return problem(429, "Too Many Requests",
                   f"This key's {kind} budget is spent; retry in {budget.reset_in} s.",
                   headers={"Retry-After": str(budget.reset_in)})


def add_rate_limit_headers(response):
    budget = g.get("rate_budget")
    if budget is not None:
        response.headers["RateLimit-Limit"] = str(budget.limit)
        response.headers["RateLimit-Remaining"] = str(budget.remaining)
        response.headers["RateLimit-Reset"] = str(budget.reset_in)
    return response
