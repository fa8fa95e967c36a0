"""Small pieces the resources share: documented problems, ETags, If-Match."""

from __future__ import annotations

from flask_smorest import Blueprint

from api.schemas import ProblemSchema
from booking.services.errors import InvalidInput

PROBLEM_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad header)",
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this",
    404: "No such resource (or not visible to this key)",
    409: "Conflicts with the current state",
    412: "If-Match does not match the current version",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid fields; `errors` names each one",
    429: "Rate limit or undecided-request cap reached; see Retry-After",
}


def document_problems(blueprint: Blueprint, *codes: int):
    """Declare the problem+json answers a view can give, for the OpenAPI document."""

    def decorate(view):
        for code in sorted({401, 429, *codes}):
            view = blueprint.alt_response(code, schema=ProblemSchema,
                                          description=PROBLEM_DESCRIPTIONS[code],
                                          content_type="application/problem+json")(view)
        return view

    return decorate


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> int | None:
    """`"3"`, `W/"3"` or `3` as 3; `*` or absent as None (any version)."""
    if header is None or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise InvalidInput("If-Match must be an ETag this API issued.",
                           {"If-Match": ["not an ETag this API issued"]})
    return int(value)
