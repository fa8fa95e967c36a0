"""Log lines: one JSON object per record (exceptions and newlines included), with the
request id the line is about; LOG_FORMAT=text for people; gunicorn's access lines as
fields, never the query string."""

from __future__ import annotations

import io
import json
import logging
import re
import runpy
from pathlib import Path

import pytest
from gunicorn.glogging import SafeAtoms

from booking.logging_setup import about_request, log_format, make_access_formatter, make_formatter

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def written():
    """(logger, what it wrote) with a formatter of the test's choosing."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(f"test.log_format.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def use(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
        handler.setFormatter(formatter)
        return logger, stream

    yield use
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_record_is_one_json_object_on_one_line(written):
    log, stream = written(make_formatter("json"))

    log.warning("first line\nsecond line with a \"quote\" and %s", "an argument", extra={"kind": "create"})

    [line] = lines(stream)
    record = json.loads(line)
    assert record["msg"] == 'first line\nsecond line with a "quote" and an argument'
    assert (record["level"], record["logger"], record["kind"]) == ("WARNING", log.name, "create")
    assert record["ts"].endswith("Z") and isinstance(record["pid"], int)
    assert list(record)[:4] == ["ts", "level", "logger", "msg"]
    assert "request_id" not in record


def test_an_exception_is_a_field_of_the_same_line(written):
    log, stream = written(make_formatter("json"))

    try:
        raise ValueError("the cause\nover two lines")
    except ValueError:
        log.exception("it failed")

    [line] = lines(stream)
    record = json.loads(line)
    assert record["msg"] == "it failed" and record["level"] == "ERROR"
    assert record["exc_info"].startswith("Traceback (most recent call last):")
    assert "ValueError: the cause\nover two lines" in record["exc_info"]


def test_a_line_carries_the_request_id_it_is_about(written):
    log, stream = written(make_formatter("json"))

    with about_request("req-in-context"):
        log.info("in context")
        log.info("named", extra={"request_id": "req-named"})
    log.info("after")
    log.info("named none", extra={"request_id": None})

    assert [json.loads(line).get("request_id") for line in lines(stream)] == [
        "req-in-context", "req-named", None, None]


def test_text_is_for_people(written):
    log, stream = written(make_formatter("text"))

    with about_request("req-1"):
        log.info("decided %s", "it")
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("broke")

    first, second, *traceback = lines(stream)
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO {re.escape(log.name)} \[\d+\] "
                        r"\[req-1\]: decided it", first)
    assert second.endswith(": broke") and "[req-" not in second
    assert traceback[0] == "Traceback (most recent call last):" and traceback[-1] == "KeyError: 'k'"
    with pytest.raises(ValueError):
        json.loads(first)


def test_log_format_comes_from_the_environment(setting_env):
    setting_env("LOG_FORMAT")
    assert log_format() == "json"  # the default
    setting_env("LOG_FORMAT", "TEXT")
    assert log_format() == "text" and not isinstance(make_formatter(), type(make_formatter("json")))
    setting_env("LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        make_formatter()


def access_record(path: str, query: str) -> logging.LogRecord:
    """An access line as gunicorn logs it: access_log_format % its atoms."""
    config = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    atoms = SafeAtoms({"h": "10.0.0.1", "m": "GET", "U": path, "q": query, "H": "HTTP/1.1",
                       "r": f"GET {path}?{query} HTTP/1.1", "s": "200", "b": "512", "M": 12, "L": "0.012000",
                       "p": "<42>", "{x-request-id}o": "req-7", "{authorization}i": "Bearer bk_secret",
                       "f": f"https://example.com/?{query}"})
    return logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, config["access_log_format"],
                             (atoms,), None)


def test_gunicorn_access_lines_are_fields_without_the_query_string():
    record = access_record("/v1/bookings", "cursor=token_secret")

    line = make_access_formatter("json").format(record)

    fields = json.loads(line)
    assert {name: fields[name] for name in ("method", "path", "status", "bytes", "duration_ms",
                                            "request_id", "remote_addr")} == {
        "method": "GET", "path": "/v1/bookings", "status": 200, "bytes": 512, "duration_ms": 12,
        "request_id": "req-7", "remote_addr": "10.0.0.1"}
    assert fields["msg"].startswith('10.0.0.1 <42> "GET /v1/bookings HTTP/1.1" 200')
    assert "token_secret" not in line and "bk_secret" not in line
    assert "req-7" in make_access_formatter("text").format(access_record("/v1/bookings", ""))


def test_gunicorn_error_lines_lose_the_query_string_of_a_malformed_request_line():
    from booking.logging_setup import WithoutQueryStrings

    # what gunicorn.error writes for a request line its parser refuses
    line = "GET /v1/bookings?token=SECRET\x01 HTTP/1.1"
    record = logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1,
                               "Invalid HTTP request line: %r", (line,), None)
    assert WithoutQueryStrings().filter(record)
    assert "SECRET" not in record.getMessage()
    assert record.getMessage().startswith("Invalid HTTP request line: 'GET /v1/bookings?")
