"""Drive every endpoint with real keys against real processes, capture everything
they log, and look for secrets: API keys, webhook secrets, signatures, Authorization,
and a token in a webhook URL's query string."""

import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from booking.stack import free_port, wait_for_port
from tests.conftest import Api, ProcessGroup, service_env, start_workers
from tests.integration.test_webhooks import ALL_WEEK, Receiver

BOGUS_KEY = "bk_this_key_does_not_exist_but_must_not_be_logged_either"


def a_start(hours: int) -> str:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (first + timedelta(hours=hours)).isoformat()


def drive_every_endpoint(base: str, admin: Api, receiver: Receiver) -> list[str]:
    """Every operation, as clients would use it; returns the secrets that were in play."""
    url_token = f"qs_{uuid.uuid4().hex}"  # receivers put tokens in query strings
    hook_url = f"{receiver.url}?token={url_token}"
    created = admin.http.post("/v1/api-keys", json={"name": "portal", "role": "client"}).json()
    client = Api(base, created["key"])
    provider = admin.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    pid = provider["id"]
    admin.http.get("/v1/providers")
    admin.http.get(f"/v1/providers/{pid}")
    admin.http.patch(f"/v1/providers/{pid}", json={"name": "Renamed"}, headers={"If-Match": '"1"'})
    off = admin.http.post(f"/v1/providers/{pid}/time-off",
                          json={"start": a_start(30), "end": a_start(31), "reason": "x"}).json()
    admin.http.get(f"/v1/providers/{pid}/time-off")
    admin.http.delete(f"/v1/providers/{pid}/time-off/{off['id']}")
    client.http.get(f"/v1/providers/{pid}/slots", params={"date": a_start(0)[:10]})
    endpoint = client.http.post("/v1/webhook-endpoints", json={
        "url": hook_url, "events": ["booking.confirmed"]}).json()
    client.http.get("/v1/webhook-endpoints")
    request = client.submit(pid, a_start(1), callback_url=hook_url)
    booking = client.decided(request["id"])["booking"]
    client.decided(client.http.post(f"/v1/bookings/{booking['id']}/reschedule",
                                    json={"start": a_start(2), "callback_url": hook_url}).json()["id"])
    client.decided(client.http.post(f"/v1/bookings/{booking['id']}/cancel",
                                    json={"reason": "ill", "callback_url": hook_url}).json()["id"])
    client.http.get("/v1/bookings")
    client.http.get(f"/v1/bookings/{booking['id']}")
    client.http.get("/v1/booking-requests")
    receiver.wait_for(4)
    deliveries = client.http.get(f"/v1/booking-requests/{request['id']}/deliveries").json()["items"]
    assert {d["url"] for d in deliveries} == {hook_url}  # the token did travel
    client.http.post(f"/v1/booking-requests/{request['id']}/deliveries/{deliveries[0]['id']}/retry")
    rotated = client.http.post(f"/v1/api-keys/{created['id']}/rotate-webhook-secret").json()
    client.http.delete(f"/v1/webhook-endpoints/{endpoint['id']}")
    admin.http.get("/v1/api-keys")
    # hostile and broken calls, which are the ones most likely to be logged
    httpx.get(f"{base}/v1/bookings", headers={"Authorization": f"Bearer {BOGUS_KEY}"})
    client.http.post("/v1/bookings", content=f'{{"customer_id": "{created["key"]}"',
                     headers={"Content-Type": "application/json"})
    client.http.get(f"/v1/bookings?cursor={created['webhook_secret'][:40]}")
    admin.http.delete(f"/v1/api-keys/{created['id']}")
    client.http.get("/v1/bookings")  # revoked: 401
    receiver.wait_for(5)
    return [created["key"], created["webhook_secret"], rotated["webhook_secret"], BOGUS_KEY, url_token,
            *{r["headers"]["webhook-signature"] for r in receiver.requests}]


def test_no_secret_reaches_any_log(stack, db, admin_key):
    port = free_port()
    web = ProcessGroup([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"],
                       service_env(PORT=str(port), BIND_HOST="127.0.0.1"))
    deciders = start_workers(processes=1)
    senders = start_workers(processes=1, queue="webhooks")
    receiver = Receiver()
    try:
        wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        secrets = [admin_key, *drive_every_endpoint(base, Api(base, admin_key), receiver)]
    finally:
        for group in (web, deciders, senders):
            group.stop()
        receiver.server.shutdown()

    logs = "".join(web.output + deciders.output + senders.output)
    assert '"GET /v1/bookings' in logs and "Worker process is ready" in logs  # we did capture
    assert "webhook delivery" in "".join(senders.output)  # the sender's own lines too
    for secret in secrets:
        for signature in secret.split(" "):
            assert signature.removeprefix("v1,") not in logs
    assert "Bearer" not in logs and "whsec_" not in logs
