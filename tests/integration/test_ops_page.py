"""The /ops page in a real headless browser: Debian's chromium (never a downloaded
one), driven by Playwright, against real gunicorn, dramatiq workers, PostgreSQL and
Redis, with the page's Content-Security-Policy in force."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Api, start_workers
from tests.integration.test_webhooks import ALL_WEEK, Receiver, a_start, deliveries

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=(
    "needs Debian's chromium package at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser_page():
    """A fresh page, and the console errors and uncaught exceptions it reports."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            yield page, errors
        finally:
            browser.close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.statuses = [500]
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def a_failed_delivery_and_a_waiting_queue(admin_api: Api, receiver: Receiver):
    """A delivery that failed (three attempts answered 500), then the decision workers
    gone and two requests waiting; one webhook worker left alive. Yields the failed
    delivery's request id."""
    provider = admin_api.create_provider(timezone="UTC", weekly_schedule=ALL_WEEK)
    deciders = start_workers(processes=1)
    senders = start_workers(processes=1, threads=2, queue="webhooks")
    try:
        request = admin_api.submit(provider["id"], a_start(0), callback_url=receiver.url)
        settled(admin_api, request["id"], "failed")
        os.kill(deciders.process.pid, signal.SIGTERM)  # a clean stop: its heartbeat goes at once
        deciders.process.wait(timeout=30)
        for hour in (1, 2):
            admin_api.submit(provider["id"], a_start(hour))
        yield request["id"]
    finally:
        deciders.stop()
        senders.stop()


def shown_by(page, selectors: tuple[str, ...], wanted: tuple[str, ...], timeout: float = 15) -> tuple:
    """What the page shows at `selectors`, once it is `wanted` or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        shown = tuple(page.text_content(selector) for selector in selectors)
        if shown == wanted or time.monotonic() >= deadline:
            return shown
        page.wait_for_timeout(200)


def summary_with_workers(api: Api, live: dict, timeout: float = 20) -> dict:
    """The summary once it counts exactly `live` workers: processes other modules killed
    leave heartbeats that expire within their TTL (7 s)."""
    deadline = time.monotonic() + timeout
    while True:
        summary = api.http.get("/v1/ops/summary").json()
        if summary["live_workers"] == live:
            return summary
        assert time.monotonic() < deadline, summary["live_workers"]
        time.sleep(0.2)


def settled(api: Api, request_id: str, status: str, attempts: int = 3, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        items = deliveries(api, request_id)
        if items and items[0]["status"] == status and len(items[0]["attempts"]) >= attempts:
            return items[0]
        assert time.monotonic() < deadline, items
        time.sleep(0.2)


def test_the_page_shows_the_summary_under_its_csp_and_replays_a_failed_delivery(
        browser_page, web, admin_api: Api, admin_key: str, receiver: Receiver,
        a_failed_delivery_and_a_waiting_queue, tmp_path):
    page, errors = browser_page
    request_id = a_failed_delivery_and_a_waiting_queue

    loaded = page.goto(f"{web}/ops")
    assert "script-src 'self'" in loaded.headers["content-security-policy"]
    page.fill("#key", admin_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#dashboard:not([hidden])")
    summary = summary_with_workers(admin_api, {"decisions": 0, "webhooks": 1})
    assert page.is_hidden("#key-form") and page.is_visible("#queue-depth")

    assert summary["queue_depth"] >= 2  # ours; the suite's database is shared
    # the page refreshes every 3 s: it shows what the settled summary says by its next refresh
    # (read from here: a polled page function would be evaluated as a string, which the CSP forbids)
    wanted = (str(summary["queue_depth"]), "1", "0")
    selectors = ("#queue-depth", "#live-workers dd[data-queue=webhooks]",
                 "#live-workers dd[data-queue=decisions]")
    assert shown_by(page, selectors, wanted) == wanted
    assert admin_key not in page.url
    assert page.evaluate("sessionStorage.getItem('booking.ops.adminKey')") == admin_key

    page.reload()  # the key is typed once per tab
    page.wait_for_selector("#dashboard:not([hidden])")
    [failed] = [d for d in summary["failed_deliveries"] if d["request_id"] == request_id]
    row = f"#failed-deliveries tr[data-delivery-id='{failed['id']}']"
    assert "HTTP 500" in page.text_content(row)
    page.screenshot(path=str(tmp_path / "ops.png"), full_page=True)
    page.click(f"{row} button.replay")

    receiver.wait_for(4)
    replayed = settled(admin_api, request_id, "failed", attempts=4)
    assert [a["status_code"] for a in replayed["attempts"]] == [500, 500, 500, 500]
    page.wait_for_selector("#state:has-text('re-sent')")
    assert errors == []
    assert (tmp_path / "ops.png").stat().st_size > 0
