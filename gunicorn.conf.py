"""gunicorn settings, from the environment.

gthread workers: a long-poll (?wait=N) holds a thread, not a whole process, so one
waiting client never blocks the others. Scale with WEB_CONCURRENCY (processes) and
WEB_THREADS."""

import os

from booking.config import get_settings

bind = f"{get_settings().bind_host}:{get_settings().port}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 60
graceful_timeout = 20
# Longer than clients' idle expiry (httpx 5 s, most load balancers 60 s): otherwise a client
# can reuse a connection at the instant the server closes it and see a reset.
keepalive = 75
accesslog = "-"
# method and path only: a query string can carry whatever a client put there, secrets included
access_log_format = '%(h)s %(p)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'  # %(p)s: the worker's <pid>
# gunicorn's control socket defaults to one path per user; several servers on one
# host (tests, benchmarks, `make run`) would fight over it, and we never use it.
control_socket_disable = True
# The largest request line gunicorn allows, so that every query the OpenAPI document
# permits (a 255-character customer_id percent-encodes to ~3 KB) reaches the app and
# gets a problem+json answer instead of gunicorn's HTML 414.
limit_request_line = 8190


def post_worker_init(worker):
    """Each worker, once the app is loaded (so no logging the app sets up undoes it):
    HTTP client loggers would print full URLs, query strings included."""
    from booking.logging_setup import silence_url_loggers

    silence_url_loggers()
