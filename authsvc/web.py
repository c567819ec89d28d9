"""Small HTTP helpers shared by the service's route modules."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from authsvc.errors import Invalid
from portcullis import bodies

MAX_BODY = 64 * 1024  # refused from Content-Length, or as it streams past this
MAX_CONTAINERS = 256  # objects and arrays in one body (an issuer's JWK set is the most)


async def json_object(request: Request) -> dict[str, Any]:
    raw = await bodies.request_body(request, MAX_BODY)
    body = bodies.json_value(raw, MAX_CONTAINERS,
                             lambda: Invalid(f"the body holds more than {MAX_CONTAINERS} "
                                             "objects and arrays"),
                             lambda: Invalid("the body is not valid JSON")) if raw else {}
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    return body


def whole_number(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"`{name}` must be a whole number")
    return value


def path_int(request: Request, name: str) -> int:
    value = request.path_params[name]
    if not isinstance(value, int):
        raise Invalid(f"`{name}` must be a whole number")
    return value
