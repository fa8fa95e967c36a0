"""The decision path beneath the API, against real PostgreSQL and Redis: the calendar
fence on every writer, If-Match at decision time, and requests that fail to decide."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from booking.fence import StaleCalendar, claim_calendar
from booking.services import keys, providers, requests
from booking.services.errors import IfMatch
from tests.seeding import insert_booking
from tests.triggers import row_trigger
from workers import decide

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def make_provider():
    return providers.create_provider({
        "name": "Tutor", "timezone": "UTC", "slot_minutes": 60, "weekly_schedule": ALL_WEEK,
        "min_notice_minutes": 0, "max_advance_days": 365})


def in_two_days(hours: int = 0) -> datetime:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    return base + timedelta(hours=hours)


def request_row(db, request_id):
    with db.connect() as conn:
        return conn.execute(text("SELECT status, reason_code, attempts, decided_at FROM booking_requests "
                                 "WHERE id = :id"), {"id": request_id}).one()


def booking_count(db, provider_id) -> int:
    with db.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM bookings WHERE provider_id = :p"), {"p": provider_id})


# --- the fence ----------------------------------------------------------------------

def test_a_calendar_write_without_the_claim_is_refused_by_the_database(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key

    def insert(conn):
        insert_booking(conn, provider.id, key.id, in_two_days(), in_two_days(1))

    with pytest.raises(DBAPIError, match="without claiming"), db.begin() as conn:
        insert(conn)
    with db.begin() as conn:  # the same write, fenced, is fine
        claim_calendar(conn.execute, provider.id, provider.version)
        insert(conn)

    request = requests.submit_create(key, provider.id, "c", in_two_days(3), None, None)
    with pytest.raises(DBAPIError, match="without claiming"), db.begin() as conn:
        conn.execute(text("UPDATE booking_requests SET status = 'failed' WHERE id = :id"), {"id": request.id})
    assert request_row(db, request.id).status == "queued"


def test_a_decider_whose_request_was_failed_meanwhile_books_nothing(db, monkeypatch):
    # Given a worker that has read a request, and whose lease expired meanwhile,
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    request = requests.submit_create(key, provider.id, "c", in_two_days(), None, None)
    real_read = decide.read_snapshot

    def read_then_another_worker_fails_it(conn, provider_id, batch_size):
        snapshot = real_read(conn, provider_id, batch_size)
        if snapshot is not None and not failed:
            failed.append(decide._fail_request(provider_id, request.id))
        return snapshot

    failed = []
    monkeypatch.setattr(decide, "read_snapshot", read_then_another_worker_fails_it)

    # when another worker marks it failed before the first one commits,
    decide.decide_next_batch(provider.id, batch_size=10)

    # then the first one's writes are refused: the request stays failed, nothing booked.
    assert failed == [True]
    assert request_row(db, request.id)[:2] == ("failed", "internal_error")
    assert booking_count(db, provider.id) == 0


def test_two_deciders_at_once_the_late_one_is_refused_by_the_fence(db, monkeypatch):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    submitted = [requests.submit_create(key, provider.id, f"c{i}", in_two_days(i), None, None)
                 for i in range(3)]
    real_read = decide.read_snapshot
    late_reads = []

    def read_then_the_next_lease_holder_decides(conn, provider_id, batch_size):
        snapshot = real_read(conn, provider_id, batch_size)
        if snapshot is not None and not late_reads:
            late_reads.append(snapshot)
            other = threading.Thread(target=decide._decide_batch_once, args=(provider_id, 10))
            other.start()  # a second worker, on its own connection, while we still hold our read
            other.join()
        return snapshot

    monkeypatch.setattr(decide, "read_snapshot", read_then_the_next_lease_holder_decides)

    with pytest.raises(StaleCalendar):
        decide._decide_batch_once(provider.id, 10)  # the late one, on its stale read

    assert len(late_reads[0].rows) == 3
    assert booking_count(db, provider.id) == 3  # each request booked once, by the other worker
    assert {request_row(db, r.id).status for r in submitted} == {"succeeded"}


def test_version_fence_refuses_an_admin_edit_on_a_stale_read(db):
    provider = make_provider()
    with db.begin() as conn:
        claim_calendar(conn.execute, provider.id, provider.version)

    with pytest.raises(StaleCalendar), db.begin() as conn:
        claim_calendar(conn.execute, provider.id, provider.version)


# --- If-Match at decision time --------------------------------------------------------

def test_two_changes_made_against_one_version_the_second_is_booking_changed(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    created = requests.submit_create(key, provider.id, "c", in_two_days(), None, None)
    decide.decide_provider_queue(provider.id)
    booking_id = requests.get_request(key, created.id).booking_id
    version = requests.get_booking(key, booking_id).version

    # Both accepted: at acceptance the booking is still at the version both name.
    first = requests.submit_change(key, "reschedule", booking_id, in_two_days(5), None, None, None,
                                   IfMatch(frozenset({version})))
    second = requests.submit_change(key, "cancel", booking_id, None, "x", None, None,
                                    IfMatch(frozenset({version})))
    unconditional = requests.submit_change(key, "reschedule", booking_id, in_two_days(7), None, None, None)
    decide.decide_provider_queue(provider.id)

    assert request_row(db, first.id)[:2] == ("succeeded", None)
    assert request_row(db, second.id)[:2] == ("rejected", "booking_changed")
    assert request_row(db, unconditional.id)[:2] == ("succeeded", None)
    booking = requests.get_booking(key, booking_id)
    assert (booking.status, booking.period.lower, booking.version) == ("confirmed", in_two_days(7), 3)


# --- requests that fail to decide -------------------------------------------------------

@pytest.fixture
def injected_faults(db):
    """A trigger that makes booking inserts fail: always for customer 'always-fails',
    the first two times for 'fails-twice' (a sequence, so rolled-back attempts count)."""
    with row_trigger(db, "test_inject_fault", "bookings", """
            IF NEW.customer_id = 'always-fails'
               OR (NEW.customer_id = 'fails-twice' AND nextval('test_passing_faults') <= 2) THEN
                RAISE EXCEPTION 'injected fault for %', NEW.customer_id;
            END IF;""", counter="test_passing_faults"):
        yield


def decide_as_the_actor_retries(provider_id, tries: int = 10) -> list:
    """Call the decision as the actor's retries would: each raise is one more try."""
    outcomes = []
    for _ in range(tries):
        try:
            outcomes.append(decide.decide_provider_queue(provider_id))
            return outcomes
        except Exception as error:  # noqa: BLE001 - the actor lets Dramatiq retry it
            outcomes.append(type(error).__name__)
    return outcomes


