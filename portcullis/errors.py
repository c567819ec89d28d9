"""SparkPost's error shape, the only one any client of ours ever sees.

`{"errors": [{"message": ..., "code": "1400", "description": ...}]}`; `code` is a string.
Domain code raises `APIError` (or a subclass) deep down; each app turns it into a response in
one place with `error_response`.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

logger = logging.getLogger("portcullis")

# Generic codes by status, in SparkPost's style (a string of digits).
DEFAULT_CODES = {
    400: "1400",
    401: "1401",
    403: "1403",
    404: "1404",
    405: "1405",
    409: "1409",
    413: "1413",
    415: "1415",
    420: "1420",
    422: "1422",
    429: "1429",
    500: "1500",
    502: "1502",
    503: "1503",
    504: "1504",
}


class APIError(Exception):
    """An error a client may see: a status and one or more SparkPost error entries."""

    def __init__(
        self,
        status: int,
        message: str,
        description: str | None = None,
        code: str | None = None,
        *,
        extra: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        entry = {
            "message": message,
            "code": code or DEFAULT_CODES.get(status, f"1{status}"),
            "description": description or message,
        }
        self.entries = [entry, *(extra or [])]

    def body(self) -> dict[str, Any]:
        return {"errors": self.entries}


def error_body(status: int, message: str, description: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return APIError(status, message, description, code).body()


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTPException (404 for unknown paths, 405) in our shape."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "Error"
    headers = getattr(exc, "headers", None)
    return error_response(APIError(status, str(detail)), headers=headers)


def is_unavailable(exc: BaseException) -> bool:
    """A fault of the database or the network (PostgreSQL restarting, a connection lost),
    not of the request: the client should retry, so it is a 503, never a 500."""
    import asyncpg

    return isinstance(exc, (asyncpg.PostgresConnectionError,
                            asyncpg.exceptions.OperatorInterventionError,
                            asyncpg.InterfaceError, asyncpg.InternalClientError,
                            OSError, TimeoutError))


def is_timeout(exc: BaseException) -> bool:
    """A statement PostgreSQL cancelled at the service's statement_timeout."""
    import asyncpg

    return isinstance(exc, asyncpg.QueryCanceledError)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    if is_timeout(exc):
        logger.warning("statement timeout: %s %s", request.method, request.url.path)
        return error_response(APIError(503, "Query timeout",
                                       "The query took longer than this service allows; "
                                       "narrow it, or retry shortly"),
                              headers={"Retry-After": "1"})
    if is_unavailable(exc):
        logger.warning("service unavailable: %s: %s", type(exc).__name__, exc)
        return error_response(APIError(503, "Service unavailable",
                                       "A backing store is unavailable; retry shortly"),
                              headers={"Retry-After": "1"})
    logger.exception("unhandled error", exc_info=exc)
    return error_response(APIError(500, "Internal error",
                                   "The service failed to process the request"))


def exception_handlers() -> dict[Any, Any]:
    """Handlers every Starlette app of ours installs, so no HTML page ever leaks out."""
    from starlette.exceptions import HTTPException

    return {
        APIError: api_error_handler,
        HTTPException: http_exception_handler,
        Exception: unhandled_error_handler,
    }
