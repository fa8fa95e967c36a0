"""Process-wide logging policy, applied by every process as it starts: gunicorn's
master configures it from gunicorn.conf.py (`logconfig_dict`) and its workers inherit
it; each dramatiq worker process takes it at process boot (booking.broker).

A line is one JSON object (python-json-logger): `ts` (UTC), `level`, `logger`, `msg`,
`pid`, `request_id` when the line is about a request (the X-Request-Id it came with or
was given: the HTTP request being served, or the booking request being decided or whose
webhook is being sent), any `extra=` fields, and an exception as one `exc_info` field,
so a traceback never splits a record across lines. `LOG_FORMAT=text` gives lines for
people instead; `LOG_LEVEL` (default INFO) sets how much is said.

HTTP client libraries log each request's full URL at INFO (httpx: `HTTP Request: POST
https://host/path?token=...`), and receivers put tokens in query strings. Our logs
promise never to carry query strings, so these loggers speak only at WARNING and
above, where they name no URLs.

This module is read by gunicorn's master before anything is monkey-patched: it imports
nothing of the app (see gunicorn.conf.py)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

URL_LOGGERS = ("httpx", "httpcore")
LOG_FORMATS = ("json", "text")

# The X-Request-Id that the current line is about: set by the web for the request it
# serves (api.request_ids), and by the workers around the work on one booking request.
# A greenlet (gunicorn's gevent worker) and a thread each have their own.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return REQUEST_ID.get()


@contextlib.contextmanager
def about_request(request_id: str | None) -> Iterator[None]:
    """Lines logged inside carry `request_id` (None: they carry none)."""
    token = REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def _request_id_of(record: logging.LogRecord) -> str | None:
    """The record's own (`extra={"request_id": ...}`), else the one in context."""
    return record.__dict__.get("request_id") or REQUEST_ID.get()


def _utc_timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(_LibraryJsonFormatter):
    """{"ts", "level", "logger", "msg", "pid", "request_id"?, extras..., "exc_info"?}."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s %(process)d",
                         rename_fields={"levelname": "level", "name": "logger", "message": "msg",
                                        "process": "pid"})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["ts"] = _utc_timestamp(record)  # first, for people reading raw lines
        super().add_fields(log_data, record, message_dict)
        request_id = _request_id_of(record)
        if request_id:
            log_data["request_id"] = request_id
        else:
            log_data.pop("request_id", None)  # an extra of None says nothing


class AccessJsonFormatter(JsonFormatter):
    """gunicorn's access lines: `msg` as access_log_format renders it, and its parts as
    fields. Never the query string, the referrer or any request header: they can carry
    whatever a client put there, secrets included."""

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args
        if not isinstance(atoms, dict):
            return
        log_data.update({"remote_addr": atoms.get("h"), "method": atoms.get("m"), "path": atoms.get("U"),
                         "status": _int_or_none(atoms.get("s")), "bytes": _int_or_none(atoms.get("b")),
                         "duration_ms": _int_or_none(atoms.get("M"))})
        request_id = atoms.get("{x-request-id}o")  # the web's answer says which request it was
        if request_id:
            log_data["request_id"] = request_id


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TextFormatter(logging.Formatter):
    """`2026-01-02 10:11:12,345 INFO workers.decide [pid] [request id]: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s")  # asctime: computed by format()

    def formatMessage(self, record: logging.LogRecord) -> str:
        head = f"{record.asctime} {record.levelname} {record.name} [{record.process}]"
        request_id = _request_id_of(record)
        return f"{head} [{request_id}]: {record.message}" if request_id else f"{head}: {record.message}"


def log_format() -> str:
    """LOG_FORMAT: `json` (the default) or `text`. Anything else fails the process's
    start, rather than logging in a format nobody asked for."""
    chosen = (os.environ.get("LOG_FORMAT") or "json").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    return chosen


def log_level() -> str:
    """LOG_LEVEL: a standard level name, default INFO."""
    level = (os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"LOG_LEVEL must be a level name (DEBUG, INFO, WARNING, ...), not {level!r}")
    return level


def make_formatter(chosen: str | None = None) -> logging.Formatter:
    """The formatter for `chosen` (json or text), by default the one LOG_FORMAT asks for."""
    return JsonFormatter() if (chosen or log_format()) == "json" else TextFormatter()


def make_access_formatter(chosen: str | None = None) -> logging.Formatter:
    """gunicorn.access's: JSON lines with the access line's parts as fields, or text."""
    return AccessJsonFormatter() if (chosen or log_format()) == "json" else TextFormatter()


QUERY_STRING = re.compile(r"\?[^\s'\"]*")


class WithoutQueryStrings(logging.Filter):
    """gunicorn.error quotes a malformed request line whole (`Invalid HTTP request line:
    'GET /v1/x?token=... HTTP/1.1'`): its query string goes before the line is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = QUERY_STRING.sub("?…", message), ()
        return True


def gunicorn_logconfig() -> dict:
    """gunicorn's `logconfig_dict`: the master's, its workers' and the app's lines to
    stderr, the access log to stdout, each in the format LOG_FORMAT asks for."""
    level = log_level()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": make_formatter}, "access": {"()": make_access_formatter}},
        "filters": {"no_query_strings": {"()": WithoutQueryStrings}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["default"], "propagate": False,
                               "filters": ["no_query_strings"]},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }


def configure_dramatiq_worker_process() -> None:
    """In a dramatiq worker process: its root handler (dramatiq's, writing to the pipe the
    main process copies to its stderr, one write per line) formats as LOG_FORMAT asks."""
    root = logging.getLogger()
    if not root.handlers:  # `dramatiq --skip-logging`: stderr is that pipe too
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = make_formatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    if os.environ.get("LOG_LEVEL"):
        root.setLevel(log_level())
    apply_process_policy()


def apply_process_policy() -> None:
    """What every process does, once its handlers are in place (idempotent): warnings
    and uncaught exceptions in threads become log lines (a traceback printed to stderr
    would be many lines, none of them JSON); the URL loggers are silenced."""
    logging.captureWarnings(True)
    threading.excepthook = _log_uncaught_in_thread
    silence_url_loggers()


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("booking").critical("uncaught exception in thread %s", thread,
                                          exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def silence_url_loggers() -> None:
    """Raise the HTTP client loggers to WARNING (idempotent)."""
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
