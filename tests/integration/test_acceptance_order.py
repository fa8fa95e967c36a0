"""First come, first served, through the real service: gunicorn, two dramatiq worker
processes, PostgreSQL and Redis. Acceptance order (`seq`) is the order that decides,
even when many requests for one provider are accepted at the same instant."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.conftest import Api
from tests.history import check_history
from tests.integration.test_decision_path import injected_faults  # noqa: F401 - a fixture

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SLOT = timedelta(minutes=30)
THREADS = 50


def slot_starts(count: int, days_ahead: int = 3) -> list[str]:
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).date()
    first = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    return [(first + SLOT * i).isoformat() for i in range(count)]


def all_at_once(calls: list) -> list:
    """Run the calls from THREADS threads, released together by a barrier."""
    barrier = threading.Barrier(min(THREADS, len(calls)))

    def released(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(released, calls))


def seq_of(db, request_ids) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(text("SELECT id::text, seq FROM booking_requests WHERE id::text = ANY(:ids)"),
                            {"ids": list(request_ids)})
        return dict(rows.all())


def test_among_truly_concurrent_requests_the_lowest_seq_wins_each_slot(workers, db, admin_api: Api,
                                                                        client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    starts = slot_starts(5)
    calls = [lambda s=starts[i % 5], i=i: client_api.submit(provider["id"], s, customer_id=f"c{i}")
             for i in range(THREADS)]

    submitted = all_at_once(calls)
    decided = [client_api.decided(r["id"]) for r in submitted]

    seqs = seq_of(db, [r["id"] for r in decided])
    for start in starts:
        racers = [r for r in decided if r["start"] == start]
        winners = [r for r in racers if r["status"] == "succeeded"]
        assert len(winners) == 1
        assert seqs[winners[0]["id"]] == min(seqs[r["id"]] for r in racers)
        assert {r["reason"]["code"] for r in racers if r is not winners[0]} <= {"slot_unavailable"}


def burst_round(db, admin_api: Api, client_api: Api, rng: random.Random) -> list[str]:
    """One provider, ten bookings, then fifty creates, reschedules and cancels at once;
    what the recorded history and the independent model disagree on."""
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    starts = slot_starts(16)
    setup = [client_api.submit(provider["id"], start, customer_id="setup") for start in starts[:10]]
    bookings = [client_api.decided(r["id"])["booking"]["id"] for r in setup]

    def random_call():
        kind, booking = rng.choice(["create", "reschedule", "cancel"]), rng.choice(bookings)
        if kind == "create":
            return lambda s=rng.choice(starts): client_api.submit(provider["id"], s)
        if kind == "reschedule":
            return lambda b=booking, s=rng.choice(starts): client_api.http.post(
                f"/v1/bookings/{b}/reschedule", json={"start": s}).json()
        return lambda b=booking: client_api.http.post(f"/v1/bookings/{b}/cancel", json={}).json()

    submitted = all_at_once([random_call() for _ in range(THREADS)])
    for request in submitted:
        assert client_api.decided(request["id"])["status"] != "queued"
    with db.connect() as conn:
        return check_history(conn, provider["id"], SLOT)


def test_bursts_of_creates_reschedules_and_cancels_are_decided_in_acceptance_order(
        workers, db, admin_api: Api, client_api: Api):
    rng = random.Random(20261125)
    for round_ in range(20):
        differences = burst_round(db, admin_api, client_api, rng)
        assert differences == [], f"round {round_}:\n" + "\n".join(differences)


def test_concurrent_changes_with_one_etag_only_the_first_wins(workers, db, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    starts = slot_starts(21)
    booking = client_api.decided(client_api.submit(provider["id"], starts[0])["id"])["booking"]
    url = f"/v1/bookings/{booking['id']}"
    etag = client_api.http.get(url).headers["ETag"]

    answers = all_at_once([lambda s=s: client_api.http.post(f"{url}/reschedule", json={"start": s},
                                                             headers={"If-Match": etag})
                           for s in starts[1:]])

    accepted = [a.json() for a in answers if a.status_code == 202]
    assert {a.status_code for a in answers} <= {202, 412}
    outcomes = [client_api.decided(a["id"]) for a in accepted]
    assert [o["status"] for o in outcomes].count("succeeded") == 1
    assert {o["reason"]["code"] for o in outcomes if o["status"] != "succeeded"} <= {"booking_changed"}
    winner = next(o for o in outcomes if o["status"] == "succeeded")
    assert seq_of(db, [winner["id"]])[winner["id"]] == min(seq_of(db, [o["id"] for o in outcomes]).values())
    assert client_api.http.get(url).json()["start"] == winner["start"]


def test_through_the_workers_a_bad_request_fails_after_retries_and_the_rest_are_decided(
        workers, db, injected_faults, admin_api: Api, client_api: Api):  # noqa: F811
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    starts = slot_starts(4)
    bad = client_api.submit(provider["id"], starts[0], customer_id="always-fails")
    good = [client_api.submit(provider["id"], s, customer_id="fine") for s in starts[1:]]

    assert client_api.decided(bad["id"])["reason"]["code"] == "internal_error"
    assert [client_api.decided(r["id"])["status"] for r in good] == ["succeeded"] * 3
    with db.connect() as conn:
        attempts = conn.scalar(text("SELECT attempts FROM booking_requests WHERE id = :id"),
                               {"id": bad["id"]})
    assert attempts == 5
