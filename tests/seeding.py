"""Bookings written straight to the database, for tests that need a calendar without
running a worker. Like every calendar writer, the caller claims the calendar first
(booking.fence.claim_calendar); the database's seat trigger puts the booking in its
session (made with the service's shape if nobody sits in it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text

INSERT_BOOKING = text("""
INSERT INTO bookings (id, provider_id, api_key_id, customer_id, service_id, period, status, version)
VALUES (:id, :provider_id, :key_id, :customer_id, :service_id, tstzrange(:start, :end, '[)'), :status, 1)""")


def insert_booking(conn, provider_id, key_id, start: datetime, end: datetime, status: str = "confirmed",
                   customer_id: str = "c", service_id=None) -> uuid.UUID:
    """Returns the new booking's id. Raises what the database raises (a double booking,
    an overfilled session, a calendar written without its claim)."""
    booking_id = uuid.uuid4()
    conn.execute(INSERT_BOOKING, {"id": booking_id, "provider_id": provider_id, "key_id": key_id,
                                  "customer_id": customer_id, "service_id": service_id, "start": start,
                                  "end": end, "status": status})
    return booking_id
