"""Property tests: the decision rules (models.decisions.BatchDecider) and the slot
listing (models.sessions.Calendar.open_starts) against the independent sequential
model in tests/scheduling_model.py, on random providers (zones, weekly hours, date
overrides, notice, advance), services (durations, steps, buffers, seats, limits,
offered or not, host confirmation or not), time off and sequences of creates (single
or series), reschedules, cancels and the host's confirms and declines; then every
booking the decider holds against the model's (start, status, series).

Dates come from fixed eight-day spans: one without clock changes, and four that
hold a Berlin or New York clock change (see the model's Scope)."""

import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.calendar import (
    CalendarRules,
    Interval,
    Recurrence,
    ServiceRules,
    parse_date_overrides,
    parse_weekly_schedule,
)
from models.decisions import BatchDecider, Decision, PendingRequest
from tests.scheduling_model import (
    MINUTE,
    BookingKey,
    Scenario,
    SchedulingModel,
    ServiceSpec,
    occurrence_label,
    scenarios,
    showcase,
)

SPANS = [date(2027, 1, 7),  # no clock change
         date(2026, 10, 22), date(2027, 3, 25),  # Berlin falls back / springs forward on the Sunday
         date(2026, 10, 29), date(2027, 3, 11)]  # New York, likewise
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])
# host confirmation and series met every run, judged at noon the day after the span's first
SHOWCASE = (showcase(SPANS[0]), datetime.combine(SPANS[0] + timedelta(days=1), datetime.min.time(), UTC)
            + timedelta(hours=12), 0)


@st.composite
def timed_scenarios(draw) -> tuple[Scenario, datetime, int]:
    """A scenario, the decision time `now` (within its first days, so that some starts
    are past or inside notice), and how many minutes the queue was behind."""
    scenario = draw(scenarios(st.sampled_from(SPANS)))
    now = scenario.provider.wall(scenario.days[0], 0) + 5 * draw(st.integers(0, 432)) * MINUTE
    return scenario, now, draw(st.sampled_from([0, 0, 30, 1440]))


def calendar_rules(scenario: Scenario) -> CalendarRules:
    provider = scenario.provider
    return CalendarRules(provider.zone, provider.slot_minutes, parse_weekly_schedule(provider.weekly_json()),
                         timedelta(minutes=provider.min_notice_minutes),
                         timedelta(days=provider.max_advance_days),
                         parse_date_overrides(provider.overrides_json()))


def service_rules(spec: ServiceSpec) -> ServiceRules | None:
    """The rules' view of a service; None for the implicit one (as a request without service_id)."""
    if spec.implicit:
        return None
    return ServiceRules(uuid.uuid4(), spec.duration, spec.step, spec.before, spec.after, spec.capacity,
                        spec.daily_limit, spec.weekly_limit, spec.requires_confirmation,
                        offered=spec.offered)


def outcome(decision: Decision) -> str | None:
    """A rejection as the model names it (which limit, from the message; which occurrence
    of a series)."""
    rejection = decision.rejection
    if rejection is None:
        return None
    code = rejection.code
    if code == "limit_reached":
        code = f"limit_reached ({'daily' if 'daily' in rejection.message else 'weekly'})"
    return occurrence_label(code, decision.occurrence)


