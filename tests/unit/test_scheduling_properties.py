"""Property tests: the decision rules (models.decisions.BatchDecider) and the slot
listing (models.sessions.Calendar.open_starts) against the independent sequential
model in tests/scheduling_model.py, on random providers (zones, weekly hours, date
overrides, notice, advance), services (durations, steps, buffers, seats, limits,
offered or not), time off and sequences of creates, reschedules and cancels.

Dates come from fixed eight-day spans: one without clock changes, and four that
hold a Berlin or New York clock change (see the model's Scope)."""

import uuid
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.calendar import (
    CalendarRules,
    Interval,
    Rejection,
    ServiceRules,
    parse_date_overrides,
    parse_weekly_schedule,
)
from models.decisions import BatchDecider, PendingRequest
from tests.scheduling_model import MINUTE, Scenario, SchedulingModel, ServiceSpec, scenarios

SPANS = [date(2027, 1, 7),  # no clock change
         date(2026, 10, 22), date(2027, 3, 25),  # Berlin falls back / springs forward on the Sunday
         date(2026, 10, 29), date(2027, 3, 11)]  # New York, likewise
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


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
                        spec.daily_limit, spec.weekly_limit, offered=spec.offered)


def outcome(rejection: Rejection | None) -> str | None:
    """A rejection as the model names it (which limit, from the message)."""
    if rejection is None or rejection.code != "limit_reached":
        return rejection and rejection.code
    return f"limit_reached ({'daily' if 'daily' in rejection.message else 'weekly'})"


class Replay:
    """The scenario's requests through one BatchDecider and through the model, side by side."""

    def __init__(self, scenario: Scenario, now: datetime):
        self.scenario, self.now = scenario, now
        self.rules = calendar_rules(scenario)
        self.services = [service_rules(spec) for spec in scenario.services]
        self.decider = BatchDecider(self.rules, [], [Interval(*off) for off in scenario.time_off], now)
        self.model = SchedulingModel(scenario.provider, scenario.time_off)
        self.booking_ids: dict[int, uuid.UUID] = {}  # by the index of the create that made it
        self.creates: dict[int, int] = {}  # create index -> service index

    def pending(self, index: int, accepted_at: datetime) -> PendingRequest:
        request = self.scenario.requests[index]
        if request.kind == "create":
            self.creates[index] = request.service
            return PendingRequest(uuid.uuid4(), "create", accepted_at, start=request.start,
                                  customer_id=request.customer, service=self.services[request.service])
        # as the worker reads it: the booking's customer and service on the request row
        booking_id = self.booking_ids.get(request.target, uuid.uuid4())
        target = self.scenario.requests[request.target]
        return PendingRequest(uuid.uuid4(), request.kind, accepted_at, start=request.start,
                              booking_id=booking_id, customer_id=target.customer,
                              service=self.services[self.creates[request.target]])

    def step(self, index: int, accepted_at: datetime) -> tuple[str | None, str | None]:
        """(the decider's outcome, the model's) for request number `index`."""
        decision = self.decider.decide(self.pending(index, accepted_at))
        expected = self.model.decide(index, self.scenario.requests[index], self.scenario.services,
                                     accepted_at, self.now)
        if decision.succeeded and self.scenario.requests[index].kind == "create":
            self.booking_ids[index] = decision.booking_id
        return outcome(decision.rejection), expected


def describe(scenario: Scenario, index: int) -> str:
    request = scenario.requests[index]
    service = scenario.services[request.service] if request.kind == "create" else None
    return f"request {index}: {request} of {service}"


@PROPERTY_SETTINGS
@given(timed_scenarios())
def test_decisions_match_the_sequential_model(timed):
    scenario, now, queue_delay = timed
    replay = Replay(scenario, now)
    count = len(scenario.requests)
    for index in range(count):
        # accepted in order, the last a second before `now`, `queue_delay` minutes behind
        accepted_at = now - queue_delay * MINUTE - timedelta(seconds=count - index)
        decided, expected = replay.step(index, accepted_at)
        assert decided == expected, describe(scenario, index)


@PROPERTY_SETTINGS
@given(timed_scenarios())
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
