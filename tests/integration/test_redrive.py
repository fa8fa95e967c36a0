"""The re-drive re-sends a provider's decision only when its message may be lost:
passes over a queue whose messages are merely waiting add nothing to it, a message
that has been waiting past the bound is sent again, and a provider whose worker died
is re-sent as soon as its lease runs out. No worker consumes in these tests; the
queue is the real Dramatiq queue in the real Redis."""

import time
from datetime import timedelta

from sqlalchemy import text

from booking import notify
from tests.conftest import Api
from workers.lease import Lease, provider_lease_key
from workers.redrive import redrive_providers

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
START = "2030-01-07T09:00:00Z"
STALE_AFTER = timedelta(seconds=1)  # BOOKING_REDRIVE_AFTER in the tests' environment
RESEND_AFTER_S = 30.0  # the default bound


def new_provider(admin_api: Api) -> str:
    return admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)["id"]


def decisions_broker():
    from workers.broker import broker  # imported once `stack` has set REDIS_URL

    return broker


def lose_queued_messages() -> None:
    decisions_broker().flush("decisions")


def queued_messages() -> int:
    return notify.redis_client().llen(f"{decisions_broker().namespace}:decisions")


def worker_starts_on(provider_id: str) -> None:
    """What a worker does with a decision message (the actor, in this process)."""
    from workers.actors import decide_provider

    decide_provider.fn(provider_id)


def accepted_a_minute_ago(db) -> None:
    """Requests older than the re-drive's threshold, without waiting for them to age."""
    with db.begin() as conn:
        conn.execute(text("UPDATE booking_requests SET created_at = created_at - interval '1 minute'"))


def first_nonzero(probe, timeout: float = 10.0) -> int:
    """Poll `probe` until it returns non-zero or `timeout` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return answer


def test_redrive_passes_add_nothing_while_the_providers_messages_wait(db, admin_api, client_api):
    providers = [new_provider(admin_api) for _ in range(3)]
    lose_queued_messages()  # whatever earlier tests left
    for provider_id in providers:
        client_api.submit(provider_id, START)
    accepted_a_minute_ago(db)  # stale, and still queued: no worker is consuming

    resent = [redrive_providers(STALE_AFTER, RESEND_AFTER_S) for _ in range(5)]

    assert resent == [0] * 5
    assert queued_messages() == len(providers)  # one per provider, not one per pass


def test_a_message_waiting_past_the_bound_is_presumed_lost_and_sent_again(db, admin_api, client_api):
    provider_id = new_provider(admin_api)
    before_submit = time.monotonic()
    client_api.submit(provider_id, START)
    accepted_a_minute_ago(db)
    lose_queued_messages()
    bound_s = 5.0  # long enough that the first pass surely comes before it

    protected = redrive_providers(STALE_AFTER, bound_s)
    resent = first_nonzero(lambda: redrive_providers(STALE_AFTER, bound_s))
    resent_after = time.monotonic() - before_submit

    assert protected == 0
    assert resent == 1 and queued_messages() == 1
    assert resent_after >= bound_s


def test_a_provider_whose_worker_died_is_redriven_as_soon_as_its_lease_runs_out(
        db, admin_api, client_api):
    provider_id = new_provider(admin_api)
    client_api.submit(provider_id, START)
    accepted_a_minute_ago(db)
    lose_queued_messages()  # a worker fetched the message...
    doomed_lease = Lease(notify.redis_client(), provider_lease_key(provider_id), ttl_ms=60_000)
    assert doomed_lease.acquire()  # ...holds the provider's lease...
    worker_starts_on(provider_id)  # ...has started on the message, and dies:

    while_leased = redrive_providers(STALE_AFTER, RESEND_AFTER_S)
    notify.redis_client().delete(doomed_lease.key)  # its lease runs out
    resent = first_nonzero(lambda: redrive_providers(STALE_AFTER, RESEND_AFTER_S))

    assert while_leased == 0
    assert resent == 1 and queued_messages() == 1  # long before the 30 s bound
