"""A crowd of long-polls costs the web almost nothing: while WAITERS clients wait on
queued requests (`?wait=30`, a connection each), /healthz and new submits still answer,
and once workers run, every waiter gets its decision, woken by it (not by its wait
running out).

On gunicorn's gthread worker (WEB_WORKER_CLASS=gthread) this fails: each waiter holds
one of the WEB_CONCURRENCY x WEB_THREADS threads, and /healthz queues behind them until
their waits end."""

from datetime import UTC, datetime, timedelta

from benchmarks.waiters import measure_waiters
from tests.conftest import Api, start_workers

WAITERS = 300
PROVIDERS = 20  # a few requests each, so a decision transaction is short (see wake below)
PROBE_S = 3
# Tells an answer from a hang: a probe stuck behind the waiters would take until their
# waits end (~30 s); benchmarks.waiters gives up on it after 10 s and counts an error.
ANSWER_BOUND_MS = 2000
# Every request decided at once, on the cores the workers share with the web: the wake
# (decided_at -> answer) takes more than one request's; a missed wake-up would take ~30 s.
WAKE_BOUND_MS = 5000

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def requests_over(provider_ids: list[str]):
    """index -> (provider, start): providers in turn, each on its next free half hour."""
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)

    def request_for(index: int) -> tuple[str, str]:
        slot = first + timedelta(minutes=30 * (index // len(provider_ids)))
        return provider_ids[index % len(provider_ids)], slot.isoformat()

    return request_for


def test_a_crowd_of_waiters_leaves_health_and_submits_answering(web: str, admin_api: Api,
                                                                client_key: str, stack):
    # Given WAITERS queued requests and no worker to decide them yet,
    providers = [admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)["id"]
                 for _ in range(PROVIDERS)]
    started = []
    try:
        # when as many clients long-poll them at once, /healthz and submits are timed
        # meanwhile, and then workers start and decide,
        figures = measure_waiters(web, [client_key], requests_over(providers),
                                  lambda: started.append(start_workers()),
                                  database_url=stack.postgres.url, waiters=WAITERS, probe_s=PROBE_S)
    finally:
        for workers in started:
            workers.stop()

    # then /healthz and every submit answered while they all waited,
    assert figures["waiters"] == WAITERS, figures
    assert figures["healthz_p99_ms"] < ANSWER_BOUND_MS, figures
    assert figures["submit_p99_ms"] < ANSWER_BOUND_MS, figures
    # and every waiter got its decision, soon after it was made (errors counts waiters
    # that got none, as well as failed or timed-out probes).
    assert figures["errors"] == 0, figures
    assert figures["wake_p99_ms"] < WAKE_BOUND_MS, figures
