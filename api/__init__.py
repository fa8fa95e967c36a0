"""The Flask app factory: `gunicorn "api:create_app()"`."""

from __future__ import annotations

import logging

import psycopg
import sqlalchemy.exc
from flask import Flask, request
from werkzeug.exceptions import HTTPException

from api.auth import authenticate_request
from api.extensions import api
from api.http_metrics import init_http_metrics
from api.limits import init_rate_limits
from api.problems import PROBLEM_MIMETYPE, problem
from api.request_ids import init_request_ids
from api.schemas import WHOLE_SCHEMA_RULES, ProblemSchema
from api.security import init_security, limit_json_depth
from booking.config import get_settings, require_redis_url
from booking.secrets import application_key
from booking.services.errors import ServiceError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
JSON_METHODS = {"POST", "PATCH", "PUT"}

# PostgreSQL unreachable (or, the same family of errors, refusing for the moment: a lock
# or statement timeout), however it surfaces: through SQLAlchemy (ORM and Core) and its
# pool (refused connection, checkout timeout), or through the bare driver on the hot
# paths (booking.db.driver_autocommit). Transient, so 503 with Retry-After: the same
# request will do once the database is back.
DATABASE_UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                        sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError,
                        psycopg.OperationalError, psycopg.InterfaceError)
DATABASE_RETRY_AFTER_S = 2


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
        "RATE_LIMIT_SUBMIT": get_settings().rate_limit_submit,
        "RATE_LIMIT_READ": get_settings().rate_limit_read,
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
    # Every error is answered as problem+json (register_error_handlers), those no view
    # lists too (a 500, a 405): the document's fallback response says so, not JSON.
    api.spec.components.response("DEFAULT_ERROR", {
        "description": "Any other error",
        "content": {PROBLEM_MIMETYPE: {"schema": ProblemSchema}}}, lazy=True)
    init_rate_limits(app, require_redis_url())


def register_blueprints(app: Flask) -> None:
    from api.resources import (
        api_keys,
        booking_requests,
        bookings,
        date_overrides,
        health,
        holds,
        metrics,
        ops,
        providers,
        services,
        webhooks,
    )

    for schema, rules in WHOLE_SCHEMA_RULES.items():  # before any view refers to them
        api.spec.components.schema(schema.__name__, rules, schema=schema)
    for module in (health, providers, date_overrides, services, bookings, holds, booking_requests, api_keys,
                   webhooks, ops, metrics):
        api.register_blueprint(module.blp)


def register_hooks(app: Flask) -> None:
    init_request_ids(app)  # first: every later hook and log line knows the request's id
    init_http_metrics(app)
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
    app.register_error_handler(ServiceError, service_error)
    app.register_error_handler(RecursionError, too_deep)
    app.register_error_handler(HTTPException, http_error)
    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, database_unavailable)
    app.register_error_handler(Exception, unexpected)


def service_error(error: ServiceError):
    return problem(error.status, error.title, error.detail, error.errors,
                   headers=error.headers, **error.extra)


def too_deep(_error):
    return problem(400, "Bad Request", "The JSON body is nested too deeply.",
                   {"body": ["nested too deeply"]})


def http_error(error: HTTPException):
    """werkzeug's errors as problems, keeping the headers they carry (405's Allow)."""
    response = api.handle_http_exception(error)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers.setdefault(name, value)
    return response


def database_unavailable(error: Exception):
    # One line, no traceback: an outage fails every request the same way, and a
    # traceback each would bury the one line that says what happened.
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                _first_line(error))
    return problem(503, "Service Unavailable", "The database is unreachable; retry shortly.",
                   headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


def _first_line(error: Exception) -> str:
    """The driver's error (SQLAlchemy wraps it in `orig`) as `Class: first line`."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def unexpected(error: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "Internal Server Error", "Something went wrong on our side.")
