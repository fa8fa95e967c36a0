"""Response hardening for a JSON API, CORS for listed origins only, and a bound on
JSON nesting. No credentials ever cross origins: the API authenticates by bearer
key, never by cookie, so wildcard-with-credentials cannot arise."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from api.problems import problem
from booking.config import get_settings

MAX_JSON_DEPTH = 32
CORS_METHODS = "GET, POST, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-Match, Prefer, X-Request-Id"
EXPOSED_HEADERS = ("Location, ETag, Retry-After, RateLimit-Limit, RateLimit-Remaining, "
                   "RateLimit-Reset, X-Request-Id")
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The /ops page (api/resources/ops.py): its own script and stylesheet, calls to this
# API, nothing inline, nothing from elsewhere; no form may send the key anywhere.
OPS_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                   "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def init_security(app: Flask) -> None:
    app.config.setdefault("CORS_ORIGINS", set(get_settings().cors_origins))
    app.before_request(answer_preflight)
    app.after_request(harden)


def answer_preflight():
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return Response(status=204)
    return None


def harden(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    if request.path.startswith("/v1/"):
        headers["Cache-Control"] = "no-store"
    if request.path == "/ops" or request.path.startswith("/ops/"):
        headers["Content-Security-Policy"] = OPS_PAGE_POLICY
    elif not request.path.startswith("/docs"):
        headers["Content-Security-Policy"] = API_POLICY
    _allow_listed_origin(response)
    return response


def _allow_listed_origin(response: Response) -> None:
    origin = request.headers.get("Origin")
    response.vary.add("Origin")
    if origin and origin in current_app.config["CORS_ORIGINS"]:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"


def limit_json_depth():
    """400 for JSON nested deeper than MAX_JSON_DEPTH, before any parser recurses."""
    if request.mimetype != "application/json" or not request.content_length:
        return None
    depth = deepest_nesting(request.get_data(cache=True))
    if depth > MAX_JSON_DEPTH:
        return problem(400, "Bad Request", f"JSON may nest at most {MAX_JSON_DEPTH} levels.",
                       {"body": [f"nested {depth} levels deep"]})
    return None


def deepest_nesting(raw: bytes) -> int:
    """The deepest [ / { nesting in a JSON text, skipping strings; no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest

