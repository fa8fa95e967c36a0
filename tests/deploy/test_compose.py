"""docker-compose.yml as compose itself reads it (Debian's docker-compose package; no
Docker engine needed for `config`)."""

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason=(
    "needs Debian's docker-compose package (apt-get install docker-compose; .ci/run installs it)"))


def compose_config(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("BOOKING_SECRET_KEY", "WORKER_PROCESSES", "WORKER_THREADS", "DECISION_POLL_MS",
                          "WEBHOOK_THREADS", "WEB_CONCURRENCY", "WEB_THREADS")}
    # An empty env file: a developer's .env must not decide what this test sees.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run([COMPOSE, "--env-file", str(empty), "-f", "docker-compose.yml", "config"],
                          cwd=REPO_ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_compose_config_is_valid_and_honours_the_procfile_settings(tmp_path):
    result = compose_config(tmp_path, BOOKING_SECRET_KEY="k", WORKER_PROCESSES="5", WORKER_THREADS="3",
                            DECISION_POLL_MS="25", WEBHOOK_THREADS="7", WEB_CONCURRENCY="4")

    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    worker = services["worker"]
    assert worker["command"][-4:] == ["--processes", "5", "--threads", "3"]
    assert worker["environment"]["dramatiq_worker_timeout"] == "25"
    assert services["webhooks"]["command"][-1] == "7"
    assert services["web"]["environment"]["WEB_CONCURRENCY"] == "4"


def test_compose_without_a_secret_key_says_how_to_make_one(tmp_path):
    result = compose_config(tmp_path)

    assert result.returncode != 0
    assert "BOOKING_SECRET_KEY" in result.stderr and ".env" in result.stderr
