"""Date overrides over HTTP and through the decision path: a date's hours in place of
its weekday's, closed dates, stranded bookings, the calendar fence."""

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from booking.fence import StaleCalendar, claim_calendar
from booking.services import date_overrides, keys, providers, requests
from booking.services.errors import Conflict
from tests.conftest import auth
from tests.integration.test_providers_api import confirmed_booking, create
from workers import decide

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_SLOTS = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]  # 09:00-12:00, 30-minute slots


def next_weekday(weekday: int) -> date:
    """A date with that weekday at least a week ahead: inside max advance, past any notice."""
    day = datetime.now(UTC).date() + timedelta(days=7)
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def at(day: date, hour: int, zone=BERLIN) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone)


def overrides_url(provider_id: str, day: date | str | None = None) -> str:
    url = f"/v1/providers/{provider_id}/date-overrides"
    return f"{url}/{day}" if day is not None else url


def put_hours(http, key, provider_id, day, intervals):
    return http.put(overrides_url(provider_id, day), json={"intervals": intervals}, headers=auth(key))


def slot_times(http, key, provider_id, day: date) -> list[str]:
    response = http.get(f"/v1/providers/{provider_id}/slots?date={day}", headers=auth(key))
    assert response.status_code == 200, response.get_data(as_text=True)
    return [slot["start"][11:16] for slot in response.get_json()["slots"]]


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    if field:
        assert field in response.get_json()["errors"], response.get_json()


@pytest.fixture
def provider_id(http, admin_key) -> str:
    """Dr. Ada in Berlin: Tuesdays 09:00-12:00, 30-minute slots."""
    return create(http, admin_key).get_json()["id"]


WEEKDAYS_ONLY = {day: [{"start": "09:00", "end": "17:00"}]
                 for day in ("monday", "tuesday", "wednesday", "thursday", "friday")}


def weekday_provider():
    """A tutor in UTC: weekdays 09:00-17:00, hour slots (made without HTTP)."""
    return providers.create_provider({
        "name": "Tutor", "timezone": "UTC", "slot_minutes": 60, "weekly_schedule": WEEKDAYS_ONLY,
        "min_notice_minutes": 0, "max_advance_days": 365})


# --- writing and reading ------------------------------------------------------------

def test_put_answers_the_hours_sorted_and_get_lists_them_by_date(http, admin_key, client_key, provider_id):
    later, earlier = next_weekday(1) + timedelta(days=7), next_weekday(1)

    put_hours(http, admin_key, provider_id, later, [])
    response = put_hours(http, admin_key, provider_id, earlier,
                         [{"start": "14:00", "end": "24:00"}, {"start": "09:00", "end": "10:00"}])
    listed = http.get(overrides_url(provider_id), headers=auth(client_key))

    assert response.status_code == 200, response.get_data(as_text=True)
    hours = [{"start": "09:00", "end": "10:00"}, {"start": "14:00", "end": "24:00"}]
    assert response.get_json() == {"date": earlier.isoformat(), "intervals": hours}
    assert listed.get_json() == {"provider_id": provider_id, "items": [
        {"date": earlier.isoformat(), "intervals": hours}, {"date": later.isoformat(), "intervals": []}]}


def test_get_takes_an_inclusive_range(http, admin_key, provider_id):
    days = [next_weekday(1) + timedelta(days=7 * i) for i in range(3)]
    for day in days:
        put_hours(http, admin_key, provider_id, day, [])

    listed = http.get(overrides_url(provider_id), query_string={"from": days[1], "to": days[2]},
                      headers=auth(admin_key)).get_json()["items"]
    only_first = http.get(overrides_url(provider_id), query_string={"to": days[0]},
                          headers=auth(admin_key)).get_json()["items"]

    assert [item["date"] for item in listed] == [days[1].isoformat(), days[2].isoformat()]
    assert [item["date"] for item in only_first] == [days[0].isoformat()]


