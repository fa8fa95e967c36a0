"""Operations endpoints (no auth): liveness and readiness."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from api.problems import problem
from api.schemas import HealthOut, ProblemSchema
from booking import notify
from booking.db import get_engine

blp = Blueprint("health", __name__, description="Liveness and readiness (no API key).")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthOut)
    @blp.doc(security=[])
    def get(self):
        """The process is alive."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, HealthOut)
    @blp.alt_response(503, schema=ProblemSchema, content_type="application/problem+json",
                      description="PostgreSQL or Redis is unreachable")
    @blp.doc(security=[])
    def get(self):
        """PostgreSQL and Redis are reachable (503 otherwise)."""
        checks = {"postgres": _check_postgres(), "redis": _check_redis()}
        if all(state == "ok" for state in checks.values()):
            return {"status": "ready", "checks": checks}
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
