"""API keys: created with a secret shown once, stored as a hash, revocable."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import redis
from sqlalchemy import select

from booking import notify
from booking.config import get_settings
from booking.db import new_session
from booking.secrets import seal
from booking.services.errors import NotFound
from models import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "bk_"  # recognisable to secret scanners


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is as strong as a slow one.
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def generate_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class NewKey(NamedTuple):
    """A created key with its two secrets, which exist in plaintext only here."""

    api_key: ApiKey
    key: str
    webhook_secret: str


def create_key(name: str, role: str) -> NewKey:
    """Create a key. The key is stored as a hash; the webhook secret sealed."""
    plaintext, webhook_secret = generate_key(), generate_webhook_secret()
    api_key = ApiKey(id=uuid.uuid4(), name=name, role=role, key_hash=hash_key(plaintext),
                     webhook_secret=seal(webhook_secret), created_at=datetime.now(UTC))
    with new_session() as session, session.begin():
        session.add(api_key)
    return NewKey(api_key, plaintext, webhook_secret)


def ensure_key(key: str, name: str = "bootstrap admin", role: str = "admin") -> None:
    """Make sure `key` exists as an active key of `role` (for BOOKING_BOOTSTRAP_ADMIN_KEY)."""
    with new_session() as session, session.begin():
        existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
        if existing is None:
            session.add(ApiKey(id=uuid.uuid4(), name=name, role=role, key_hash=hash_key(key),
                               webhook_secret=seal(generate_webhook_secret())))
        else:
            existing.role, existing.revoked_at = role, None
    bump_keys_epoch()


# A Redis counter bumped after any key is revoked or changed. A web process trusts its
# cached copy of a key only while the epoch it read before loading it is still current,
# and it reads the epoch in the round trip that spends the rate limit: a revocation
# takes effect at once on every process, and authenticating costs no query.
KEYS_EPOCH = "booking:keys:epoch"
# Lua: the epoch (KEYS_EPOCH passed as `epoch_key`), first set from Redis's clock in
# microseconds if missing. A Redis that comes back empty thus never repeats an epoch
# that keys were cached under before it, so a revocation announced to the old one is
# never undone by the new one.
EPOCH_LUA = """
local function current_epoch(epoch_key)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    local now = redis.call('TIME')
    redis.call('SET', epoch_key, now[1] .. string.format('%06d', now[2]), 'NX')
    epoch = redis.call('GET', epoch_key)
  end
  return tonumber(epoch)
end
"""
_BUMP_EPOCH = EPOCH_LUA + """
current_epoch(KEYS[1])
return redis.call('INCR', KEYS[1])
"""


class KeyCache:
    """Active keys by digest with the epoch read before each was loaded. Entries also
    expire after BOOKING_AUTH_CACHE_SECONDS (a key changed while Redis was unreachable)."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[ApiKey, int, float]] = {}

    def get(self, digest: str, epoch: int) -> ApiKey | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        api_key, cached_epoch, expires = entry
        if cached_epoch == epoch and time.monotonic() < expires:
            return api_key
        self._entries.pop(digest, None)
        return None

    def put(self, digest: str, api_key: ApiKey, epoch: int) -> None:
        if self.ttl_s > 0:
            self._entries[digest] = (api_key, epoch, time.monotonic() + self.ttl_s)


_caches: dict[int, KeyCache] = {}


def _key_cache() -> KeyCache:
    """The process's cache of authenticated keys (made after any fork, on first use)."""
    cache = _caches.get(os.getpid())
    if cache is None:
        cache = _caches[os.getpid()] = KeyCache(get_settings().auth_cache_seconds)
    return cache


def authenticate(digest: str, epoch: int | None) -> ApiKey | None:
    """The active key with this digest (see hash_key), or None. `epoch` is the keys'
    epoch read before this call, None if Redis is unreachable (then no cache is used).
    Lookup by digest is constant-time in the secret: the database never sees the key."""
    if epoch is not None and (cached := _key_cache().get(digest, epoch)) is not None:
        return cached
    with new_session() as session:
        api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if api_key is None or api_key.revoked_at is not None:
        return None
    if epoch is not None:
        _key_cache().put(digest, api_key, epoch)
    return api_key


def bump_keys_epoch() -> None:
    """After a key changed: every web process drops its cached keys on its next request.
    (If Redis is unreachable, caches are bypassed meanwhile and expire by their TTL.)"""
    if not get_settings().redis_url:
        return  # `booking migrate` on its own; caches expire by their TTL
    try:
        client = notify.redis_client()
        client.register_script(_BUMP_EPOCH)(keys=[KEYS_EPOCH])
    except redis.RedisError as error:
        log.error("could not announce a key change; caches expire within their TTL: %s", error)


def list_keys() -> list[ApiKey]:
    with new_session() as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(key_id: uuid.UUID) -> None:
    with new_session() as session, session.begin():
        api_key = session.get(ApiKey, key_id)
        if api_key is None:
            raise NotFound("No such API key.")
        if api_key.revoked_at is None:
            api_key.revoked_at = datetime.now(UTC)
    bump_keys_epoch()
