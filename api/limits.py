"""Per-key rate limits, shared by every web process through Redis: fixed windows,
counted by one Lua script (one round trip per request; the `limits` library, the
engine of flask-limiter, took three for the same answer and still parses the
"50/second" notation). Submits and reads have separate budgets.
If Redis is unreachable, or does not answer within the web request's bound
(booking.redis_clients.REQUEST), the limits fail open: refusing service then would
turn a cache outage into an API outage, and acceptance itself never needs Redis."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse

from api.problems import problem
from booking import redis_clients
from booking.services.keys import EPOCH_LUA, KEYS_EPOCH

log = logging.getLogger(__name__)

SUBMIT_ENDPOINTS = {"bookings.Bookings", "bookings.Reschedule", "bookings.Cancel", "bookings.Confirm",
                    "bookings.Decline", "holds.Holds", "holds.ConfirmHold", "holds.ReleaseHold"}


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset_in: int  # seconds until the window resets


# KEYS[1] the window's counter, KEYS[2] the API keys' epoch (see booking.services.keys),
# ARGV[1] the window in ms -> {hits so far, ms left, epoch}
SPEND = EPOCH_LUA + """
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {hits, left, current_epoch(KEYS[2])}
"""


@dataclass(frozen=True)
class Spent:
    kind: str  # "submit" or "read"
    allowed: bool
    budget: Budget
    keys_epoch: int  # read in the same round trip, for the auth cache


class RateLimits:
    def __init__(self, redis_url: str, submit: str, read: str):
        client = redis_clients.make_client(redis_clients.REQUEST, redis_url)
        self.spend_script = client.register_script(SPEND)
        self.submit, self.read = parse(submit), parse(read)

    def spend(self, subject: str, kind: str) -> Spent:
        item: RateLimitItem = self.submit if kind == "submit" else self.read
        window_ms = item.get_expiry() * 1000
        hits, left_ms, epoch = self.spend_script(
            keys=[f"booking:rate:{kind}:{subject}:{window_ms}", KEYS_EPOCH], args=[window_ms])
        budget = Budget(item.amount, max(0, item.amount - hits), max(1, math.ceil(left_ms / 1000)))
        return Spent(kind, hits <= item.amount, budget, epoch)


def init_rate_limits(app: Flask, redis_url: str) -> None:
    app.extensions["rate_limits"] = RateLimits(
        redis_url, app.config["RATE_LIMIT_SUBMIT"], app.config["RATE_LIMIT_READ"])
    app.after_request(add_rate_limit_headers)


def spend_budget(key_digest: str) -> Spent | None:
    """Spend one unit of the caller's budget (by the digest of its key: one per key).
    None if Redis is unreachable."""
    kind = "submit" if request.method == "POST" and request.endpoint in SUBMIT_ENDPOINTS else "read"
    try:
        return current_app.extensions["rate_limits"].spend(key_digest, kind)
    except Exception as error:  # noqa: BLE001 - fail open, see module docstring
        log.warning("rate limits unavailable: %s", error)
        return None


def over_budget(spent: Spent | None):
    """Once the caller is authenticated: a 429 if its budget is spent, else None."""
    if spent is None:
        return None
    g.rate_budget = spent.budget
    if spent.allowed:
        return None
    return problem(429, "Too Many Requests",
                   f"This key's {spent.kind} budget is spent; retry in {spent.budget.reset_in} s.",
                   headers={"Retry-After": str(spent.budget.reset_in)})


def add_rate_limit_headers(response):
    budget = g.get("rate_budget")
    if budget is not None:
        response.headers["RateLimit-Limit"] = str(budget.limit)
        response.headers["RateLimit-Remaining"] = str(budget.remaining)
        response.headers["RateLimit-Reset"] = str(budget.reset_in)
    return response
