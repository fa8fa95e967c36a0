"""The `spike` scenario: a popular calendar opens. SPIKE_REQUESTS creates for one
provider's SPIKE_SLOTS free slots (each slot wanted ten times, in shuffled order)
leave from SPIKE_CONNECTIONS keep-alive connections as fast as the server answers.

The pipeline is only submitted to (POST -> 202); its decisions are read from
PostgreSQL once the provider's queue is empty, and the history is checked there:
first come, first served exactly, i.e. for each slot the request with the lowest
`seq` got it and every other request for it was rejected `slot_unavailable`.
sync-locked gets the same burst and decides as it answers."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from benchmarks.load import Run

SPIKE_CONNECTIONS = 200
SPIKE_TIMEOUT_S = 30  # a client gives up on an answer after this long: counted as a timeout
DRAIN_LIMIT_S = 90  # after the last accept, how long the queue may take to empty

# Every request whose outcome is not the sequential model's, and every confirmed booking
# that no winning request owns. Requests still queued count too: they are not decided.
FCFS_VIOLATIONS = text("""
WITH ranked AS (
    SELECT r.start, r.status, r.reason_code, r.booking_id,
           row_number() OVER (PARTITION BY r.start ORDER BY r.seq) AS place
      FROM booking_requests r
     WHERE r.provider_id = :provider AND r.kind = 'create')
SELECT (SELECT count(*) FROM ranked r LEFT JOIN bookings b ON b.id = r.booking_id
         WHERE CASE WHEN r.place = 1
                    THEN b.id IS NULL OR r.status <> 'succeeded' OR b.status <> 'confirmed'
                         OR lower(b.period) <> r.start
                    ELSE r.status <> 'rejected' OR r.reason_code IS DISTINCT FROM 'slot_unavailable'
               END)
     + (SELECT count(*) FROM bookings b
         WHERE b.provider_id = :provider AND b.status = 'confirmed' AND b.customer_id <> 'seed'
           AND NOT EXISTS (SELECT 1 FROM ranked r WHERE r.booking_id = b.id AND r.place = 1))
""")

# decided_at is the deciding transaction's now(): one value per batch.
DRAIN = text("""
SELECT count(*) AS requests,
       count(*) FILTER (WHERE status <> 'queued') AS decided,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(DISTINCT decided_at) AS batches,
       extract(epoch FROM max(decided_at) - min(created_at)) AS drain_s,
       extract(epoch FROM max(decided_at) - min(decided_at)) AS deciding_s,
       extract(epoch FROM max(decided_at) - max(created_at)) AS tail_s
  FROM booking_requests WHERE provider_id = :provider
""")


def wait_for_drain(engine: Engine, provider_id: str, limit_s: float = DRAIN_LIMIT_S) -> bool:
    """Until none of the provider's requests is queued (True) or `limit_s` passed (False)."""
    deadline = time.monotonic() + limit_s
    query = text("SELECT count(*) FROM booking_requests WHERE provider_id = :provider AND status = 'queued'")
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.scalar(query, {"provider": provider_id}) == 0:
                return True
        time.sleep(0.1)
    return False


def pipeline_figures(engine: Engine, provider_id: str, burst: Run, double: int) -> tuple[dict, dict]:
    """scenarios.spike.pipeline, and what else the log line shows. drain_s runs from the
    first accept to the last decision, both on PostgreSQL's clock."""
    with engine.connect() as conn:
        drain = conn.execute(DRAIN, {"provider": provider_id}).mappings().one()
        violations = conn.scalar(FCFS_VIOLATIONS, {"provider": provider_id})
    accepted = burst.outcomes.get("accepted", 0)
    submit_errors = sum(burst.outcomes.values()) - accepted
    lost = max(0, accepted - drain["requests"])  # a 202 without its row: never expected
    drain_s = float(drain["drain_s"] or 0)
    figures = {
        "accept_p50_ms": round(burst.percentile(50), 1), "accept_p99_ms": round(burst.percentile(99), 1),
        "drain_s": round(drain_s, 2),
        "decided_per_s": round(drain["decided"] / drain_s, 1) if drain_s else None,
        "mean_batch": round(drain["decided"] / drain["batches"], 1) if drain["batches"] else None,
        "fcfs_violations": violations, "errors": submit_errors + drain["failed"] + lost,
        "double_bookings": double}
    extra = {"accepted_per_s": round(burst.accepted_per_s(), 1), "batches": drain["batches"],
             "after_last_accept_s": round(float(drain["tail_s"] or 0), 2),
             "first_to_last_decision_per_s": round(drain["decided"] / float(drain["deciding_s"]), 1)
             if drain["deciding_s"] else None,
             "undecided": drain["requests"] - drain["decided"], "failed": drain["failed"], "lost": lost,
             "submit_outcomes": dict(burst.outcomes)}
    return figures, extra


def sync_figures(burst: Run, double: int) -> tuple[dict, dict]:
    """scenarios.spike["sync-locked"]: an answer is its decision (201 booked, 409 taken);
    anything else, timeouts included, is an error."""
    decided = burst.outcomes.get("201", 0) + burst.outcomes.get("409", 0)
    figures = {"p50_ms": round(burst.percentile(50), 1), "p99_ms": round(burst.percentile(99), 1),
               "decided_per_s": round(decided / burst.elapsed, 1),
               "errors": sum(burst.outcomes.values()) - decided, "double_bookings": double}
    return figures, {"timeouts": burst.outcomes.get("timeout", 0), "burst_s": round(burst.elapsed, 2),
                     "outcomes": dict(burst.outcomes)}
