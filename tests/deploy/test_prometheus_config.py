"""deploy/: the sample Prometheus configuration and alert rules, as Prometheus's own
promtool reads them (Debian's prometheus package; no Prometheus server is run)."""

import shutil
import subprocess
import textwrap

import pytest
import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason=(
    "needs promtool from Debian's prometheus package (apt-get install prometheus; .ci/run installs it)"))


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def deployed(tmp_path):
    """deploy/ as an operator installs it: the two files, and the admin key in the
    secrets file the scrape config names (promtool checks that it exists)."""
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "booking-admin-key").write_text("bk_example\n")
    return tmp_path


def test_the_scrape_config_is_valid_and_scrapes_metrics_with_a_bearer_key_from_a_file(deployed):
    checked = promtool("check", "config", str(deployed / "prometheus.yml"))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout
    [job] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": "secrets/booking-admin-key"}


def test_the_alert_rules_are_valid():
    checked = promtool("check", "rules", str(DEPLOY / "alerts.yml"))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 rules found" in checked.stdout


# promtool's rule unit tests: each alert fires on the series it is about, and only then.
RULE_TESTS = """
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # two web hosts report the same PostgreSQL-derived age; it passes a minute at 3m
      - series: booking_queue_oldest_age_seconds{{instance="web-1:8000"}}
        values: 0 5 30 90 150 210 270 330
      - series: booking_queue_oldest_age_seconds{{instance="web-2:8000"}}
        values: 0 5 30 90 150 210 270 330
      # one delivery gives up at 4m; none are failing before
      - series: booking_webhook_deliveries_total{{outcome="failed", instance="web-1:8000"}}
        values: 0 0 0 0 1 1 1 1 1 1 1 1
      - series: booking_webhook_deliveries_total{{outcome="delivered", instance="web-1:8000"}}
        values: 0+10x12
    alert_rule_test:
      - eval_time: 4m
        alertname: BookingQueueStalled
        exp_alerts: []
      - eval_time: 5m
        alertname: BookingQueueStalled
        exp_alerts:
          - exp_labels: {{severity: page}}
            exp_annotations:
              summary: Booking requests are waiting over a minute to be decided
              description: >-
                The oldest queued booking request has waited 3m 30s.
                Look at /ops or `booking status`: are decision workers alive (live workers by
                queue), and is the queue depth growing?
      - eval_time: 3m
        alertname: BookingWebhookDeliveriesFailing
        exp_alerts: []
      - eval_time: 8m
        alertname: BookingWebhookDeliveriesFailing
        exp_alerts: []  # pending: failing for 4 of the 5 minutes it must
      - eval_time: 10m
        alertname: BookingWebhookDeliveriesFailing
        exp_alerts:
          - exp_labels: {{severity: ticket}}
            exp_annotations:
              summary: Webhook deliveries are failing after all their retries
              description: >-
                Webhook deliveries are giving up at 4.0 per hour
                (over the last 15 minutes). The /ops page lists the newest failed deliveries
                with their receiver and last answer, and replays one once it is fixed.
"""


def test_each_alert_fires_on_its_series(tmp_path):
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(textwrap.dedent(RULE_TESTS.format(alerts=DEPLOY / "alerts.yml")))

    tested = promtool("test", "rules", str(tests))

    assert tested.returncode == 0, tested.stdout + tested.stderr
