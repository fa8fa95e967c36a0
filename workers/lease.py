"""A lease in Redis with an owner token: `SET key token NX PX ttl`, extended and
released only by its holder (compare-and-expire / compare-and-delete in Lua), so a
holder whose lease ran out can never release or extend the next holder's.

A caller that finds the lease held may leave a knock instead; the holder learns of
it atomically as it lets go, so work announced during its turn is never dropped and
a holder that was not knocked need not look for any (no query per message)."""

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


# KEYS[1] lease, KEYS[2] knock; ARGV[1] token, ARGV[2] ttl -> 1 acquired, 0 knocked.
# The knock outlives many extensions of a long drain; one left by a holder that died
# is cleared by the next one to acquire (it drains everything anyway).
_ACQUIRE_OR_KNOCK = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('del', KEYS[2])
  return 1
end
redis.call('set', KEYS[2], '1', 'PX', ARGV[2] * 100)
return 0
"""

# -> 1 if someone knocked while we held the lease (and we did hold it), else 0
_RELEASE_REPORTING_KNOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  return redis.call('del', KEYS[2])
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
        self.knock_key = f"{key}:knock"
        self._acquire_or_knock = client.register_script(_ACQUIRE_OR_KNOCK)
        self._release_reporting_knock = client.register_script(_RELEASE_REPORTING_KNOCK)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def extend(self) -> bool:
        """True if we still held the lease and it now runs for another ttl."""
        return bool(self._extend(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> bool:
        return bool(self._release(keys=[self.key], args=[self.token]))

    def acquire_or_knock(self) -> bool:
        """Take the lease, or, if someone holds it, knock so that they look again."""
        return bool(self._acquire_or_knock(
            keys=[self.key, self.knock_key], args=[self.token, self.ttl_ms]))

    def release_reporting_knock(self) -> bool:
        """Let go; True if someone knocked meanwhile (their work is ours to look for)."""
        return bool(self._release_reporting_knock(
            keys=[self.key, self.knock_key], args=[self.token]))
