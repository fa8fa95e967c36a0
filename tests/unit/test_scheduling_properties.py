"""Property tests: the decision rules (models.decisions.BatchDecider) and the slot
listing (models.sessions.Calendar.open_starts) against the independent sequential
model in tests/scheduling_model.py, on random providers (zones, weekly hours, date
overrides, notice, advance), services (durations, steps, buffers, seats, limits,
offered or not, host confirmation or not), time off and sequences of creates (single
or series), reschedules, cancels, the host's confirms and declines, and holds with
their confirms and releases; then every booking and hold the decider holds against
the model's (start, status, series, expiry).

The test owns the clock. Requests are accepted half a second to two seconds apart
(longer where the client pauses) and decided in batches, each by a BatchDecider
made from what the one before left (as the worker reads it back), at its own `now`:
up to a second after its last request's acceptance, or minutes to a day when the
queue is behind. A confirm or release is accepted only after its hold was decided. So holds
of one to three seconds expire mid-sequence, some exactly at a later acceptance, and
some confirms accepted in time are decided after the expiry.

Dates come from fixed eight-day spans: one without clock changes, and four that
hold a Berlin or New York clock change (see the model's Scope)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, event, example, given, settings
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
    DEFAULT_HOLD_TTL,
    HOLD_OUTCOMES,
    HOLD_STATUSES,
    MINUTE,
    NO_SUCH_HOLD,
    SECOND,
    BookingKey,
    RequestSpec,
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
HALF_SECOND = SECOND / 2


@dataclass(frozen=True)
class Batch:
    indices: range  # the requests it decides, in order
    now: datetime  # its decision time


@dataclass(frozen=True)
class Timeline:
    accepted: tuple[datetime, ...]  # each request's acceptance time
    batches: tuple[Batch, ...]

    def __str__(self) -> str:
        return "; ".join(f"batch at {batch.now.time()}: " + ", ".join(
            f"{index} at {self.accepted[index].time()}" for index in batch.indices) for batch in self.batches)


def timeline(requests: Sequence[RequestSpec], start: datetime, queue_delay: timedelta,
             gaps: Sequence[timedelta], splits: Sequence[bool], lags: Sequence[timedelta]) -> Timeline:
    """Request i is accepted gaps[i] (and its pause) after the one before, the first at
    `start`; a new batch begins at i where splits[i] says so, and where a confirm or
    release may name a hold of the batch so far (its target, or an earlier one: its id
    exists once the hold is decided, and it is accepted gaps[i] and its pause after
    that). A batch is decided `queue_delay` and lags[i] after its last request i was
    accepted, never before the batch before."""
    accepted: list[datetime] = []
    batches: list[Batch] = []
    decided_at: dict[int, datetime] = {}  # request -> its batch's now

    def close(stop: int) -> None:
        first = batches[-1].indices.stop if batches else 0
        now = accepted[stop - 1] + queue_delay + lags[stop - 1]
        batch = Batch(range(first, stop), max(now, batches[-1].now) if batches else now)
        batches.append(batch)
        decided_at.update(dict.fromkeys(batch.indices, batch.now))

    clock = start
    for index, request in enumerate(requests):
        first = batches[-1].indices.stop if batches else 0
        waits = gaps[index] + request.pause * SECOND
        clock += waits
        if index > first and (splits[index] or (request.kind in HOLD_OUTCOMES and request.target >= first)):
            close(index)
        if request.kind in HOLD_OUTCOMES:
            clock = max(clock, decided_at[request.target] + waits)
        accepted.append(clock)
    close(len(requests))
    return Timeline(tuple(accepted), tuple(batches))


def showcase_timeline(scenario: Scenario, start: datetime) -> Timeline:
    """Each request half a second after the one before, decided on its own at once; the
    last one five seconds late (see the showcase's comments)."""
    count = len(scenario.requests)
    lags = [timedelta()] * (count - 1) + [5 * SECOND]
    return timeline(scenario.requests, start, timedelta(), [HALF_SECOND] * count, [True] * count, lags)


SHOWCASE_SCENARIO = showcase(SPANS[0])
# host confirmation, series and holds met every run, from noon the day after the span's first
SHOWCASE = (SHOWCASE_SCENARIO, showcase_timeline(SHOWCASE_SCENARIO, datetime.combine(
    SPANS[0] + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=12)))


@st.composite
def timed_scenarios(draw) -> tuple[Scenario, Timeline]:
    """A scenario and its timeline: starting within its first days (so that some starts
    are past or inside notice), the queue some minutes behind or not."""
    scenario = draw(scenarios(st.sampled_from(SPANS)))
    start = scenario.provider.wall(scenario.days[0], 0) + 5 * draw(st.integers(0, 432)) * MINUTE
    count = len(scenario.requests)

    def each(values: Sequence) -> list:
        return draw(st.lists(st.sampled_from(values), min_size=count, max_size=count))

    # on a half-second grid, so that acceptances often meet expiries (whole seconds after decisions)
    gaps = [halves * HALF_SECOND for halves in each([1, 1, 2, 2, 4])]
    splits = each([False, False, True])
    lags = [halves * HALF_SECOND for halves in each([0, 0, 1, 2])]
    queue_delay = draw(st.sampled_from([0, 0, 30, 1440])) * MINUTE
    return scenario, timeline(scenario.requests, start, queue_delay, gaps, splits, lags)


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
    """The scenario's requests through BatchDeciders (a batch each) and through the
    model, side by side."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.rules = calendar_rules(scenario)
        self.services = [service_rules(spec) for spec in scenario.services]
        self.time_off = [Interval(*off) for off in scenario.time_off]
        self.decider: BatchDecider | None = None
        self.now = self.clock = None  # the batch's decision time; the last acceptance decided
        self.model = SchedulingModel(scenario.provider, scenario.time_off)
        # the bookings each create made, and the hold each hold made: (its index, the
        # occurrence) -> the decider's id (a confirmed hold keeps its id)
        self.booking_ids: dict[BookingKey, uuid.UUID] = {}
        self.series: dict[uuid.UUID, int] = {}  # a series' booking -> the index of its create

    def begin_batch(self, now: datetime) -> None:
        """A decider for the next batch, decided `now`, made from what the last one left:
        its bookings and holds, and its sessions with their seats (a copy, as read back)."""
        bookings, sessions = [], []
        if self.decider is not None:
            bookings = list(self.decider.bookings.values())
            sessions = [replace(session, customers=list(session.customers))
                        for session in self.decider.calendar.sessions.values()]
        self.decider = BatchDecider(self.rules, bookings, self.time_off, now, sessions)
        self.now = now

    def replay(self, timeline: Timeline) -> None:
        """Every request, asserting that the decider's outcome is the model's."""
        for batch in timeline.batches:
            self.begin_batch(batch.now)
            for index in batch.indices:
                decided, expected = self.step(index, timeline.accepted[index])
                assert decided == expected, f"{describe(self.scenario, index)}\n{timeline}"

    def pending(self, index: int, accepted_at: datetime) -> PendingRequest:
        request = self.scenario.requests[index]
        if request.kind == "create":
            recurrence = request.recurrence and Recurrence(request.recurrence.frequency,
                                                           request.recurrence.interval,
                                                           request.recurrence.count)
            return PendingRequest(uuid.uuid4(), "create", accepted_at, start=request.start,
                                  customer_id=request.customer, service=self.services[request.service],
                                  recurrence=recurrence)
        if request.kind == "hold":
            return PendingRequest(uuid.uuid4(), "hold", accepted_at, start=request.start,
                                  customer_id=request.customer, service=self.services[request.service],
                                  ttl_seconds=DEFAULT_HOLD_TTL if request.ttl is None else request.ttl)
        # as the worker reads it: the booking's (or hold's) customer, service and start on the row
        key = self.named(request)
        booking_id = self.booking_ids.get(key, uuid.uuid4())
        target = self.scenario.requests[key[0]]
        start = target.start if request.kind in HOLD_OUTCOMES else request.start
        return PendingRequest(uuid.uuid4(), request.kind, accepted_at, start=start,
                              booking_id=booking_id, customer_id=target.customer,
                              service=self.services[target.service])

    def named(self, request: RequestSpec) -> BookingKey:
        """The booking a change names, or the hold a confirm or release names (asked of
        the model before it judges the request)."""
        if request.kind in HOLD_OUTCOMES:
            return self.model.hold_key(request)
        return self.model.booking_key(request)

    def step(self, index: int, accepted_at: datetime) -> tuple[str | None, str | None]:
        """(the decider's outcome, the model's) for request number `index`. A confirm or
        release of a hold that was refused never reaches the decider (the API answers
        404: no such hold)."""
        request = self.scenario.requests[index]
        decision = None
        if request.kind not in HOLD_OUTCOMES or self.named(request) in self.booking_ids:
            decision = self.decider.decide(self.pending(index, accepted_at))
            self.clock = accepted_at
        expected = self.model.decide(index, request, self.scenario.services, accepted_at, self.now)
        if request.kind in ("hold", *HOLD_OUTCOMES):
            event(f"{request.kind}: {expected or 'succeeded'}")  # see --hypothesis-show-statistics
        if decision is not None and decision.succeeded and request.kind in ("create", "hold"):
            if decision.series is None:
                self.booking_ids[index, 0] = decision.booking_id
            for occurrence, (booking_id, _session) in enumerate(decision.series or ()):
                self.booking_ids[index, occurrence] = booking_id
                self.series[booking_id] = index
        return (NO_SUCH_HOLD if decision is None else outcome(decision)), expected

    def booking_differences(self) -> list[str]:
        """Each booking and hold the decider holds against the model's, as of the last
        acceptance it decided: start, end, status, series (the index of the create that
        made it, if a series) and a hold's expiry; none more, none less."""
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
                     self.series.get(self.booking_ids[key]),
                     booking.expires_at if booking.status in HOLD_STATUSES else None)
            status = expected.status_at(self.clock)
            modelled = (*expected.service.appointment(expected.start), status, expected.series,
                        expected.expires_at if status in HOLD_STATUSES else None)
            if found != modelled:
                problems.append(f"booking {key}: the decider's {found}, the model's {modelled}")
        return problems


def describe(scenario: Scenario, index: int) -> str:
    request = scenario.requests[index]
    service = scenario.services[request.service] if request.kind in ("create", "hold") else None
    return f"request {index}: {request} of {service}"


@PROPERTY_SETTINGS
@given(timed_scenarios())
@example(SHOWCASE)
def test_decisions_match_the_sequential_model(timed):
    scenario, clock = timed
    replay = Replay(scenario)
    replay.replay(clock)
    differences = replay.booking_differences()
    assert differences == [], "\n".join(differences)


@PROPERTY_SETTINGS
@given(timed_scenarios())
@example(SHOWCASE)
def test_listing_offers_exactly_what_the_model_would_grant(timed):
    scenario, clock = timed
    now = clock.batches[-1].now
    replay = Replay(scenario)
    replay.begin_batch(now)  # one batch, every request accepted then: every hold still live
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
