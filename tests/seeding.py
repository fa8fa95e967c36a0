"""Bookings written straight to the database, for tests that need a calendar without
running a worker. Like every calendar writer, the caller claims the calendar first
(booking.fence.claim_calendar); the seat goes into the booking's session, made here if
it does not exist yet."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text

from models.sessions import session_id_for

UPSERT_SESSION = text("""
INSERT INTO sessions (id, provider_id, service_id, start, period, occupied, capacity)
VALUES (:session_id, :provider_id, :service_id, :start, tstzrange(:start, :end, '[)'),
        tstzrange(:start, :end, '[)'), :capacity)
ON CONFLICT (id) DO NOTHING""")
INSERT_BOOKING = text("""
INSERT INTO bookings (id, provider_id, api_key_id, customer_id, service_id, session_id, period, status,
                      version)
VALUES (:id, :provider_id, :key_id, :customer_id, :service_id, :session_id,
        tstzrange(:start, :end, '[)'), :status, 1)""")


def insert_booking(conn, provider_id, key_id, start: datetime, end: datetime, status: str = "confirmed",
                   customer_id: str = "c", service_id=None, capacity: int = 1) -> uuid.UUID:
    """Returns the new booking's id. Raises what the database raises (a double booking,
    a calendar written without its claim)."""
    values = {"id": uuid.uuid4(), "provider_id": provider_id, "key_id": key_id, "customer_id": customer_id,
              "service_id": service_id, "start": start, "end": end, "status": status, "capacity": capacity,
              "session_id": session_id_for(uuid.UUID(str(provider_id)), service_id, start)}
    conn.execute(UPSERT_SESSION, values)
    conn.execute(INSERT_BOOKING, values)
    return values["id"]
