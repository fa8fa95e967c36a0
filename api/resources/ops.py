"""The operators' summary and page (issue 13: being built)."""

from flask_smorest import Blueprint

blp = Blueprint("ops", __name__, description="What operators watch.")
