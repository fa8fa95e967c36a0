"""The Flask app factory: `gunicorn "api:create_app()"`."""

from __future__ import annotations

import logging
import os

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from api.auth import authenticate_request
from api.extensions import api
from api.limits import init_rate_limits
from api.problems import problem
from api.security import init_security, limit_json_depth
from booking.config import require_redis_url
from booking.secrets import application_key
from booking.services.errors import ServiceError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
JSON_METHODS = {"POST", "PATCH", "PUT"}


def default_config() -> dict:
    return {
        "API_TITLE": "Booking processor",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        "API_SPEC_OPTIONS": {
            "security": [{"bearerAuth": []}],
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
        "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
        "RATE_LIMIT_SUBMIT": os.environ.get("BOOKING_RATE_LIMIT_SUBMIT") or "50/second",
        "RATE_LIMIT_READ": os.environ.get("BOOKING_RATE_LIMIT_READ") or "200/second",
        "JSON_SORT_KEYS": False,
    }


def create_app(config: dict | None = None) -> Flask:
    application_key()  # fail at boot, not at the first key created, if it is missing
    app = Flask(__name__)
    app.config.update(default_config())
    app.config.update(config or {})
    register_extensions(app)
    register_blueprints(app)
    register_hooks(app)
    register_error_handlers(app)
    return app


def register_extensions(app: Flask) -> None:
    api.init_app(app)
    init_rate_limits(app, require_redis_url())


def register_blueprints(app: Flask) -> None:
    from api.resources import api_keys, booking_requests, bookings, health, providers, webhooks

    for module in (health, providers, bookings, booking_requests, api_keys, webhooks):
        api.register_blueprint(module.blp)


def register_hooks(app: Flask) -> None:
    init_security(app)
    app.before_request(require_json_body)
    app.before_request(limit_json_depth)
    app.before_request(authenticate_request)


def require_json_body():
    """A body, where there is one, must be JSON (415 otherwise)."""
    if request.method not in JSON_METHODS or not _has_body():
        return None
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        return problem(415, "Unsupported Media Type", "Send the body as application/json.",
                       {"Content-Type": ["must be application/json"]})
    return None


def _has_body() -> bool:
    return bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError):
        return problem(error.status, error.title, error.detail, error.errors,
                       headers=error.headers, **error.extra)

    @app.errorhandler(RecursionError)
    def too_deep(_error):
        return problem(400, "Bad Request", "The JSON body is nested too deeply.",
                       {"body": ["nested too deeply"]})

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "Something went wrong on our side.")
