"""gunicorn settings, from the environment.

gevent workers (WEB_WORKER_CLASS, default `gevent`): a request that waits for a
decision (`?wait=N`, `Prefer: wait=N`) is a greenlet parked on an event, not a thread,
so a thousand waiting clients cost a thousand sockets and a little memory, and /healthz
and submits are served beside them. Each worker, before it loads the app, monkey-patches
the standard library (gunicorn's gevent worker does); redis-py, SQLAlchemy's pool and
psycopg (>= 3.1.14) then wait cooperatively. psycopg picks its way of waiting when it is
first imported, so this file, which the master reads before anything is patched, must
import nothing that imports psycopg, SQLAlchemy or the app (and the app is not preloaded).

Scale with WEB_CONCURRENCY (processes); WEB_WORKER_CONNECTIONS bounds the connections
one gevent worker serves at once, waiting ones included. WEB_THREADS applies to
WEB_WORKER_CLASS=gthread only, where every request, waiting ones included, holds one of
them."""

import os
import resource

from booking import logging_setup
from booking.config import get_settings

bind = f"{get_settings().bind_host}:{get_settings().port}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gevent")
# Per worker. Arrivals are not spread evenly between workers, so one worker alone must
# be able to hold every client expected to wait at once.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "4000"))
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 60
graceful_timeout = 20
# Longer than clients' idle expiry (httpx 5 s, most load balancers 60 s): otherwise a client
# can reuse a connection at the instant the server closes it and see a reset.
keepalive = 75
accesslog = "-"
# method and path only: a query string can carry whatever a client put there, secrets included;
# and the request's X-Request-Id, as the app answered it
access_log_format = '%(h)s %(p)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss %({x-request-id}o)s'  # %(p)s: <pid>
# Every line, the master's, the workers', the app's and the access log's, one JSON object
# (LOG_FORMAT=text: for people); see booking.logging_setup.
logconfig_dict = logging_setup.gunicorn_logconfig()
# gunicorn's control socket defaults to one path per user; several servers on one
# host (tests, benchmarks, `make run`) would fight over it, and we never use it.
control_socket_disable = True
# The largest request line gunicorn allows, so that every query the OpenAPI document
# permits (a 255-character customer_id percent-encodes to ~3 KB) reaches the app and
# gets a problem+json answer instead of gunicorn's HTML 414.
limit_request_line = 8190


def _allow_open_files(needed: int) -> None:
    """A socket per client, plus the worker's own to PostgreSQL and Redis (redis-py's pools
    grow with the requests in flight): raise the soft limit on open files (often 1,024)
    toward the hard one; workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard))


_allow_open_files(2 * worker_connections + 1024)


def on_starting(server):
    """The master, before it forks a worker: warnings and threads' uncaught exceptions
    are logged as lines (the workers inherit it)."""
    logging_setup.apply_process_policy()


def child_exit(server, worker):
    """The master, when a worker has exited: its live gauges (prometheus_client's
    multiprocess mode, see booking.metrics) go with it; its counters stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess  # imports nothing of the app (see above)

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Each worker, once the app is loaded (so no logging the app sets up undoes it):
    HTTP client loggers would print full URLs, query strings included."""
    from booking.logging_setup import silence_url_loggers

    silence_url_loggers()
    if type(worker).__module__ == "gunicorn.workers.ggevent":
        _close_idle_connections_when_stopping(worker)


def _close_idle_connections_when_stopping(worker) -> None:
    """gthread closes idle keep-alive connections when told to stop; gunicorn's gevent
    worker waits for them as for requests in flight, so one connected client (a browser,
    a pooled HTTP client) held every stop for graceful_timeout. Here, once the worker
    stops, a connection waiting for its next request ends as its keep-alive timeout
    would end it (closed, no answer); requests in flight keep their grace."""
    import contextlib

    import gevent

    idle = {}  # greenlet -> the keep-alive timeout it waits under
    keepalive_timeout = worker.timeout_ctx  # gevent.Timeout(keepalive, False): silent

    @contextlib.contextmanager
    def awaiting_next_request():
        timeout, current = keepalive_timeout(), gevent.getcurrent()
        idle[current] = timeout
        try:
            with timeout:
                yield
        finally:
            idle.pop(current, None)

    def end_idle_waits_when_stopping():
        while worker.alive:
            gevent.sleep(0.2)
        while True:  # until the worker exits: connections may turn idle after the stop
            for waiting in list(idle):
                gevent.kill(waiting, idle.pop(waiting))  # fires its timeout now
            gevent.sleep(0.2)

    worker.timeout_ctx = awaiting_next_request
    gevent.spawn(end_idle_waits_when_stopping)
