"""The independent scheduling model (tests/scheduling_model.py) against the whole
system: services, a provider offering them, date overrides and time off made over
HTTP; creates, reschedules and cancels submitted one at a time (so acceptance order
is submission order) and decided by real dramatiq worker processes over PostgreSQL
and Redis; then every outcome, every booking as stored, and the slot listings of
every service (over all the days, and date by date) compared with the model's.

Times come from the system itself: the model judges each request at its acceptance
(`created_at`) and decision (`decided_at`) times, so notice and advance are exact; a
listing is compared at the clock before and after it was read, and a start whose
timing changed in between may be listed or not."""

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api
from tests.scheduling_model import RequestSpec, Scenario, SchedulingModel, ServiceSpec, scenarios

E2E_SETTINGS = settings(max_examples=10, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def yesterday() -> st.SearchStrategy:
    """Eight days from yesterday: some starts are past, some beyond the advance."""
    return st.builds(lambda: datetime.now(UTC).date() - timedelta(days=1))


def parse(instant: str | None) -> datetime | None:
    return datetime.fromisoformat(instant) if instant else None


class Setup:
    """The scenario's services, provider, overrides and time off, made over HTTP."""

    def __init__(self, admin: Api, scenario: Scenario):
        self.admin, self.scenario = admin, scenario
        self.service_ids = [None if spec.implicit else self._create_service(admin, spec)
                            for spec in scenario.services]
        self.provider_id = self._create_provider()
        for day, intervals in scenario.provider.overrides_json().items():
            self._expect(200, "put", f"date-overrides/{day}", {"intervals": intervals})
        for start, end in scenario.time_off:
            self._expect(201, "post", "time-off", {"start": start.isoformat(), "end": end.isoformat()})

    def _create_provider(self) -> str:
        provider = self.scenario.provider
        offered = [sid for sid, spec in zip(self.service_ids, self.scenario.services, strict=True)
                   if sid and spec.offered]
        return self.admin.create_provider(
            timezone=provider.zone.key, slot_minutes=provider.slot_minutes,
            weekly_schedule=provider.weekly_json(), min_notice_minutes=provider.min_notice_minutes,
            max_advance_days=provider.max_advance_days, service_ids=offered)["id"]

    def _expect(self, status: int, method: str, path: str, body: dict) -> None:
        response = self.admin.http.request(method, f"/v1/providers/{self.provider_id}/{path}", json=body)
        assert response.status_code == status, response.text

    @staticmethod
    def _create_service(admin: Api, spec: ServiceSpec) -> str:
        response = admin.http.post("/v1/services", json=spec.as_json())
        assert response.status_code == 201, response.text
        return response.json()["id"]


class Submitter:
    """Submits the scenario's requests one at a time, as a client would; a change names
    the booking its create made (awaiting that decision first)."""

    def __init__(self, client: Api, setup: Setup):
        self.client, self.setup = client, setup
        self.submitted: dict[int, dict] = {}  # accepted requests, by index
        self.refused: dict[int, str] = {}  # refused at once: what the model calls it

    def submit_all(self) -> None:
        for index, request in enumerate(self.setup.scenario.requests):
            response = self._post(request)
            if response.status_code == 202:
                self.submitted[index] = response.json()
            else:
                self.refused[index] = self._refusal(response)

    def _post(self, request: RequestSpec):
        if request.kind == "create":
            body = {"provider_id": self.setup.provider_id, "customer_id": request.customer,
                    "start": request.start.isoformat()}
            service_id = self.setup.service_ids[request.service]
            return self.client.http.post("/v1/bookings", json=body | ({"service_id": service_id}
                                                                     if service_id else {}))
        booking_id = self.booking_made_by(request.target) or str(uuid.uuid4())
        body = {"start": request.start.isoformat()} if request.kind == "reschedule" else {}
        return self.client.http.post(f"/v1/bookings/{booking_id}/{request.kind}", json=body)

    def booking_made_by(self, index: int) -> str | None:
        if index not in self.submitted:
            return None
        booking = self.decided(index)["booking"]
        return booking and booking["id"]

    def decided(self, index: int) -> dict:
        body = self.submitted[index]
        if body["status"] == "queued":
            body = self.submitted[index] = self.client.decided(body["id"])
        return body

    @staticmethod
    def _refusal(response) -> str:
        """An answer other than 202, as the model names it: a service the provider does
        not offer (422 naming service_id), a booking that does not exist (404)."""
        if response.status_code == 422 and "service_id" in response.json().get("errors", {}):
            return "service_not_offered"
        assert response.status_code == 404, response.text
        return "booking_not_found"


def recorded_outcome(decided: dict) -> str | None:
    assert decided["status"] in ("succeeded", "rejected"), decided
    if decided["status"] == "succeeded":
        return None
    reason = decided["reason"]
    if reason["code"] == "limit_reached":
        return f"limit_reached ({'daily' if 'daily' in reason['message'] else 'weekly'})"
    return reason["code"]


def outcome_differences(submitter: Submitter, model: SchedulingModel) -> list[str]:
    scenario, problems = submitter.setup.scenario, []
    for index, request in enumerate(scenario.requests):
        if index in submitter.refused:
            recorded, accepted_at, now = submitter.refused[index], datetime.now(UTC), datetime.now(UTC)
        else:
            decided = submitter.decided(index)
            recorded = recorded_outcome(decided)
            accepted_at, now = parse(decided["created_at"]), parse(decided["decided_at"])
        expected = model.decide(index, request, scenario.services, accepted_at, now)
        if recorded != expected:
            problems.append(f"request {index} {request}: recorded {recorded}, model {expected}")
    return problems


def booking_differences(submitter: Submitter, model: SchedulingModel) -> list[str]:
    """Each booking as stored (read over HTTP) against the model's: start, end, status,
    service and customer."""
    problems = []
    for index, expected in model.bookings.items():
        booking_id = submitter.booking_made_by(index)
        if booking_id is None:
            problems.append(f"request {index} made no booking, the model's made {expected}")
            continue
        stored = submitter.client.http.get(f"/v1/bookings/{booking_id}").json()
        start, end = expected.service.appointment(expected.start)
        service_id = submitter.setup.service_ids[submitter.setup.scenario.services.index(expected.service)]
        status = "cancelled" if expected.cancelled else "confirmed"
        if ((parse(stored["start"]), parse(stored["end"]), stored["status"], stored["service_id"],
             stored["customer_id"]) != (start, end, status, service_id, expected.customer)):
            problems.append(f"booking of request {index}: stored {stored}, model {expected}")
    return problems


def listing_differences(admin: Api, setup: Setup, model: SchedulingModel) -> list[str]:
    """Each offered service's listing, over all the scenario's days and date by date,
    against the model's at the clock before and after it was read."""
    scenario, problems = setup.scenario, []
    provider = scenario.provider
    whole = {"from": provider.wall(scenario.days[0], 0).isoformat(),
             "to": provider.wall(scenario.days[-1] + timedelta(days=1), 0).isoformat()}
    for spec, service_id in zip(scenario.services, setup.service_ids, strict=True):
        if not spec.offered:
            continue
        service = {"service_id": service_id} if service_id else {}
        problems += one_listing(admin, setup, model, spec, whole | service, scenario.days)
        for day in scenario.days:
            problems += one_listing(admin, setup, model, spec, {"date": day.isoformat()} | service, [day])
    return problems


def one_listing(admin: Api, setup: Setup, model: SchedulingModel, spec: ServiceSpec, params: dict,
                days) -> list[str]:
    before = datetime.now(UTC)
    response = admin.http.get(f"/v1/providers/{setup.provider_id}/slots", params=params)
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    listed = {parse(slot["start"]): slot for slot in response.json()["slots"]}
    early, late = (model.open_starts(spec, days, at) for at in (before, after))
    either = early | late
    where = f"{spec.name} {params}"
    return ([f"{where}: {start} listed, the model refuses it" for start in listed.keys() - either.keys()]
            + [f"{where}: {start} not listed, the model grants it"
               for start in (early.keys() & late.keys()) - listed.keys()]
            + [f"{where}: {slot} listed, the model has {either[start]} seats left"
               for start, slot in listed.items()
               if start in either and not slot_as_modelled(spec, start, slot, either[start])])


def slot_as_modelled(spec: ServiceSpec, start: datetime, slot: dict, seats: int) -> bool:
    return slot["remaining"] == seats and parse(slot["end"]) - start == timedelta(minutes=spec.duration)


@E2E_SETTINGS
@given(scenario=scenarios(yesterday()))
def test_outcomes_and_listings_match_the_sequential_model(workers, db, admin_api: Api, client_api: Api,
                                                          scenario: Scenario):
    # Given the scenario's services, provider, overrides and time off,
    setup = Setup(admin_api, scenario)
    submitter = Submitter(client_api, setup)

    # when its requests are submitted one at a time and decided by the workers,
    submitter.submit_all()

    # then each outcome, each booking, and each service's listing afterwards are the model's.
    model = SchedulingModel(scenario.provider, scenario.time_off)
    differences = outcome_differences(submitter, model)
    differences += booking_differences(submitter, model)
    differences += listing_differences(admin_api, setup, model)
    assert differences == [], "\n".join(differences)
