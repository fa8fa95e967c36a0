"""Standard Webhooks (standardwebhooks.com): signing, the retry schedule, which URLs
we agree to call, and calling them (to the address we checked, by one deadline).

Signature: `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")),
where key is the base64 part of the `whsec_...` secret. During a secret's rotation
grace period both signatures are sent, space-separated, so receivers holding either
secret verify."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from booking.config import get_settings

SPEC_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
EVENT_TYPES = ("booking_request.succeeded", "booking_request.rejected", "booking_request.failed",
               "booking.pending", "booking.confirmed", "booking.declined", "booking.rescheduled",
               "booking.cancelled", "hold.expired")
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
    return get_settings().webhook_retry_schedule or SPEC_SCHEDULE


def delivery_timeout() -> float:
    """Seconds one attempt may take in all: lookup, connect, TLS, sending, the answer."""
    return get_settings().webhook_timeout_s


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
    return get_settings().webhook_allow_private


PRIVATE_REASON = "the host resolves to a private, loopback, link-local or metadata address"


class RefusedTarget(Exception):
    """We will not call this URL; the message says why."""


def url_shape_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    return None


def unsafe_url_reason(url: str) -> str | None:
    """Why we refuse to call `url` (None if we may): not http(s), or a host that resolves
    to a loopback, private, link-local, metadata or otherwise non-public address."""
    problem = url_shape_problem(url)
    if problem or private_targets_allowed():
        return problem
    try:
        parts = urlsplit(url)
        checked_addresses(parts.hostname, parts.port or 443, allow_private=False)
    except RefusedTarget as refusal:
        return str(refusal)
    except ValueError:  # urlsplit's port: out of range
        return "the port is out of range"
    return None


def loggable_url(url: str) -> str:
    """The URL as our logs may show it: scheme and host only. Query strings and paths
    can carry a receiver's tokens, and logs never carry those."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return ip not in METADATA_ADDRESSES and ip.is_global and not ip.is_multicast


def checked_addresses(host: str, port: int, allow_private: bool,
                      timeout: float | None = None) -> list[str]:
    """Every address `host` resolves to, looked up once, in the resolver's order.
    RefusedTarget if it does not resolve or, unless `allow_private`, if any address is
    not public: a name answering one public and one private address is refused whole.
    TimeoutError if the lookup outlasts `timeout` (None: the resolver's own limits)."""
    try:
        answers = _lookup(host, port, timeout)
    except (socket.gaierror, UnicodeError, ValueError) as error:
        raise RefusedTarget("the host does not resolve") from error
    addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
    if not allow_private and not all(_is_public(address) for address in addresses):
        raise RefusedTarget(PRIVATE_REASON)
    return addresses


def _lookup(host: str, port: int, timeout: float | None) -> list:
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # getaddrinfo takes no timeout. A lookup that hangs is left to end on its own
    # daemon thread (a pool's threads would be shared by every attempt, and joined at exit).
    answer: list = []

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as error:  # noqa: BLE001 - handed to the waiting caller
            answer.append(error)

    thread = threading.Thread(target=look_up, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not answer:
        raise TimeoutError("resolving the host took longer than the attempt's deadline")
    if isinstance(answer[0], Exception):
        raise answer[0]
    return answer[0]


# --- sending: one attempt, to the address that was checked, by one deadline ---------

class Deadline:
    """One end for a whole attempt. httpx's timeouts are per step (connect, each read,
    each write), so a receiver trickling a byte now and then never trips them; every
    blocking step here gets only what is left of the attempt."""

    def __init__(self, seconds: float):
        self.ends_at = time.monotonic() + seconds

    def left(self, timeout: float | None, expired: type[Exception]) -> float:
        """The step's timeout cut to what is left; `expired` raised when nothing is."""
        remaining = self.ends_at - time.monotonic()
        if remaining <= 0:
            raise expired("the attempt's deadline passed")
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline):
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # The timeout holds per send() inside; a payload fits a socket buffer, so one send.
        self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        secured = self._stream.start_tls(ssl_context, server_hostname,
                                         self._deadline.left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(secured, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CheckedBackend(httpcore.SyncBackend):
    """Looks the host up once, checks every address, and connects to one of those
    addresses: a second lookup at connect time (httpx's own) could answer otherwise
    (DNS rebinding). The URL's host still names the Host header, the TLS server name
    and the certificate check, which httpcore takes from the URL, not from here."""

    def __init__(self, deadline: Deadline, allow_private: bool):
        self._deadline, self._allow_private = deadline, allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options=None) -> httpcore.NetworkStream:
        try:
            addresses = checked_addresses(host, port, self._allow_private,
                                          self._deadline.left(timeout, httpcore.ConnectTimeout))
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(str(error)) from error
        failure: Exception = httpcore.ConnectError("the host has no address")
        for address in addresses:
            try:
                # A numeric address: the resolver parses it, no lookup happens.
                stream = super().connect_tcp(address, port,
                                             self._deadline.left(timeout, httpcore.ConnectTimeout),
                                             local_address, socket_options)
                return _DeadlineStream(stream, self._deadline)
            except httpcore.ConnectError as error:
                failure = error
        raise failure


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool with our backend. HTTPTransport takes
    no network backend, so the pool it builds is replaced by one that has it."""

    def __init__(self, backend: httpcore.NetworkBackend, ssl_context: ssl.SSLContext):
        super().__init__(verify=ssl_context, trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


@cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle per attempt costs milliseconds each.
    return httpx.create_ssl_context()  # SSL_CERT_FILE / SSL_CERT_DIR honoured, as before


def post(url: str, content: str, headers: dict, total_seconds: float, *,
         allow_private: bool | None = None, ssl_context: ssl.SSLContext | None = None) -> httpx.Response:
    """POST once and return the answer's status and headers (its body is not read).
    The host is looked up once and, unless `allow_private` (default: the
    BOOKING_WEBHOOK_ALLOW_PRIVATE setting), refused if any address is not public; the
    connection goes to an address that was checked, with the URL's host in the Host
    header, the TLS server name and the certificate check. Redirects are not followed,
    proxies from the environment are not used, and the whole attempt ends within
    `total_seconds`. Raises RefusedTarget or httpx.HTTPError."""
    problem = url_shape_problem(url)
    if problem:
        raise RefusedTarget(problem)
    allowed = private_targets_allowed() if allow_private is None else allow_private
    transport = _CheckedTransport(_CheckedBackend(Deadline(total_seconds), allowed),
                                  ssl_context or _default_ssl_context())
    with (httpx.Client(transport=transport, timeout=total_seconds, follow_redirects=False,
                       trust_env=False) as client,
          client.stream("POST", url, content=content, headers=headers) as response):
        return response
