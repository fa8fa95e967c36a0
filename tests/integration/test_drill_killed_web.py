"""Drill: a web process SIGKILLed during submits. Clients that got 202 find their
requests decided; clients whose connection broke retry with their Idempotency-Key and
get the same request, never a second one."""

import contextlib
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psutil
from sqlalchemy import text

from tests.conftest import Api, running_web, start_workers
from tests.history import BOOKING_EVENTS, check_history, check_webhooks
from tests.integration.test_webhooks import Receiver

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SLOT = timedelta(minutes=30)
CLIENTS, SUBMITS_EACH = 8, 25


def submit_until_answered(http: httpx.Client, body: dict, key: str, broken: list) -> dict:
    """What a careful client does: retry a broken submit with the same Idempotency-Key."""
    for _ in range(20):
        try:
            response = http.post("/v1/bookings", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            broken.append(key)
            continue
        if response.status_code == 202:
            return response.json()
        if response.status_code not in (502, 503):
            raise AssertionError(f"{response.status_code}: {response.text}")
    raise AssertionError(f"never answered: {key}")


def test_a_killed_web_process_loses_and_duplicates_nothing(stack, db, admin_key, client_key, workers):
    with contextlib.ExitStack() as cleanup:  # undone last to first: web, senders, receiver
        receiver = Receiver()
        cleanup.callback(receiver.server.shutdown)
        senders = start_workers(processes=1, queue="webhooks")
        cleanup.callback(senders.stop)
        base_url, web = cleanup.enter_context(running_web())
        provider = Api(base_url, admin_key).create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
        reader = Api(base_url, client_key)
        endpoint = reader.http.post("/v1/webhook-endpoints", json={  # booking events, at the same receiver
            "url": receiver.url, "events": sorted(BOOKING_EVENTS.values())})
        assert endpoint.status_code == 201, endpoint.text
        day = (datetime.now(UTC) + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
        starts = [(day + SLOT * i).isoformat() for i in range(40)]
        answers, broken, halfway = {}, [], threading.Event()

        def client(index: int) -> None:
            rng = random.Random(index)
            with httpx.Client(base_url=base_url, timeout=30,
                              headers={"Authorization": f"Bearer {client_key}"}) as http:
                for n in range(SUBMITS_EACH):
                    key = f"drill-{index}-{n}-{uuid.uuid4().hex[:6]}"
                    body = {"provider_id": provider["id"], "customer_id": f"c{index}",
                            "start": rng.choice(starts), "callback_url": receiver.url}
                    answers[key] = submit_until_answered(http, body, key, broken)
                    if n == SUBMITS_EACH // 3:
                        halfway.set()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert halfway.wait(60)
        victim = psutil.Process(web.process.pid).children()[0]  # a gunicorn worker, mid-traffic
        victim.kill()
        for thread in threads:
            thread.join(timeout=120)
        decided = [reader.decided(request["id"], timeout=60) for request in answers.values()]
        booked = sum(request["status"] == "succeeded" for request in decided)
        received = receiver.wait_for(len(answers) + booked)  # each outcome, and each booking.confirmed

    assert len(answers) == CLIENTS * SUBMITS_EACH
    assert all(request["status"] != "queued" for request in decided)
    with db.connect() as conn:
        per_key = dict(conn.execute(text(
            "SELECT idempotency_key, count(*) FROM booking_requests WHERE provider_id = :p "
            "GROUP BY idempotency_key"), {"p": provider["id"]}).all())
        ids = {key: str(rid) for key, rid in conn.execute(text(
            "SELECT idempotency_key, id FROM booking_requests WHERE provider_id = :p"),
            {"p": provider["id"]})}
        differences = check_history(conn, provider["id"], SLOT)
        differences += check_webhooks(conn, provider["id"], received, frozenset(BOOKING_EVENTS.values()))
    assert set(per_key) == set(answers) and set(per_key.values()) == {1}  # nothing lost, nothing twice
    assert all(ids[key] == request["id"] for key, request in answers.items())  # retries got the same one
    assert differences == [], "\n".join(differences)
    print(f"\nkilled web worker {victim.pid}; {len(broken)} submits broke and were retried")
