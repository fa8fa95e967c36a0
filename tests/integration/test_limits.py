"""Daily and weekly limits count a service's taken seats by the provider's own dates and
ISO weeks, across a clock change; the listing and the decisions agree."""

from datetime import datetime
from zoneinfo import ZoneInfo

from booking.services import catalog, keys, providers, requests
from workers import decide

BERLIN = ZoneInfo("Europe/Berlin")
ALL_DAY = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def berlin(day: int, hour: int) -> datetime:
    """March 2027 in Berlin: clocks spring forward on Sunday the 28th at 02:00."""
    return datetime(2027, 3, day, hour, tzinfo=BERLIN)


def test_limits_follow_provider_local_days_and_weeks_across_a_clock_change(db):
    # Given a one-hour service limited to 2 a day and 3 a week, offered in Berlin,
    service = catalog.create_service({"name": "Massage", "duration_minutes": 60, "daily_limit": 2,
                                      "weekly_limit": 3})
    provider = providers.create_provider({
        "name": "Spa", "timezone": "Europe/Berlin", "slot_minutes": 60, "weekly_schedule": ALL_DAY,
        "min_notice_minutes": 0, "max_advance_days": 365, "service_ids": [service.id]})
    key = keys.create_key("k", "client").api_key
    wanted = [
        ("sat 23:00", berlin(27, 23), "succeeded"),      # Saturday; week 1 of 3
        ("sun 01:00", berlin(28, 1), "succeeded"),       # Saturday 23:00 in UTC, but Sunday here
        ("sun 03:00", berlin(28, 3), "succeeded"),       # right after the skipped hour; day 2 of 2
        ("sun 23:00", berlin(28, 23), "limit_reached"),  # Sunday's two are taken
        ("fri 09:00", berlin(26, 9), "limit_reached"),   # the week's three are taken
        ("mon 00:00", berlin(29, 0), "succeeded"),       # a new ISO week
    ]

    # when each is asked for in turn, decided one at a time (so that each decision reads
    # the seats earlier ones stored, not only those of its own batch),
    submitted = []
    for i, (_label, start, _expected) in enumerate(wanted):
        submitted.append(requests.submit_create(key, provider.id, f"c-{i}", start, None, None,
                                                service_id=service.id))
        decide.decide_provider_queue(provider.id)

    # then each outcome follows the provider's local calendar,
    outcomes = []
    for request in submitted:
        decided = requests.get_request(key, request.id)
        outcomes.append(decided.status if decided.status == "succeeded" else decided.reason_code)
    assert outcomes == [expected for _label, _start, expected in wanted]
    # and the listing agrees: Sunday and Friday offer nothing more, Monday its other hours.
    _, friday = providers.provider_slots(provider.id, berlin(26, 0).date(), service.id)
    _, sunday = providers.provider_slots(provider.id, berlin(28, 0).date(), service.id)
    _, monday = providers.provider_slots(provider.id, berlin(29, 0).date(), service.id)
    assert sunday == [] and friday == []
    assert [(slot.start, remaining) for slot, remaining in monday][:2] == [
        (berlin(29, 1), 1), (berlin(29, 2), 1)]