def test_a_second_put_replaces_the_date(http, admin_key, provider_id):
    tuesday = next_weekday(1)
    put_hours(http, admin_key, provider_id, tuesday, [])

    put_hours(http, admin_key, provider_id, tuesday, [{"start": "11:00", "end": "12:00"}])

    assert slot_times(http, admin_key, provider_id, tuesday) == ["11:00", "11:30"]
    assert len(http.get(overrides_url(provider_id), headers=auth(admin_key)).get_json()["items"]) == 1


# --- what the slots show ------------------------------------------------------------

def test_an_empty_list_closes_the_date(http, admin_key, client_key, provider_id):
    tuesday = next_weekday(1)
    assert slot_times(http, client_key, provider_id, tuesday) == TUESDAY_SLOTS

    assert put_hours(http, admin_key, provider_id, tuesday, []).status_code == 200

    assert slot_times(http, client_key, provider_id, tuesday) == []
    assert slot_times(http, client_key, provider_id, tuesday + timedelta(days=7)) == TUESDAY_SLOTS


def test_an_override_opens_a_saturday(http, admin_key, client_key, provider_id):
    saturday = next_weekday(5)
    assert slot_times(http, client_key, provider_id, saturday) == []

    put_hours(http, admin_key, provider_id, saturday, [{"start": "10:00", "end": "11:00"}])

    assert slot_times(http, client_key, provider_id, saturday) == ["10:00", "10:30"]


def test_delete_gives_the_date_back_its_weekly_hours(http, admin_key, provider_id):
    tuesday = next_weekday(1)
    put_hours(http, admin_key, provider_id, tuesday, [])

    deleted = http.delete(overrides_url(provider_id, tuesday), headers=auth(admin_key))
    again = http.delete(overrides_url(provider_id, tuesday), headers=auth(admin_key))

    assert deleted.status_code == 204
    assert slot_times(http, admin_key, provider_id, tuesday) == TUESDAY_SLOTS
    assert http.get(overrides_url(provider_id), headers=auth(admin_key)).get_json()["items"] == []
    assert_problem(again, 404)


# --- stranded bookings --------------------------------------------------------------

def test_closing_a_date_with_a_booking_is_409_naming_it(http, db, admin_key, provider_id):
    tuesday = next_weekday(1)
    booking_id = confirmed_booking(db, provider_id, at(tuesday, 9))

    closed = put_hours(http, admin_key, provider_id, tuesday, [])
    still_holds = put_hours(http, admin_key, provider_id, tuesday, [{"start": "09:00", "end": "09:30"}])

    assert_problem(closed, 409)
    assert closed.get_json()["bookings"] == [booking_id]
    assert still_holds.status_code == 200


def test_deleting_the_override_under_saturday_bookings_is_409_naming_them(http, db, admin_key, provider_id):
    saturday = next_weekday(5)
    put_hours(http, admin_key, provider_id, saturday, [{"start": "10:00", "end": "11:00"}])
    booking_id = confirmed_booking(db, provider_id, at(saturday, 10))

    response = http.delete(overrides_url(provider_id, saturday), headers=auth(admin_key))

    assert_problem(response, 409)
    assert response.get_json()["bookings"] == [booking_id]
    assert [i["date"] for i in http.get(overrides_url(provider_id), headers=auth(admin_key))
            .get_json()["items"]] == [saturday.isoformat()]


# --- bad input, roles, unknown providers ----------------------------------------------

@pytest.mark.parametrize("day, body, field", [
    ("2030-13-01", {"intervals": []}, "date"),
    ("2030-02-30", {"intervals": []}, "date"),
    ("tomorrow", {"intervals": []}, "date"),
    ("2030-01-07", {}, "intervals"),
    ("2030-01-07", {"intervals": None}, "intervals"),
    ("2030-01-07", {"intervals": {"start": "09:00", "end": "10:00"}}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "10:00", "end": "09:00"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "09:00", "end": "09:00"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "09:00", "end": "11:00"},
                                  {"start": "10:00", "end": "12:00"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "09:00", "end": "24:30"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "9:00", "end": "10:00"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "09:00"}]}, "intervals"),
    ("2030-01-07", {"intervals": [{"start": "09:00", "end": "10:00", "note": "x"}]}, "intervals"),
    ("2030-01-07", {"intervals": [], "extra": 1}, "extra"),
])
def test_malformed_puts_are_422_naming_the_field(http, admin_key, provider_id, day, body, field):
    response = http.put(overrides_url(provider_id, day), json=body, headers=auth(admin_key))

    assert_problem(response, 422, field)


