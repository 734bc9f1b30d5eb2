"""Errors the serving stack reports to clients, each with its HTTP status (OpenAI's shape)."""

from __future__ import annotations


class ServeError(Exception):
    status = 500
    type = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.status,
            }
        }


class BadRequest(ServeError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(ServeError):
    status = 401
    type = "authentication_error"


class ModelNotFound(ServeError):
    status = 404
    type = "not_found_error"


class Overloaded(ServeError):
    """The prefill queue is at ``--max-queue``; retry after ``retry_after`` seconds."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServeError):
    """No live worker can take the request (or a policy rejected it)."""

    status = 503
    type = "service_unavailable"


class WorkerFailed(ServeError):
    """The worker serving the request died (the proxy is a gateway: 502)."""

    status = 502
    type = "worker_failed"
