"""Small pieces the resources share: documented problems, ETags, If-Match."""

from __future__ import annotations

import re

from flask_smorest import Blueprint

from api.schemas import ENTITY_TAG, ProblemSchema
from booking.services.errors import BadRequest, IfMatch

PROBLEM_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad header)",
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this",
    404: "No such resource (or not visible to this key)",
    409: "Conflicts with the current state",
    412: "If-Match does not match the current version",
    413: "Body too large (over 64 KiB)",
    415: "Body is not application/json",
    422: "Invalid fields; `errors` names each one",
    429: "Rate limit or undecided-request cap reached; see Retry-After",
    503: "The database is unavailable for a moment; see Retry-After",
}


def document_problems(blueprint: Blueprint, *codes: int):
    """Declare the problem+json answers a view can give, for the OpenAPI document."""

    def decorate(view):
        for code in sorted({401, 429, 503, *codes}):
            view = blueprint.alt_response(code, schema=ProblemSchema,
                                          description=PROBLEM_DESCRIPTIONS[code],
                                          content_type="application/problem+json")(view)
        return view

    return decorate


def etag(version: int) -> str:
    return f'"{version}"'


# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, listed with commas.
LISTED_ENTITY_TAG = re.compile(rf"\s*{ENTITY_TAG}\s*")


def parse_if_match(header: str | None) -> IfMatch | None:
    """If-Match as the versions it names; None when absent or `*` (any version).
    400 only for a header that is no list of entity-tags at all: a well-formed tag
    this API never issued (`"xyz"`) simply matches nothing, which is a 412."""
    if header is None or header.strip() == "*":
        return None
    tags = header.split(",")
    parsed = [LISTED_ENTITY_TAG.fullmatch(tag) for tag in tags]
    if not header.strip() or not all(parsed):
        raise BadRequest("If-Match must be `*` or a list of entity-tags such as \"3\".",
                         {"If-Match": ["not a list of entity-tags"]})
    # Strong comparison (§13.1.1): a weak tag never matches.
    return IfMatch(frozenset(int(m.group(2)) for m in parsed
                             if not m.group(1) and m.group(2).isascii() and m.group(2).isdigit()
                             and len(m.group(2)) <= 9))
