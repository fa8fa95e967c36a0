"""Operations endpoints (no auth): liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.problems import problem
from booking import notify
from booking.db import get_engine

blp = Blueprint("health", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz():
    checks = {"postgres": _check_postgres(), "redis": _check_redis()}
    if all(ok == "ok" for ok in checks.values()):
        return jsonify(status="ready", checks=checks)
    return problem(503, "Service Unavailable", "A dependency is unreachable.", checks=checks)


def _check_postgres() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # noqa: BLE001 - readiness reports, never raises
        return f"unreachable: {type(error).__name__}"


def _check_redis() -> str:
    try:
        notify.redis_client().ping()
        return "ok"
    except Exception as error:  # noqa: BLE001
        return f"unreachable: {type(error).__name__}"
