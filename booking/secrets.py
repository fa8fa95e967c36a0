"""Webhook secrets encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256), keyed by
BOOKING_SECRET_KEY, so a database dump alone does not let anyone forge our
signatures. Values written before encryption existed (plain `whsec_...`) still read."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets as random_secrets
import sys
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet

PREFIX = "enc:v1:"


@cache
def _fernet(secret_key: str) -> Fernet:
    # Any string of enough entropy works as BOOKING_SECRET_KEY; derive Fernet's 32 bytes from it.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def application_key() -> str:
    key = os.environ.get("BOOKING_SECRET_KEY")
    if not key:
        raise RuntimeError("BOOKING_SECRET_KEY is not set: it encrypts webhook secrets at rest "
                           "(`booking up` makes one under BOOKING_HOME for the embedded stack)")
    return key


def seal(plaintext: str) -> str:
    return PREFIX + _fernet(application_key()).encrypt(plaintext.encode()).decode()


def unseal(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    return _fernet(application_key()).decrypt(stored[len(PREFIX):].encode()).decode()


def ensure_local_secret_key(home: Path) -> None:
    """For `booking` commands on one machine: without BOOKING_SECRET_KEY, keep one random
    key under BOOKING_HOME (made once, readable by its owner only) and use it."""
    if os.environ.get("BOOKING_SECRET_KEY"):
        return
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(random_secrets.token_urlsafe(32))
        print(f"BOOKING_SECRET_KEY is not set: made one in {path}; set it yourself in production",
              file=sys.stderr, flush=True)
    os.environ["BOOKING_SECRET_KEY"] = path.read_text().strip()
