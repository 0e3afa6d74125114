"""The stub's answers other than success, in Notify's v2 error shape."""

from __future__ import annotations

from typing import Any

_ERROR_NAMES = {400: "BadRequestError", 401: "AuthError", 403: "AuthError", 404: "NoResultFound"}


class StubError(Exception):
    """An answer other than success, in Notify's v2 error shape."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Notify would send."""
        return {
            "errors": [{"error": self.error, "message": self.message}],
            "status_code": self.status,
        }


class HangUp(Exception):
    """No answer at all: the connection is dropped, as by a server that went down."""


def rate_limited(limit: int, window_seconds: float, retry_after: int | None) -> StubError:
    """Notify's answer to a key over its rate limit, with Retry-After when one is configured."""
    message = (
        f"Exceeded rate limit for key type LIVE of {limit} requests per {window_seconds:g} seconds"
    )
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return StubError(429, "RateLimitError", message, headers)


def over_daily_limit(limit: int) -> StubError:
    """Notify's answer to a service that has sent its daily limit."""
    return StubError(429, "TooManyRequestsError", f"Exceeded send limits ({limit}) for today")


def key_revoked() -> StubError:
    """Notify's answer to a token signed with a revoked key."""
    return StubError(403, "AuthError", "Invalid token: API key revoked")


def server_error() -> StubError:
    """Notify's answer when it fails inside."""
    return StubError(500, "Exception", "Internal server error")


def injected_failure(status: int) -> StubError:
    """The error a configured fault answers with; a 429 looks like Notify's rate limit."""
    if status == 429:
        message = "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds"
        return StubError(429, "RateLimitError", message)
    if status >= 500:
        return StubError(status, "Exception", "Internal server error")
    return StubError(status, _ERROR_NAMES.get(status, "BadRequestError"), "stub failure injected")
