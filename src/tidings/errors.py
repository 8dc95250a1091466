"""The one error base of the server.

    AppError                      an expected failure: rendered as 4xx, never 500
     ├─ ValidationFailed           malformed input
     ├─ Unauthorized / Forbidden   missing or wrong credentials / not allowed
     ├─ NotFound                   no such thing (or not yours: the same answer)
     ├─ Conflict                   state does not allow it
     └─ RateLimited                too many attempts; retry after `retry_after` seconds

Each surface maps AppError to its own envelope: the core API renders
`{"error": {"code", "message", "details"}}`, the CLI prints and exits non-zero.
"""

from __future__ import annotations

from typing import Any

from tidings.protocol.codes import ErrorCode


class AppError(Exception):
    status: int = 400
    default_code: ErrorCode = ErrorCode.VALIDATION_FAILED

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        if status is not None:
            self.status = status
        self.details: dict[str, Any] = details or {}

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}

    def retry_headers(self) -> dict[str, str]:
        """`Retry-After` when the failure knows when to come back (`details["retry_after"]`,
        seconds), for every surface's answer."""
        retry_after = self.details.get("retry_after")
        return {"Retry-After": str(retry_after)} if retry_after else {}


class ValidationFailed(AppError):
    status = 400
    default_code = ErrorCode.VALIDATION_FAILED


class Unauthorized(AppError):
    status = 401
    default_code = ErrorCode.UNAUTHORIZED


class Forbidden(AppError):
    status = 403
    default_code = ErrorCode.FORBIDDEN


class NotFound(AppError):
    status = 404
    default_code = ErrorCode.NOT_FOUND


class Conflict(AppError):
    status = 409
    default_code = ErrorCode.CONFLICT


class PayloadTooLarge(AppError):
    status = 413
    default_code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimited(AppError):
    status = 429
    default_code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        details = {"retry_after": retry_after, **kwargs.pop("details", {})}
        super().__init__(message, details=details, **kwargs)
        self.retry_after = retry_after
