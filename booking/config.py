"""Settings from the environment (twelve-factor). Read once per process, on first use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    port: int
    bind_host: str
    home: Path
    bootstrap_admin_key: str | None
    decide_batch_size: int
    lease_ttl_ms: int
    redrive_interval_s: float
    redrive_after_s: float
    redrive_resend_after_s: float
    decide_max_attempts: int
    decide_attempt_spacing_s: float
    db_pool_size: int
    max_queued_per_client: int
    webhook_retry_schedule: tuple[float, ...] | None  # None: the Standard Webhooks schedule
    webhook_timeout_s: float
    webhook_allow_private: bool
    webhook_secret_grace_s: float
    auth_cache_seconds: float
    rate_limit_submit: str  # `limits` notation: "50/second", "10 per minute"
    rate_limit_read: str
    cors_origins: frozenset[str]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes")


def _env_seconds_list(name: str) -> tuple[float, ...] | None:
    raw = (os.environ.get(name) or "").strip()
    return tuple(float(part) for part in raw.split(",") if part.strip()) if raw else None


def hold_max_seconds() -> int:
    """The longest hold a client may ask for. Read when the API's schemas are built (at
    import, so not through the cached settings, which `booking up` fills in later)."""
    return _env_int("BOOKING_HOLD_MAX_SECONDS", 3600)


@cache
def get_settings() -> Settings:
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        redis_url=os.environ.get("REDIS_URL") or None,
        port=_env_int("PORT", 8000),
        bind_host=os.environ.get("BIND_HOST") or "0.0.0.0",
        home=Path(os.environ.get("BOOKING_HOME") or "./.booking").resolve(),
        bootstrap_admin_key=os.environ.get("BOOKING_BOOTSTRAP_ADMIN_KEY") or None,
        decide_batch_size=_env_int("BOOKING_DECIDE_BATCH_SIZE", 200),
        lease_ttl_ms=_env_int("BOOKING_LEASE_TTL_MS", 10_000),
        redrive_interval_s=_env_float("BOOKING_REDRIVE_INTERVAL", 1.0),
        redrive_after_s=_env_float("BOOKING_REDRIVE_AFTER", 2.0),
        redrive_resend_after_s=_env_float("BOOKING_REDRIVE_RESEND_AFTER", 30.0),
        decide_max_attempts=_env_int("BOOKING_DECIDE_MAX_ATTEMPTS", 5),
        decide_attempt_spacing_s=_env_float("BOOKING_DECIDE_ATTEMPT_SPACING", 1.0),
        db_pool_size=_env_int("BOOKING_DB_POOL_SIZE", 10),
        max_queued_per_client=_env_int("BOOKING_MAX_QUEUED_PER_CLIENT", 1000),
        webhook_retry_schedule=_env_seconds_list("BOOKING_WEBHOOK_RETRY_SCHEDULE"),
        webhook_timeout_s=_env_float("BOOKING_WEBHOOK_TIMEOUT", 15.0),
        webhook_allow_private=_env_flag("BOOKING_WEBHOOK_ALLOW_PRIVATE"),
        webhook_secret_grace_s=_env_float("BOOKING_WEBHOOK_SECRET_GRACE", 86400.0),
        auth_cache_seconds=_env_float("BOOKING_AUTH_CACHE_SECONDS", 60.0),
        rate_limit_submit=os.environ.get("BOOKING_RATE_LIMIT_SUBMIT") or "50/second",
        rate_limit_read=os.environ.get("BOOKING_RATE_LIMIT_READ") or "200/second",
        cors_origins=frozenset(o.strip() for o in (os.environ.get("BOOKING_CORS_ORIGINS") or "").split(",")
                               if o.strip()),
    )


def sqlalchemy_url(url: str) -> str:
    """Map the usual postgres:// and postgresql:// forms to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def require_database_url() -> str:
    url = get_settings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set (run through `booking up` or set it)")
    return url


def require_redis_url() -> str:
    url = get_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set (run through `booking up` or set it)")
    return url
