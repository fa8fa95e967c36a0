"""The operators' summary (admin key) and the /ops page that shows it.

The page and its script and stylesheet are plain files served by the service itself
(no CDN) and need no key to load: the key is typed into the page, kept in the tab's
sessionStorage and sent by the script with each call to the API."""

from __future__ import annotations

from pathlib import Path

import flask
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import admin_only
from api.resources.common import document_problems
from booking.services import ops
from booking.services.ops import OpsSummaryOut

STATIC_FOLDER = Path(__file__).resolve().parent.parent / "static"
PAGE_PATH = "/ops"

blp = Blueprint("ops", __name__, description="What operators watch.")

# The page is no JSON operation: a plain Flask blueprint, nested the way Flask nests
# one, so that flask-smorest leaves it (and its static files) out of the OpenAPI document.
page = flask.Blueprint("page", __name__, static_folder=STATIC_FOLDER, static_url_path=f"{PAGE_PATH}/static")
flask.Blueprint.register_blueprint(blp, page)


@blp.route("/v1/ops/summary")
class Summary(MethodView):
    @admin_only
    @blp.response(200, OpsSummaryOut)
    @document_problems(blp, 403)
    def get(self):
        """Queue depth and oldest queued age, decisions per minute by status over the last
        15 minutes, decision latency p50/p95/p99 over the last 5 and 15 minutes, live
        worker processes by queue, the webhook backlog and the newest failed deliveries
        (admin key)."""
        return ops.ops_summary()


@page.get(PAGE_PATH)
def ops_page():
    response = page.send_static_file("ops.html")
    response.headers["Cache-Control"] = "no-cache"
    return response
