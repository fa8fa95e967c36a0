"""GET /metrics: what Prometheus scrapes (see booking.metrics)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticate_bearer, current_key
from api.resources.common import document_problems
from booking import metrics
from booking.services.errors import Forbidden

blp = Blueprint("metrics", __name__, description="Prometheus metrics (an admin key, unless public).")


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(200, {"type": "string"}, content_type="text/plain",
                  description="Prometheus's text exposition format")
    @document_problems(blp, 403)
    def get(self):
        """Prometheus metrics of every web and worker process (an admin key, unless public).

        The counters and histograms of every process, summed, and the queue gauges read
        from PostgreSQL. Needs an admin key, unless the service runs with
        BOOKING_METRICS_PUBLIC=1."""
        refusal = None if metrics.metrics_public() else refuse_unless_admin()
        if refusal is not None:
            return refusal
        return Response(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def refuse_unless_admin():
    """None for an admin key within its budget, else the problem to answer (401, 429;
    403 for a client key). api.auth authenticates /v1 only; this path is outside it, as
    Prometheus's default metrics path."""
    refusal = authenticate_bearer()
    if refusal is None and not current_key().is_admin:
        raise Forbidden("This needs an admin API key.")
    return refusal
