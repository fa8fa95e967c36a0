"""Domain errors, mapped to HTTP problems at the API edge."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra


class InvalidInput(ServiceError):
    status = 422
    title = "Unprocessable request"


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class PreconditionFailed(ServiceError):
    status = 412
    title = "Precondition failed"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"
