"""The database's final word and the optimistic lock, tested beneath the API."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from booking.fence import claim_calendar
from booking.services import catalog, keys, providers, requests
from tests import seeding
from workers import decide

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def make_provider(**fields):
    values = {"name": "Tutor", "timezone": "UTC", "slot_minutes": 60, "weekly_schedule": ALL_WEEK,
              "min_notice_minutes": 0, "max_advance_days": 365, **fields}
    return providers.create_provider(values)


def insert_booking(conn, provider_id, key_id, start, hours=1, status="confirmed", **seat):
    claim_calendar(conn.execute, provider_id)  # as every writer of a calendar must
    return seeding.insert_booking(conn, provider_id, key_id, start, start + timedelta(hours=hours), status,
                                  **seat)


def test_sql_cannot_store_two_overlapping_confirmed_bookings(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    with db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start)

    with pytest.raises(IntegrityError, match="sessions_no_overlap"), db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start + timedelta(minutes=30))


def test_sql_cannot_fill_a_session_past_its_capacity_nor_seat_a_customer_twice(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    pair = catalog.create_service({"name": "Tandem", "duration_minutes": 60, "capacity": 2})
    with db.begin() as conn:
        for customer in ("a", "b"):
            insert_booking(conn, provider.id, key.id, start, customer_id=customer, service_id=pair.id)

    with pytest.raises(IntegrityError, match="sessions_within_capacity"), db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start, customer_id="c", service_id=pair.id)
    with pytest.raises(IntegrityError, match="bookings_one_seat_per_customer"), db.begin() as conn:
        claim_calendar(conn.execute, provider.id)
        # one seat freed, so only the customer rule can refuse the next insert
        conn.execute(text("UPDATE bookings SET status = 'cancelled' WHERE customer_id = 'b'"))
        insert_booking(conn, provider.id, key.id, start, customer_id="a", service_id=pair.id)
    with db.begin() as conn:  # a cancelled seat is free again, for anyone
        claim_calendar(conn.execute, provider.id)
        conn.execute(text("UPDATE bookings SET status = 'cancelled' WHERE customer_id = 'b'"))
        insert_booking(conn, provider.id, key.id, start, customer_id="c", service_id=pair.id)
        seats = conn.scalar(text("SELECT seats_taken FROM sessions WHERE provider_id = :p"),
                            {"p": provider.id})
    assert seats == 2


def test_seats_are_counted_by_booking_writes_only(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    with db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start)

    with pytest.raises(DBAPIError, match="written by booking writes only"), db.begin() as conn:
        claim_calendar(conn.execute, provider.id)  # even with the claim: it would free a taken seat
        conn.execute(text("UPDATE sessions SET seats_taken = 0"))
    with pytest.raises(DBAPIError, match="cannot move to another provider"), db.begin() as conn:
        other = make_provider()
        claim_calendar(conn.execute, other.id)
        conn.execute(text("UPDATE bookings SET provider_id = :p"), {"p": other.id})


def test_a_cancelled_booking_moved_elsewhere_takes_no_seat(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    with db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start, status="cancelled")
        claim_calendar(conn.execute, provider.id)
        conn.execute(text("UPDATE bookings SET period = tstzrange(:s, :e, '[)')"),
                     {"s": start + timedelta(hours=3), "e": start + timedelta(hours=4)})
        seats = conn.execute(text("SELECT start, seats_taken FROM sessions ORDER BY start")).all()
    assert seats == [(start, 0), (start + timedelta(hours=3), 0)]


def test_cancelled_and_adjacent_bookings_do_not_collide(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    with db.begin() as conn:
        insert_booking(conn, provider.id, key.id, start)
        insert_booking(conn, provider.id, key.id, start, status="cancelled")
        insert_booking(conn, provider.id, key.id, start + timedelta(hours=1))
        count = conn.scalar(text("SELECT count(*) FROM bookings"))
    assert count == 3


def test_a_decision_whose_calendar_went_stale_is_decided_again(db, monkeypatch):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    request = requests.submit_create(key, provider.id, "c", start, None, None)
    real_read = decide.read_snapshot
    edits = []

    def read_then_admin_edits(conn, provider_id, batch_size):
        snapshot = real_read(conn, provider_id, batch_size)
        if not edits:  # after our read, before our commit: an admin blocks that hour
            edits.append(providers.add_time_off(provider_id, start, start + timedelta(hours=1), "x"))
        return snapshot

    monkeypatch.setattr(decide, "read_snapshot", read_then_admin_edits)

    assert decide.decide_next_batch(provider.id, batch_size=10) == (1, False)

    decided = requests.get_request(key, request.id)
    assert decided.status == "rejected"
    assert decided.reason_code == "time_off"  # decided against the fresh calendar
    with db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM bookings")) == 0
        version = conn.scalar(text("SELECT version FROM providers WHERE id = :id"), {"id": provider.id})
    assert version == provider.version + 2  # the time off, then the one decision that stuck


def test_deciding_again_decides_nothing_twice(db):
    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    requests.submit_create(key, provider.id, "c", start, None, None)

    assert decide.decide_provider_queue(provider.id) == 1
    assert decide.decide_provider_queue(provider.id) == 0
    with db.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM bookings")) == 1


def test_a_held_lease_keeps_a_second_worker_out(db):
    from booking import notify
    from workers.lease import Lease, provider_lease_key

    provider = make_provider()
    key = keys.create_key("k", "client").api_key
    requests.submit_create(key, provider.id, "c", datetime.now(UTC) + timedelta(days=2), None, None)
    holder = Lease(notify.redis_client(), provider_lease_key(provider.id), 10_000)
    assert holder.acquire()

    try:
        assert decide.decide_provider_queue(provider.id) == 0
        intruder = Lease(notify.redis_client(), provider_lease_key(provider.id), 10_000)
        assert not intruder.release()  # only the holder's token releases
    finally:
        assert holder.release()
    assert decide.decide_provider_queue(provider.id) == 1


def test_a_knock_during_a_lease_is_reported_to_its_holder_once():
    from booking import notify
    from workers.lease import Lease

    holder = Lease(notify.redis_client(), "booking:lease:test-knock", 10_000)
    caller = Lease(notify.redis_client(), "booking:lease:test-knock", 10_000)
    assert holder.acquire_or_knock()
    assert not caller.acquire_or_knock()  # held: it knocks instead

    assert holder.release_reporting_knock()  # the knock reaches the holder
    assert caller.acquire_or_knock()
    assert not caller.release_reporting_knock()  # nobody knocked this time
