"""Benchmark fixtures, not product endpoints: the synchronous booking endpoint of the
original brief, in two flavours, over the same PostgreSQL.

- sync-naive: check for an overlap, then insert, in one READ COMMITTED transaction.
  Two racers can both see no overlap and both insert: it double-books.
- sync-locked: the same, after `SELECT ... FOR UPDATE` on the provider row: correct,
  and serialized per provider.

They write to `bench_sync_bookings`, which has no exclusion constraint, so that the
naive flavour's double bookings are stored and can be counted."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from flask import Flask, jsonify, request
from psycopg_pool import ConnectionPool

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_sync_bookings (
    id bigserial PRIMARY KEY,
    provider_id uuid NOT NULL,
    period tstzrange NOT NULL,
    customer_id text NOT NULL
);
CREATE INDEX IF NOT EXISTS bench_sync_bookings_provider ON bench_sync_bookings
    USING gist (provider_id, period);
"""


def create_app() -> Flask:
    app = Flask(__name__)
    locked = os.environ["BENCH_SYNC_MODE"] == "locked"
    pool = ConnectionPool(os.environ["BENCH_SYNC_DSN"], min_size=4, max_size=20, open=True)

    @app.post("/book")
    def book():
        body = request.get_json()
        start = datetime.fromisoformat(body["start"])
        end = start + timedelta(minutes=body.get("slot_minutes", 30))
        with pool.connection() as conn, conn.transaction():
            if locked:
                conn.execute("SELECT 1 FROM providers WHERE id = %s FOR UPDATE", (body["provider_id"],))
            clash = conn.execute(
                "SELECT 1 FROM bench_sync_bookings WHERE provider_id = %s "
                "AND period && tstzrange(%s, %s, '[)') LIMIT 1",
                (body["provider_id"], start, end)).fetchone()
            if clash:
                return jsonify(status="conflict"), 409
            conn.execute(
                "INSERT INTO bench_sync_bookings (provider_id, period, customer_id) "
                "VALUES (%s, tstzrange(%s, %s, '[)'), %s)",
                (body["provider_id"], start, end, body["customer_id"]))
        return jsonify(status="confirmed"), 201

    return app
