"""Streaming a COPY out of PostgreSQL as an async iterator of bytes, with back-pressure:
the COPY waits while the client is slower than the database, so memory stays flat."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from services.suppression.errors import InvalidRequest
from services.suppression.model import Scope
from services.suppression.search import parse_filters
from services.suppression.store import Output, Store

Producer = Callable[[Output], Awaitable[None]]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
QUEUE_CHUNKS = 8
WRITE_BYTES = 256 * 1024  # memory per export: at most QUEUE_CHUNKS + 1 of these


async def stream(produce: Producer) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    pending = bytearray()

    async def output(chunk: bytes) -> None:
        # COPY arrives in pieces of a few kilobytes; the client gets fewer, bigger writes.
        # Taken out of `pending` before waiting for room: two COPYs may feed it at once.
        pending.extend(chunk)
        if len(pending) >= WRITE_BYTES:
            ready = bytes(pending)
            pending.clear()
            await queue.put(ready)

    async def run() -> None:
        try:
            await produce(output)
            if pending:
                await queue.put(bytes(pending))
        finally:
            await queue.put(None)

    task = asyncio.create_task(run())
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def export_format(q: Mapping[str, str]) -> str:
    fmt = (q.get("format") or "csv").lower()
    if fmt not in MEDIA_TYPES:
        raise InvalidRequest("Invalid format", "format must be csv or ndjson")
    return fmt


def export_rows(store: Store, scope: Scope,
                q: Mapping[str, str]) -> tuple[str, AsyncIterator[bytes]]:
    """The media type and the body of an export; filters are checked before any byte goes."""
    fmt = export_format(q)
    filters = parse_filters(q)
    ordered = q.get("sort") is not None

    async def produce(output: Output) -> None:
        await store.export(scope, filters, fmt, ordered, output)

    return MEDIA_TYPES[fmt], stream(produce)