class Replay:
    """The scenario's requests through one BatchDecider and through the model, side by side."""

    def __init__(self, scenario: Scenario, now: datetime):
        self.scenario, self.now = scenario, now
        self.rules = calendar_rules(scenario)
        self.services = [service_rules(spec) for spec in scenario.services]
        self.decider = BatchDecider(self.rules, [], [Interval(*off) for off in scenario.time_off], now)
        self.model = SchedulingModel(scenario.provider, scenario.time_off)
        # the bookings each create made: (its index, the occurrence) -> the decider's id
        self.booking_ids: dict[BookingKey, uuid.UUID] = {}
        self.series: dict[uuid.UUID, int] = {}  # a series' booking -> the index of its create

    def pending(self, index: int, accepted_at: datetime) -> PendingRequest:
        request = self.scenario.requests[index]
        if request.kind == "create":
            recurrence = request.recurrence and Recurrence(request.recurrence.frequency,
                                                           request.recurrence.interval,
                                                           request.recurrence.count)
            return PendingRequest(uuid.uuid4(), "create", accepted_at, start=request.start,
                                  customer_id=request.customer, service=self.services[request.service],
                                  recurrence=recurrence)
        # as the worker reads it: the booking's customer and service on the request row
        key = self.model.booking_key(request)
        booking_id = self.booking_ids.get(key, uuid.uuid4())
        target = self.scenario.requests[key[0]]
        return PendingRequest(uuid.uuid4(), request.kind, accepted_at, start=request.start,
                              booking_id=booking_id, customer_id=target.customer,
                              service=self.services[target.service])

    def step(self, index: int, accepted_at: datetime) -> tuple[str | None, str | None]:
        """(the decider's outcome, the model's) for request number `index`."""
        decision = self.decider.decide(self.pending(index, accepted_at))
        expected = self.model.decide(index, self.scenario.requests[index], self.scenario.services,
                                     accepted_at, self.now)
        if decision.succeeded and self.scenario.requests[index].kind == "create":
            if decision.series is None:
                self.booking_ids[index, 0] = decision.booking_id
            for occurrence, (booking_id, _session) in enumerate(decision.series or ()):
                self.booking_ids[index, occurrence] = booking_id
                self.series[booking_id] = index
        return outcome(decision), expected

    def booking_differences(self) -> list[str]:
        """Each booking the decider holds against the model's: start, end, status and
        series (the index of the create that made it, if a series); none more, none less."""
        decided = {key: self.decider.bookings[booking_id] for key, booking_id in self.booking_ids.items()}
        problems = [f"booking {key}: the decider's {booking}, not the model's"
                    for key, booking in decided.items() if key not in self.model.bookings]
        problems += [f"booking {key} {expected}: the decider has none"
                     for key, expected in self.model.bookings.items() if key not in decided]
        if len(self.decider.bookings) != len(decided):
            problems.append(f"the decider holds {len(self.decider.bookings)} bookings, made {len(decided)}")
        for key, expected in self.model.bookings.items():
            booking = decided.get(key)
            if booking is None:
                continue
            found = (booking.interval.start, booking.interval.end, booking.status,
                     self.series.get(self.booking_ids[key]))
            if found != (*expected.service.appointment(expected.start), expected.status, expected.series):
                problems.append(f"booking {key}: the decider's {found}, the model's {expected}")
        return problems


def describe(scenario: Scenario, index: int) -> str:
    request = scenario.requests[index]
    service = scenario.services[request.service] if request.kind == "create" else None
    return f"request {index}: {request} of {service}"


@PROPERTY_SETTINGS
@given(timed_scenarios())
@example(SHOWCASE)
def test_decisions_match_the_sequential_model(timed):
    scenario, now, queue_delay = timed
    replay = Replay(scenario, now)
    count = len(scenario.requests)
    for index in range(count):
        # accepted in order, the last a second before `now`, `queue_delay` minutes behind
        accepted_at = now - queue_delay * MINUTE - timedelta(seconds=count - index)
        decided, expected = replay.step(index, accepted_at)
        assert decided == expected, describe(scenario, index)
    differences = replay.booking_differences()
    assert differences == [], "\n".join(differences)


@PROPERTY_SETTINGS
@given(timed_scenarios())
@example(SHOWCASE)
def test_listing_offers_exactly_what_the_model_would_grant(timed):
    scenario, now, _queue_delay = timed
    replay = Replay(scenario, now)
    for index in range(len(scenario.requests)):
        replay.step(index, now)
    rules, provider = replay.rules, scenario.provider
    after_last_day = scenario.days[-1] + timedelta(days=1)
    span = Interval(provider.wall(scenario.days[0], 0), provider.wall(after_last_day, 0))
    for spec, service in zip(scenario.services, replay.services, strict=True):
        listed = replay.decider.calendar.open_starts(service or rules.implicit_service(), span, now)
        assert all(slot.end - slot.start == spec.duration * MINUTE for slot, _remaining in listed)
        assert {slot.start: remaining for slot, remaining in listed} == \
            replay.model.open_starts(spec, scenario.days, now), spec
