"""Domain errors: raised deep, turned into SparkPost's error shape by app.py alone."""

from __future__ import annotations

from portcullis.errors import APIError


class InvalidRequest(APIError):
    def __init__(self, message: str, description: str | None = None,
                 extra: list[dict[str, str]] | None = None) -> None:
        super().__init__(400, message, description, "1400", extra=extra)


class NotFound(APIError):
    def __init__(self, message: str = "Resource could not be found",
                 description: str | None = None) -> None:
        super().__init__(404, message, description, "1600")


class ComplianceLocked(APIError):
    def __init__(self, action: str) -> None:
        super().__init__(403, f"Recipient could not be {action} - Compliance",
                         "Entries added for compliance reasons cannot be changed through the API",
                         "1403")


class UnsupportedMediaType(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(415, "Unsupported Media Type", description, "1415")


class Unprocessable(APIError):
    def __init__(self, message: str, description: str | None = None) -> None:
        super().__init__(422, message, description, "1422")


def invalid_entries(problems: list[tuple[str, str]]) -> InvalidRequest:
    """One error entry per bad entry: (where, why)."""
    first, *rest = problems
    extra = [{"message": why, "code": "1400", "description": f"{where}: {why}"}
             for where, why in rest]
    return InvalidRequest(first[1], f"{first[0]}: {first[1]}", extra=extra)


class Conflict(APIError):
    def __init__(self, message: str, description: str | None = None) -> None:
        super().__init__(409, message, description, "1409")


class Unavailable(APIError):
    def __init__(self) -> None:
        super().__init__(503, "Service Unavailable",
                         "The suppression store cannot be reached; retry shortly", "1503")
