"""Opaque keyset cursors: the sort key of the last item of a page, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from sqlalchemy import tuple_

from booking.services.errors import InvalidInput

BAD_CURSOR = InvalidInput("The cursor is not one this API issued.", {"cursor": ["invalid cursor"]})


def encode_cursor(*key: object) -> str:
    plain = [value.isoformat() if isinstance(value, datetime)
             else str(value) if isinstance(value, uuid.UUID) else value for value in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple:
    """Decode a cursor whose key has the given types (datetime, uuid.UUID, int, str)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(plain, list) or len(plain) != len(types):
            raise ValueError("wrong shape")
        return tuple(_convert(value, kind) for value, kind in zip(plain, types, strict=True))
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError):
        raise BAD_CURSOR from None


def _convert(value: object, kind: type) -> object:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time in cursor")
        return parsed
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)
                        or not -(2**63) <= value < 2**63):
        raise ValueError("not a 64-bit integer")
    if kind is str and not isinstance(value, str):
        raise ValueError("not a string")
    return value


def page(rows: list, limit: int, key) -> tuple[list, str | None]:
    """Split a query's `limit + 1` rows into a page and the next cursor."""
    if len(rows) <= limit:
        return rows, None
    items = rows[:limit]
    return items, encode_cursor(*key(items[-1]))


def oldest_first(query, entity, limit: int, cursor: str | None, session) -> tuple[list, str | None]:
    """A page of `query` in (created_at, id) order, after `cursor`, and the next cursor."""
    query = query.order_by(entity.created_at, entity.id).limit(limit + 1)
    if cursor:
        query = query.where(tuple_(entity.created_at, entity.id) > decode_cursor(cursor, datetime, uuid.UUID))
    return page(list(session.scalars(query)), limit, lambda row: (row.created_at, row.id))
