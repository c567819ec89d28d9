"""Factories uvicorn imports by name (so --workers can start several processes), and the
lookup service's HTTP protocol."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httptools
from starlette.applications import Starlette
from starlette.types import Message
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from portcullis.paths import without_trailing_slash
from services.suppression.app import (
    JSON_HEADERS,
    RECIPIENT_PREFIX,
    LookupApp,
    create_app,
)
from services.suppression.config import Config

log = logging.getLogger("uvicorn.error")


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


class Unused:
    """The message event of a request answered by LookupHttp.answer: nobody waits on it."""

    def set(self) -> None:
        pass


class Answering:
    """What uvicorn's protocol reads and writes of its current request-response cycle, for a
    GET that LookupHttp.answer serves without one (its body, if it had one, is dropped)."""

    message_event = Unused()

    def __init__(self) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = True
        self.more_body = True
        self.body = b""


RECIPIENT_URL = RECIPIENT_PREFIX.encode()


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class LookupHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the sending path's request served straight from
    the parser's callbacks (`--http services.suppression.asgi:LookupHttp` is how __main__
    starts the lookup service).

    A keep-alive HTTP/1.1 GET of one recipient, with no request of the connection still
    being answered, goes to LookupApp.outcome, the same code that answers it through ASGI,
    and its answer is written as one buffer: no ASGI cycle, no event, no send messages, no
    middleware between. That was a third of the service's CPU per lookup. uvicorn keeps
    everything else: other methods and paths, HEAD, pipelined requests (queued behind the
    one being answered, as uvicorn queues them), `Connection: close`, upgrades, keep-alive
    timeouts, flow control and shutdown. tests/suppression/test_lookup_http.py compares
    the two byte for byte over real sockets."""

    lookup: LookupApp | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.raw = transport
        super().connection_made(OneWrite(transport, self.loop))  # type: ignore[arg-type]
        app: Any = self.app
        while app is not None and not isinstance(app, LookupApp):
            app = getattr(app, "app", None)  # under uvicorn's own middleware, if any
        self.lookup = app

    def on_headers_complete(self) -> None:
        parser = self.parser
        cycle = self.cycle
        if (self.lookup is None or self.url[:len(RECIPIENT_URL)] != RECIPIENT_URL
                or parser.get_method() != b"GET" or parser.get_http_version() != "1.1"
                or not parser.should_keep_alive() or parser.should_upgrade()
                or self.expect_100_continue or self.limit_concurrency is not None
                or not (cycle is None or cycle.response_complete)):
            super().on_headers_complete()
            return
        parsed = httptools.parse_url(self.url)
        raw_path: bytes = parsed.path
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:  # uvicorn's to answer as it does
            super().on_headers_complete()
            return
        if "%" in path:
            path = urllib.parse.unquote(path)
        path = without_trailing_slash(path)
        if not LookupApp.answers_get(path):
            super().on_headers_complete()
            return
        scope = self.scope
        scope["method"] = "GET"
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = parsed.query or b""
        answering = Answering()
        self.cycle = answering  # type: ignore[assignment]
        task = self.loop.create_task(self.answer(answering, scope))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def answer(self, answering: Answering, scope: Any) -> None:
        app = self.lookup
        assert app is not None
        try:
            status, body = await app.outcome(scope, no_body, app.get_one)
            headers: Sequence[tuple[bytes, bytes]] = JSON_HEADERS
        except Exception as exc:  # as LookupApp.fast: the handler for it answers
            status, headers, body = await self.failure(app, scope, exc)
        if answering.disconnected:
            return
        head = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers,
                            (b"content-length", str(len(body)).encode()), *headers):
            head += (name, b": ", value, b"\r\n")
        if not answering.keep_alive:  # the server is shutting down
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self.raw.write(b"".join(head))
        answering.response_complete = True
        if not answering.keep_alive:
            self.transport.close()
        self.on_response_complete()

    @staticmethod
    async def failure(app: LookupApp, scope: Any,
                      exc: Exception) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        sent: list[Message] = []

        async def collect(message: Message) -> None:
            sent.append(message)

        try:
            await app.failed(scope, no_body, collect, exc)
        except Exception:  # failed() raises it again so that the server logs it
            log.exception("Exception in ASGI application")
        start = sent[0]
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])
