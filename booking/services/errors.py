"""Domain errors, mapped to HTTP problems at the API edge."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    title = "Bad Request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra


class InvalidInput(ServiceError):
    status = 422
    title = "Unprocessable Entity"


class NotFound(ServiceError):
    status = 404
    title = "Not Found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class PreconditionFailed(ServiceError):
    status = 412
    title = "Precondition Failed"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class TooManyRequests(ServiceError):
    status = 429
    title = "Too Many Requests"
    headers = {"Retry-After": "1"}
