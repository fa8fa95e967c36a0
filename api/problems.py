"""RFC 9457 problem details: every error the API answers looks like this."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, json

PROBLEM_MIMETYPE = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None,
            errors: Mapping[str, list[str]] | None = None, headers: Mapping[str, str] | None = None,
            **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = dict(errors)
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    response.headers.update(headers or {})
    return response


def flatten_errors(messages: object, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow's nested {location: {field: [...]}} as {"field.sub": [...]}.
    The location level ("json", "query", "headers") is dropped: field names say enough."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if not prefix and key in ("json", "query", "headers", "path", "view_args"):
                name = ""
            elif key == "_schema":
                name = prefix or "body"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat.setdefault(prefix or "body", []).extend(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            flat.update(flatten_errors(value, f"{prefix}[{index}]"))
    else:
        flat.setdefault(prefix or "body", []).append(str(messages))
    return flat
