"""X-Request-Id in and out: the client's, when it is sane, else one we make; echoed on
every answer (errors and 404s too), carried by every line logged while serving the
request, and kept on any booking request accepted by it (booking.services.requests),
so that the workers' and the webhook sender's lines about it carry it too.

Sane: 1 to 200 characters of letters, digits and `._:-`. Anything else (too long,
control characters, spaces, quotes) is ignored rather than cleaned: it would go into
log lines and response headers as given."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from booking.logging_setup import REQUEST_ID

HEADER = "X-Request-Id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def init_request_ids(app: Flask) -> None:
    """Take the client's X-Request-Id when sane, else make one; echo it."""
    app.before_request(take_request_id)
    app.after_request(echo_request_id)
    app.teardown_request(forget_request_id)


def request_id_from(given: str | None) -> str:
    """The client's id if it is sane; else a new one (32 hex digits)."""
    if given is not None and SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def take_request_id() -> None:
    g.request_id = request_id_from(request.headers.get(HEADER))
    g.request_id_token = REQUEST_ID.set(g.request_id)


def echo_request_id(response: Response) -> Response:
    if "request_id" not in g:  # an earlier hook answered before ours ran
        g.request_id = request_id_from(request.headers.get(HEADER))
    response.headers[HEADER] = g.request_id
    return response


def forget_request_id(_error: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is None:
        return
    try:
        REQUEST_ID.reset(token)
    except ValueError:  # torn down in another context (a streamed answer): just clear it
        REQUEST_ID.set(None)