@pytest.fixture
def tries_count_at_once(setting_env):
    """Tries spaced by nothing: these tests retry back to back, as no real actor does."""
    setting_env("BOOKING_DECIDE_ATTEMPT_SPACING", "0")


def test_a_passing_fault_does_not_fail_the_request(db, injected_faults, tries_count_at_once):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    request = requests.submit_create(key, provider.id, "fails-twice", in_two_days(), None, None)

    outcomes = decide_as_the_actor_retries(provider.id)

    assert outcomes[-1] == 1 and all(isinstance(o, str) for o in outcomes[:-1])
    assert len(outcomes) >= 2  # at least one failed try, and still decided in the end
    assert request_row(db, request.id)[:2] == ("succeeded", None)


def test_a_request_that_always_fails_is_failed_after_five_tries_and_the_queue_goes_on(
        db, injected_faults, tries_count_at_once):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    before = requests.submit_create(key, provider.id, "fine", in_two_days(0), None, None)
    bad = requests.submit_create(key, provider.id, "always-fails", in_two_days(1), None, None)
    behind = [requests.submit_create(key, provider.id, f"fine-{i}", in_two_days(2 + i), None, None)
              for i in range(5)]

    outcomes = decide_as_the_actor_retries(provider.id)

    # the first try decides the one before it, then the bad one fails five times; the fifth
    # marks it failed and the same call goes on to decide every request behind it
    assert all(isinstance(o, str) for o in outcomes[:4]) and outcomes[4:] == [6]
    status, code, attempts, _ = request_row(db, bad.id)
    assert (status, code, attempts) == ("failed", "internal_error", 5)
    assert [request_row(db, r.id).status for r in [before, *behind]] == ["succeeded"] * 6
    decided_at = {request_row(db, r.id).decided_at for r in behind}
    assert len(decided_at) == 1  # in one batch, not one by one


def streak(db, request_id) -> int:
    with db.connect() as conn:
        return conn.scalar(text("SELECT error_streak FROM booking_requests WHERE id = :id"),
                           {"id": request_id})


def test_different_errors_make_no_streak_but_do_not_go_on_for_ever(db, tries_count_at_once):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    request = requests.submit_create(key, provider.id, "c", in_two_days(), None, None)
    alternating = [ValueError("a"), KeyError("b")] * 7

    assert [decide._attempt_failed(provider.id, error) for error in alternating] == [False] * 14
    assert request_row(db, request.id)[:3] == ("queued", None, 14) and streak(db, request.id) == 1

    assert decide._attempt_failed(provider.id, ValueError("c")) is True  # 15 = 3 x 5 tries in all
    assert request_row(db, request.id)[:2] == ("failed", "internal_error")


def test_tries_in_quick_succession_count_once(db, setting_env):
    setting_env("BOOKING_DECIDE_ATTEMPT_SPACING", "60")
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    request = requests.submit_create(key, provider.id, "c", in_two_days(), None, None)

    for _ in range(10):  # a burst of messages for the provider, each trying again at once
        assert decide._attempt_failed(provider.id, ValueError("boom")) is False

    assert request_row(db, request.id)[:3] == ("queued", None, 1)


def test_connection_trouble_and_lock_timeouts_never_count(db):
    import psycopg
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    transient = [psycopg.errors.SerializationFailure(), psycopg.errors.LockNotAvailable(),
                 psycopg.errors.AdminShutdown(), psycopg.OperationalError("server closed the connection"),
                 PoolTimeout("QueuePool limit reached"), psycopg.errors.IdleInTransactionSessionTimeout()]
    lasting = [psycopg.errors.ProgramLimitExceeded(), psycopg.errors.RaiseException(), ValueError()]

    assert [decide.is_transient(e) for e in transient] == [True] * len(transient)
    assert [decide.is_transient(e) for e in lasting] == [False] * len(lasting)
