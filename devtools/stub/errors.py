"""The stub's answers other than success, in Notify's v2 error shape."""

from __future__ import annotations

from typing import Any

_ERROR_NAMES = {400: "BadRequestError", 401: "AuthError", 403: "AuthError", 404: "NoResultFound"}


class StubError(Exception):
    """An answer other than success, in Notify's v2 error shape."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    def body(self) -> dict[str, Any]:
        """The JSON body Notify would send."""
        return {
            "errors": [{"error": self.error, "message": self.message}],
            "status_code": self.status,
        }


def injected_failure(status: int) -> StubError:
    """The error a configured fault answers with; a 429 looks like Notify's rate limit."""
    if status == 429:
        message = "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds"
        return StubError(429, "RateLimitError", message)
    if status >= 500:
        return StubError(status, "Exception", "Internal server error")
    return StubError(status, _ERROR_NAMES.get(status, "BadRequestError"), "stub failure injected")
