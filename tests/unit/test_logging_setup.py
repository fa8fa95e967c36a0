"""Every process silences the loggers that print full URLs (query strings included)."""

import logging
import runpy
from pathlib import Path

import pytest

from booking.logging_setup import URL_LOGGERS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chatty_url_loggers():
    """The HTTP client loggers as a fresh process has them (NOTSET: INFO under dramatiq)."""
    saved = {name: logging.getLogger(name).level for name in URL_LOGGERS}
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_each_gunicorn_worker_silences_the_url_loggers(chatty_url_loggers):
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))

    config["post_worker_init"](worker=None)

    assert {logging.getLogger(name).level for name in URL_LOGGERS} == {logging.WARNING}
