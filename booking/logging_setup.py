"""Process-wide logging policy, applied by every process as it starts (gunicorn
workers in gunicorn.conf.py; dramatiq workers as they import workers.deliver).

HTTP client libraries log each request's full URL at INFO (httpx: `HTTP Request: POST
https://host/path?token=...`), and receivers put tokens in query strings. Our logs
promise never to carry query strings, so these loggers speak only at WARNING and
above, where they name no URLs."""

from __future__ import annotations

import logging

URL_LOGGERS = ("httpx", "httpcore")


def silence_url_loggers() -> None:
    """Raise the HTTP client loggers to WARNING (idempotent)."""
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
