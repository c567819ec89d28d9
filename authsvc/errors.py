"""Errors the auth service raises; each is a portcullis APIError so one handler shapes it."""

from __future__ import annotations

from typing import Any

from portcullis.errors import APIError


class NotFound(APIError):
    def __init__(self, what: str) -> None:
        super().__init__(404, "Not found", f"{what} not found")


class Conflict(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(409, "Conflict", description)


class Invalid(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(400, "Invalid request", description)


class Forbidden(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(403, "Forbidden", description)


class Unauthorized(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(401, "Unauthorized", description)


class Denial(APIError):
    """A negative decision: SparkPost's shape plus a stable `reason` and a cache `ttl`."""

    def __init__(self, status: int, reason: str, description: str, ttl: int) -> None:
        message = {400: "Invalid request", 401: "Unauthorized", 403: "Forbidden"}.get(
            status, "Unavailable")
        super().__init__(status, message, description)
        self.reason = reason
        self.ttl = ttl
        self.failed_attempts: int | None = None
        self.key_id: str | None = None  # a valid credential refused (403): which one
        self.vary: tuple[str, ...] = ()   # inputs beyond the question's fixed parts it used
        self.key_seq: int | None = None   # with key_id: the key's log seq as read

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"errors": self.entries, "reason": self.reason, "ttl": self.ttl}
        if self.failed_attempts is not None:
            out["failed_attempts"] = self.failed_attempts
        if self.key_id is not None:
            out["key_id"] = self.key_id
        if self.key_seq is not None:
            out["key_seq"] = self.key_seq
        if self.vary:
            out["vary"] = list(self.vary)
        return out