@pytest.mark.parametrize("query, field", [
    ({"from": "2030-01-08", "to": "2030-01-07"}, "to"),
    ({"from": "2030-1-7"}, "from"),
    ({"to": "2030-02-30"}, "to"),
])
def test_malformed_ranges_are_422_naming_the_field(http, client_key, provider_id, query, field):
    response = http.get(overrides_url(provider_id), query_string=query, headers=auth(client_key))

    assert_problem(response, 422, field)


def test_a_bad_date_to_delete_is_422_naming_it(http, admin_key, provider_id):
    response = http.delete(overrides_url(provider_id, "2030-01-32"), headers=auth(admin_key))

    assert_problem(response, 422, "date")


def test_a_client_key_may_read_but_not_write(http, admin_key, client_key, provider_id):
    tuesday = next_weekday(1)
    put_hours(http, admin_key, provider_id, tuesday, [])

    assert_problem(put_hours(http, client_key, provider_id, tuesday, []), 403)
    assert_problem(http.delete(overrides_url(provider_id, tuesday), headers=auth(client_key)), 403)
    assert http.get(overrides_url(provider_id), headers=auth(client_key)).status_code == 200


def test_an_unknown_provider_is_404(http, admin_key):
    unknown = "00000000-0000-4000-8000-000000000000"

    assert_problem(put_hours(http, admin_key, unknown, "2030-01-07", []), 404)
    assert_problem(http.get(overrides_url(unknown), headers=auth(admin_key)), 404)
    assert_problem(http.delete(overrides_url(unknown, "2030-01-07"), headers=auth(admin_key)), 404)


# --- the calendar fence ---------------------------------------------------------------

def calendar_version(db, provider_id) -> int:
    with db.connect() as conn:
        return conn.scalar(text("SELECT version FROM providers WHERE id = :id"), {"id": provider_id})


def test_a_put_moves_the_calendar_version_but_not_the_provider(http, db, admin_key, provider_id):
    before = http.get(f"/v1/providers/{provider_id}", headers=auth(admin_key))
    version = calendar_version(db, provider_id)

    put_hours(http, admin_key, provider_id, next_weekday(1), [])

    after = http.get(f"/v1/providers/{provider_id}", headers=auth(admin_key))
    assert calendar_version(db, provider_id) == version + 1
    # the provider resource is unchanged, so its ETag still holds; only the calendar moved
    assert after.headers["ETag"] == before.headers["ETag"]
    assert {k: v for k, v in after.get_json().items() if k != "version"} == \
        {k: v for k, v in before.get_json().items() if k != "version"}


def test_a_delete_moves_the_calendar_version(http, db, admin_key, provider_id):
    tuesday = next_weekday(1)
    put_hours(http, admin_key, provider_id, tuesday, [])
    version = calendar_version(db, provider_id)

    http.delete(overrides_url(provider_id, tuesday), headers=auth(admin_key))

    assert calendar_version(db, provider_id) == version + 1



def test_a_write_that_lost_the_calendar_meanwhile_reads_again_and_applies(db, monkeypatch):
    provider = weekday_provider()
    claimed_at = []

    def another_writer_claims_first(execute, provider_id, seen_version):
        if not claimed_at:
            with db.begin() as conn:  # e.g. a decision, between our read and our claim
                claim_calendar(conn.execute, provider_id)
        claimed_at.append(seen_version)
        return claim_calendar(execute, provider_id, seen_version)

    monkeypatch.setattr(date_overrides, "claim_calendar", another_writer_claims_first)
    date_overrides.set_date_override(provider.id, next_weekday(1), [])

    assert claimed_at == [1, 2]
    assert calendar_version(db, provider.id) == 3
    assert [day for day, _ in date_overrides.list_date_overrides(provider.id)] == [next_weekday(1)]


