"""HTTP request metrics (issue 13: being built)."""

from flask import Flask


def init_http_metrics(app: Flask) -> None:
    """Count and time every request."""
