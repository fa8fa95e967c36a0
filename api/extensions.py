"""Extensions, created unbound here and bound in the app factory."""

from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from api.problems import flatten_errors, problem


class ProblemApi(Api):
    """flask-smorest, answering every HTTP error as application/problem+json."""

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages")
        errors = flatten_errors(messages) if messages else None
        detail = data.get("message") or (
            "Some fields are invalid; see errors." if errors else error.description)
        return problem(error.code or 500, error.name, detail, errors, data.get("headers"))


api = ProblemApi()
