"""A lease in Redis with an owner token: `SET key token NX PX ttl`, extended and
released only by its holder (compare-and-expire / compare-and-delete in Lua), so a
holder whose lease ran out can never release or extend the next holder's."""

from __future__ import annotations

import secrets

import redis

_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def provider_lease_key(provider_id) -> str:
    return f"booking:lease:provider:{provider_id}"


class Lease:
    def __init__(self, client: redis.Redis, key: str, ttl_ms: int):
        self.client, self.key, self.ttl_ms = client, key, ttl_ms
        self.token = secrets.token_hex(16)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def extend(self) -> bool:
        """True if we still held the lease and it now runs for another ttl."""
        return bool(self._extend(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> bool:
        return bool(self._release(keys=[self.key], args=[self.token]))
