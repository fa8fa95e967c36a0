"""Domain errors, mapped to HTTP problems at the API edge."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    status = 400
    title = "Bad Request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra


class BadRequest(ServiceError):
    status = 400
    title = "Bad Request"


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


@dataclass(frozen=True)
class IfMatch:
    """The versions an If-Match header named (it holds if the current one is among them)."""

    versions: frozenset[int]

    def holds_for(self, version: int) -> bool:
        return version in self.versions

    def check(self, what: str, version: int) -> None:
        """412 unless `version` is one the client named."""
        if not self.holds_for(version):
            raise PreconditionFailed(f"The {what} is at version {version}; If-Match names another.")
