"""GET /metrics (issue 13: being built)."""

from flask_smorest import Blueprint

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")
