"""X-Request-Id in and out (issue 13: being built)."""

from flask import Flask


def init_request_ids(app: Flask) -> None:
    """Take the client's X-Request-Id when sane, else make one; echo it."""
