"""Bearer API keys on every /v1 route; roles decide what a key may touch."""

from __future__ import annotations

import functools

from flask import g, request

from api.limits import over_budget, spend_budget
from api.problems import problem
from booking.services import keys
from booking.services.errors import Forbidden
from models import ApiKey

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="booking"'}


def authenticate_request():
    """before_request hook: a /v1 request needs a valid, unrevoked key, within its budget.
    One Redis round trip spends the budget and reads the keys' epoch, which says
    whether this process's cached copy of the key may be trusted (then no query)."""
    if not request.path.startswith("/v1/") or request.routing_exception is not None:
        return None  # unknown paths and methods answer 404/405, keyed or not
    return authenticate_bearer()


def authenticate_bearer():
    """The request's key as `current_key()`, or the problem to answer (401, 429)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return unauthorized()
    digest = keys.hash_key(token)
    spent = spend_budget(digest)
    api_key = keys.authenticate(digest, spent.keys_epoch if spent else None)
    if api_key is None:
        return unauthorized()
    g.api_key = api_key
    return over_budget(spent)


def unauthorized():
    return problem(401, "Unauthorized", "A valid API key is required: Authorization: Bearer <key>.",
                   headers=UNAUTHORIZED_HEADERS)


def current_key() -> ApiKey:
    return g.api_key


def admin_only(view):
    """Only admin keys may call this view."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_key().is_admin:
            raise Forbidden("This needs an admin API key.")
        return view(*args, **kwargs)

    return wrapper
