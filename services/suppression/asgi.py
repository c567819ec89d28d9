"""Factories uvicorn imports by name (so --workers can start several processes), and the
lookup service's HTTP protocol."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.suppression.app import create_app
from services.suppression.config import Config


def lookup_app() -> Starlette:
    return create_app(Config.from_env(), role="lookup")


def list_app() -> Starlette:
    return create_app(Config.from_env(), role="list")


class OneWrite:
    """A transport that sends a response's head together with the body that follows it.

    uvicorn writes the status line and headers, then the body, each at once: two system
    calls and two segments for a small answer, and system calls are most of what a lookup
    costs. The head is held until the next write (the body: both go in one call) or, at
    the latest, the next turn of the event loop (a HEAD answer or a 100 Continue has no
    body write to join). Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head + data)
        elif data[:9] == b"HTTP/1.1 " and data[-4:] == b"\r\n\r\n":
            self.head = bytes(data)
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        if self.head is not None:
            head, self.head = self.head, None
            if not self.transport.is_closing():
                self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class LookupHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol over OneWrite (`--http services.suppression.asgi:LookupHttp`
    is how __main__ starts the lookup service)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(OneWrite(transport, self.loop))  # type: ignore[arg-type]
