"""Request bodies, bounded before they cost: every service reads a body through here.

Two bounds, both checked before the body turns into objects:

- bytes: a declared `Content-Length` over the limit is refused unread; a streamed body is
  counted as it arrives and refused the moment it passes the limit, so at most `limit`
  bytes are ever held;
- containers (JSON objects and arrays): 48 MB of `[{},{},...]` is 16 million dicts, a
  gigabyte of Python objects, although every byte of it is within a 50 MB limit. The
  objects and arrays outside strings are counted first (a byte count when it proves the
  body small, a scan that skips strings and stops at the limit when it does not), so a body
  with more than an endpoint could ever accept is refused before `json.loads` builds any.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import Receive

from portcullis.errors import APIError

# A JSON string (skipped), or the opening of an object or an array (counted).
_STRING_OR_OPENING = re.compile(rb'"(?:[^"\\]|\\.)*+"|[\[{]')


class BodyTooLarge(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(413, "Request entity too large", description, "1413")


def size_words(limit: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit:,} bytes"


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {size_words(limit)}")


async def read(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytearray:
    """The whole body, at most `limit` bytes (BodyTooLarge past it, read no further). With
    a declared length the buffer is made once at that size and filled in place: growing
    it would copy, and for a moment hold twice the body."""
    size = int(declared) if declared is not None and declared.strip().isdigit() else None
    if size is not None and size > limit:
        raise too_large(limit)
    body = bytearray(size or 0)
    filled = 0
    async for chunk in chunks:
        end = filled + len(chunk)
        if end > limit:
            raise too_large(limit)
        if end <= len(body):
            body[filled:end] = chunk
        else:
            body[filled:] = chunk  # longer than declared (the server checks that too)
        filled = end
    del body[filled:]
    return body


async def request_body(request: Request, limit: int) -> bytearray:
    return await read(request.stream(), request.headers.get("content-length"), limit)


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """A raw ASGI request's body chunks (for apps below Starlette's Request)."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def containers_at_most(raw: bytes | bytearray, limit: int) -> bool:
    """Whether the JSON text opens at most `limit` objects and arrays (outside strings)."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return True  # braces inside strings only make this count larger
    found = 0
    for match in _STRING_OR_OPENING.finditer(raw):
        if len(match.group()) == 1:
            found += 1
            if found > limit:
                return False
    return True


def json_value(raw: bytes | bytearray, max_containers: int,
               too_many: Callable[[], APIError], invalid: Callable[[], APIError]) -> Any:
    """The body's JSON value; `too_many()` when it opens more than `max_containers`
    objects and arrays, `invalid()` when it is not JSON (nesting too deep included)."""
    if not containers_at_most(raw, max_containers):
        raise too_many()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid() from None