def test_a_calendar_that_stays_busy_is_409(db, monkeypatch):
    provider = weekday_provider()

    def always_stale(_execute, provider_id, _seen_version):
        raise StaleCalendar(provider_id)

    monkeypatch.setattr(date_overrides, "claim_calendar", always_stale)
    with pytest.raises(Conflict, match="busy"):
        date_overrides.set_date_override(provider.id, next_weekday(1), [])
    assert date_overrides.list_date_overrides(provider.id) == []

# --- through the decision path --------------------------------------------------------

def request_outcome(db, request_id) -> tuple[str, str | None]:
    with db.connect() as conn:
        return tuple(conn.execute(text("SELECT status, reason_code FROM booking_requests WHERE id = :id"),
                                  {"id": request_id}).one())


def test_a_create_on_a_saturday_an_override_opened_succeeds(db):
    provider = weekday_provider()
    saturday = next_weekday(5)
    date_overrides.set_date_override(provider.id, saturday, [{"start": "10:00", "end": "12:00"}])
    key = keys.create_key("k", "client").api_key

    request = requests.submit_create(key, provider.id, "c", at(saturday, 11, UTC), None, None)
    decide.decide_provider_queue(provider.id)

    assert request_outcome(db, request.id) == ("succeeded", None)


def test_a_create_on_a_closed_date_is_rejected_outside_working_hours(db):
    provider = weekday_provider()
    tuesday = next_weekday(1)
    date_overrides.set_date_override(provider.id, tuesday, [])
    key = keys.create_key("k", "client").api_key

    request = requests.submit_create(key, provider.id, "c", at(tuesday, 10, UTC), None, None)
    decide.decide_provider_queue(provider.id)

    assert request_outcome(db, request.id) == ("rejected", "outside_working_hours")


def test_an_override_on_a_new_york_clock_change_day_skips_the_hour_that_does_not_exist(http, admin_key,
                                                                                       client_key):
    # Given a New York provider opened by override 01:00-04:00 on the day clocks spring forward,
    new_york = ZoneInfo("America/New_York")
    provider = create(http, admin_key, timezone="America/New_York").get_json()
    spring_forward = date(2027, 3, 14)  # 02:00 EST becomes 03:00 EDT
    assert put_hours(http, admin_key, provider["id"], spring_forward,
                     [{"start": "01:00", "end": "04:00"}]).status_code == 200

    # its slots are the wall times that exist: two hours of real time, four slots,
    listed = http.get(f"/v1/providers/{provider['id']}/slots?date={spring_forward}",
                      headers=auth(client_key)).get_json()["slots"]
    assert [slot["start"] for slot in listed] == [
        "2027-03-14T01:00:00-05:00", "2027-03-14T01:30:00-05:00",
        "2027-03-14T03:00:00-04:00", "2027-03-14T03:30:00-04:00"]

    # and a worker books 03:00 EDT, which the listing then no longer offers.
    key = keys.create_key("k", "client").api_key
    three = datetime(2027, 3, 14, 3, tzinfo=new_york)
    booked = requests.submit_create(key, uuid_of(provider), "c", three, None, None)
    assert decide.decide_provider_queue(uuid_of(provider)) == 1
    assert requests.get_request(key, booked.id).status == "succeeded"
    assert "2027-03-14T03:00:00-04:00" not in [
        s["start"] for s in http.get(f"/v1/providers/{provider['id']}/slots?date={spring_forward}",
                                     headers=auth(client_key)).get_json()["slots"]]


def uuid_of(resource: dict) -> uuid.UUID:
    return uuid.UUID(resource["id"])
