"""API keys: created with a secret shown once, stored as a hash, revocable."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import select

from booking.db import new_session
from booking.secrets import seal
from booking.services.errors import NotFound
from models import ApiKey

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


def authenticate(key: str) -> ApiKey | None:
    """The active key whose hash matches, or None. Lookup by hash is by construction
    constant-time in the secret: the database only ever sees its digest."""
    with new_session() as session:
        api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if api_key is None or api_key.revoked_at is not None:
        return None
    return api_key


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
