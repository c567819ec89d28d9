"""Small HTTP helpers shared by the service's route modules."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from authsvc.errors import Invalid

MAX_BODY = 64 * 1024


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Invalid("the body is over 64 KB")
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("the body is not valid JSON") from exc
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
