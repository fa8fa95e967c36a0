"""Standard Webhooks (standardwebhooks.com): signing, the retry schedule, and which
URLs we agree to call.

Signature: `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
where key is the base64 part of the `whsec_...` secret. During a secret's rotation
grace period both signatures are sent, space-separated, so receivers holding either
secret verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import random
import socket
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

SPEC_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
EVENT_TYPES = ("booking_request.succeeded", "booking_request.rejected", "booking_request.failed",
               "booking.confirmed", "booking.rescheduled", "booking.cancelled")
METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets: Iterable[str], message_id: str, sent_at: datetime, body: str) -> dict:
    timestamp = int(sent_at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets),
        "content-type": "application/json",
    }


def retry_schedule() -> tuple[float, ...]:
    """Delays before each retry, from BOOKING_WEBHOOK_RETRY_SCHEDULE (seconds, comma-separated)."""
    raw = os.environ.get("BOOKING_WEBHOOK_RETRY_SCHEDULE", "").strip()
    if not raw:
        return SPEC_SCHEDULE
    return tuple(float(part) for part in raw.split(",") if part.strip())


def delivery_timeout() -> float:
    return float(os.environ.get("BOOKING_WEBHOOK_TIMEOUT") or 15)


def next_delay(attempts_made: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts, or None when the
    schedule is spent. Jitter (±10 %) keeps retries of many deliveries from bunching;
    a receiver's Retry-After is honoured when it asks for longer."""
    schedule = retry_schedule()
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 86400))
    return delay


def private_targets_allowed() -> bool:
    return os.environ.get("BOOKING_WEBHOOK_ALLOW_PRIVATE", "") in ("1", "true", "yes")


def unsafe_url_reason(url: str) -> str | None:
    """Why we refuse to call `url` (None if we may): not http(s), or a host that resolves
    to a loopback, private, link-local, metadata or otherwise non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    if private_targets_allowed():
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except (socket.gaierror, UnicodeError, ValueError):
        return "the host does not resolve"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip in METADATA_ADDRESSES or not ip.is_global or ip.is_multicast:
            return "the host resolves to a private, loopback, link-local or metadata address"
    return None
