"""Batch decisions, alone: what one request books, the next one in order sees."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models.calendar import CalendarRules, Interval, Recurrence, ServiceRules, parse_weekly_schedule
from models.decisions import BatchDecider, KnownBooking, PendingRequest

BERLIN = ZoneInfo("Europe/Berlin")
NINE = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN)
NOW = NINE - timedelta(days=1)
RULES = CalendarRules(BERLIN, 30, parse_weekly_schedule({"tuesday": [{"start": "09:00", "end": "12:00"}]}))


def create(start):
    return PendingRequest(uuid.uuid4(), "create", NOW, start=start)


def decider(bookings=(), time_off=()):
    return BatchDecider(RULES, bookings, time_off, NOW)


def test_first_request_for_a_slot_wins_the_rest_are_told_why():
    decisions = decider().decide_all([create(NINE), create(NINE), create(NINE + timedelta(minutes=30))])

    assert [d.rejection.code if d.rejection else "ok" for d in decisions] == [
        "ok", "slot_unavailable", "ok"]


def test_cancel_frees_the_slot_for_the_next_request_in_the_same_batch():
    booking = KnownBooking(uuid.uuid4(), Interval(NINE, NINE + timedelta(minutes=30)), "confirmed")
    cancel = PendingRequest(uuid.uuid4(), "cancel", NOW, booking_id=booking.id)

    decisions = decider([booking]).decide_all([cancel, create(NINE)])

    assert all(d.succeeded for d in decisions)


def test_cancelling_twice_is_rejected_the_second_time():
    booking = KnownBooking(uuid.uuid4(), Interval(NINE, NINE + timedelta(minutes=30)), "confirmed")
    cancel = [PendingRequest(uuid.uuid4(), "cancel", NOW, booking_id=booking.id) for _ in range(2)]

    decisions = decider([booking]).decide_all(cancel)

    assert [d.rejection and d.rejection.code for d in decisions] == [None, "booking_cancelled"]


def test_reschedule_onto_its_own_overlapping_time_is_allowed_and_frees_the_old_slot():
    booking = KnownBooking(uuid.uuid4(), Interval(NINE, NINE + timedelta(minutes=30)), "confirmed")
    move = PendingRequest(uuid.uuid4(), "reschedule", NOW, start=NINE + timedelta(minutes=30),
                          booking_id=booking.id)

    decisions = decider([booking]).decide_all([move, create(NINE)])

    assert all(d.succeeded for d in decisions)
    assert decisions[0].change == ("move", Interval(NINE + timedelta(minutes=30), NINE + timedelta(hours=1)))


def test_rejected_reschedule_keeps_the_old_slot_booked():
    booking = KnownBooking(uuid.uuid4(), Interval(NINE, NINE + timedelta(minutes=30)), "confirmed")
    move = PendingRequest(uuid.uuid4(), "reschedule", NOW, start=NINE + timedelta(hours=5),
                          booking_id=booking.id)

    decisions = decider([booking]).decide_all([move, create(NINE)])

    assert decisions[0].rejection.code == "outside_working_hours"
    assert decisions[1].rejection.code == "slot_unavailable"


def test_time_off_rejects_and_unknown_booking_is_reported():
    time_off = [Interval(NINE, NINE + timedelta(hours=1))]
    unknown = PendingRequest(uuid.uuid4(), "cancel", NOW, booking_id=uuid.uuid4())

    decisions = decider(time_off=time_off).decide_all([create(NINE), unknown])

    assert [d.rejection.code for d in decisions] == ["time_off", "booking_not_found"]


def test_utc_and_local_spellings_of_one_instant_collide():
    decisions = decider().decide_all([create(NINE), create(NINE.astimezone(UTC))])
    assert decisions[1].rejection.code == "slot_unavailable"


# --- services: buffers, seats, limits --------------------------------------------

CLASS = ServiceRules(uuid.uuid4(), duration_minutes=60, step_minutes=60, capacity=2, daily_limit=3)
CLEAN_UP = ServiceRules(uuid.uuid4(), duration_minutes=30, step_minutes=30, buffer_after_minutes=30)


def create_of(service, start, customer):
    return PendingRequest(uuid.uuid4(), "create", NOW, start=start, customer_id=customer, service=service)


def codes(decisions):
    return [d.rejection.code if d.rejection else "ok" for d in decisions]


def test_a_class_seats_each_customer_once_up_to_its_capacity():
    decisions = decider().decide_all([create_of(CLASS, NINE, "ann"), create_of(CLASS, NINE, "ann"),
                                      create_of(CLASS, NINE, "bob"), create_of(CLASS, NINE, "cy")])

    assert codes(decisions) == ["ok", "already_booked", "ok", "slot_unavailable"]
    assert decisions[0].session is decisions[2].session


def test_a_buffer_keeps_the_next_session_away_but_may_fall_outside_hours():
    last = NINE + timedelta(hours=2, minutes=30)  # 11:30-12:00, its buffer runs to 12:30
    decisions = decider().decide_all([create_of(CLEAN_UP, NINE, "a"),
                                      create(NINE + timedelta(minutes=30)),
                                      create(NINE + timedelta(minutes=60)),
                                      create_of(CLEAN_UP, last, "b")])

    assert codes(decisions) == ["ok", "slot_unavailable", "ok", "ok"]


def test_a_daily_limit_counts_seats_of_the_service_on_that_local_day():
    later = NINE + timedelta(hours=1)
    decisions = decider().decide_all([create_of(CLASS, NINE, "a"), create_of(CLASS, NINE, "b"),
                                      create_of(CLASS, later, "c"), create_of(CLASS, later, "d")])

    assert codes(decisions) == ["ok", "ok", "ok", "limit_reached"]


def test_a_service_no_longer_offered_is_refused_and_a_move_changes_seats():
    gone = ServiceRules(CLASS.id, 60, 60, capacity=2, offered=False)
    seated = decider().decide_all([create_of(CLASS, NINE, "a")])[0]
    booking = KnownBooking(seated.booking_id, seated.session.appointment, "confirmed", 1, "a", CLASS.id)
    session = seated.session
    move = PendingRequest(uuid.uuid4(), "reschedule", NOW, start=NINE + timedelta(hours=1),
                          booking_id=booking.id, customer_id="a", service=CLASS)

    decisions = BatchDecider(RULES, [booking], [], NOW, sessions=[session]).decide_all(
        [create_of(gone, NINE, "b"), move, create_of(CLASS, NINE, "c"), create_of(CLASS, NINE, "d")])

    assert codes(decisions) == ["service_not_offered", "ok", "ok", "ok"]
    assert decisions[1].session.appointment.start == NINE + timedelta(hours=1)


# --- host confirmation ------------------------------------------------------------

APPROVED = ServiceRules(uuid.uuid4(), duration_minutes=30, step_minutes=30, requires_confirmation=True)


def host(kind, booking_id):
    return PendingRequest(uuid.uuid4(), kind, NOW, booking_id=booking_id)


def test_a_pending_booking_holds_its_seat_until_the_host_declines_it():
    created = decider().decide_all([create_of(APPROVED, NINE, "a")])[0]
    pending = KnownBooking(created.booking_id, created.session.appointment, created.status, 1, "a",
                           APPROVED.id)
    later = BatchDecider(RULES, [pending], [], NOW, sessions=[created.session])

    decisions = later.decide_all([create_of(APPROVED, NINE, "b"), host("decline_booking", pending.id),
                                  host("confirm_booking", pending.id), create_of(APPROVED, NINE, "b")])

    assert created.status == "pending"
    assert codes(decisions) == ["slot_unavailable", "ok", "booking_not_pending", "ok"]
    assert decisions[1].status == "declined"


def test_confirming_changes_no_seat_and_only_once():
    created = decider().decide_all([create_of(APPROVED, NINE, "a")])[0]
    pending = KnownBooking(created.booking_id, created.session.appointment, "pending", 1, "a", APPROVED.id)
    later = BatchDecider(RULES, [pending], [], NOW, sessions=[created.session])

    decisions = later.decide_all([host("confirm_booking", pending.id), host("confirm_booking", pending.id),
                                  host("decline_booking", pending.id), create_of(APPROVED, NINE, "b")])

    assert codes(decisions) == ["ok", "booking_not_pending", "booking_not_pending", "slot_unavailable"]
    assert decisions[0].status == "confirmed" and decisions[0].changed_version == 1


# --- series -----------------------------------------------------------------------

def test_a_series_that_fails_takes_no_seat_and_one_that_fits_takes_all():
    three_tuesdays = Recurrence("weekly", 1, 3)  # 09:00, three weeks running
    taken = create(NINE + timedelta(weeks=2))
    series = PendingRequest(uuid.uuid4(), "create", NOW, start=NINE, customer_id="s",
                            recurrence=three_tuesdays)
    shorter = PendingRequest(uuid.uuid4(), "create", NOW, start=NINE, customer_id="s",
                             recurrence=Recurrence("weekly", 1, 2))

    decisions = decider().decide_all([taken, series, create(NINE), shorter])

    assert codes(decisions) == ["ok", "slot_unavailable", "ok", "slot_unavailable"]
    assert decisions[1].occurrence == 2 and decisions[1].series is None
    assert decisions[3].occurrence == 0  # 09:00 went to the create once the series gave it back
