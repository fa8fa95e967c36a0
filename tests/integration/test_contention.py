"""Many clients race for few slots: two worker processes, one provider, no double booking."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from tests.conftest import Api
from tests.history import check_history

BERLIN = ZoneInfo("Europe/Berlin")
SLOTS = 20
RACERS_PER_SLOT = 10  # 200 submissions in all
ALL_WEEK = {day: [{"start": "08:00", "end": "18:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


def slot_starts() -> list[str]:
    day = (datetime.now(BERLIN) + timedelta(days=3)).date()
    first = datetime(day.year, day.month, day.day, 8, tzinfo=BERLIN)
    return [(first + timedelta(minutes=30 * i)).isoformat() for i in range(SLOTS)]


def test_two_hundred_racers_for_twenty_slots(workers, db, admin_api: Api, client_api: Api):
    provider = admin_api.create_provider(weekly_schedule=ALL_WEEK)
    starts = slot_starts()
    # Given one request per slot whose 202 came back before any other was sent,
    first_ids = {client_api.submit(provider["id"], start, customer_id="early")["id"] for start in starts}
    racers = [start for start in starts for _ in range(RACERS_PER_SLOT - 1)]

    # when 180 more race for the same slots, 32 at a time,
    with ThreadPoolExecutor(max_workers=32) as pool:
        submitted = list(pool.map(lambda start: client_api.submit(provider["id"], start), racers))
        decided = list(pool.map(lambda r: client_api.decided(r["id"]),
                                [*submitted, *({"id": i} for i in first_ids)]))

    # then each slot has exactly one confirmed booking, and it is the early request's.
    winners = [r for r in decided if r["status"] == "succeeded"]
    losers = [r for r in decided if r["status"] != "succeeded"]
    assert len(decided) == SLOTS * RACERS_PER_SLOT
    assert {r["id"] for r in winners} == first_ids
    assert sorted(r["booking"]["start"] for r in winners) == sorted(starts)
    assert {(r["status"], r["reason"]["code"]) for r in losers} == {("rejected", "slot_unavailable")}
    with db.connect() as conn:
        per_slot = conn.execute(text(
            "SELECT lower(period), count(*) FROM bookings WHERE status = 'confirmed' "
            "GROUP BY lower(period)")).all()
        differences = check_history(conn, provider["id"], timedelta(minutes=30))
    assert len(per_slot) == SLOTS and all(count == 1 for _, count in per_slot)
    assert differences == [], "\n".join(differences)  # first come, first served, request by request
