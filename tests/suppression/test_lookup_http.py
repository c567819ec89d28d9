"""The lookup service's protocol (services.suppression.asgi.LookupHttp) over real sockets:
each answer is, byte for byte, what uvicorn's own protocol writes for the same request to
the same app, and the connection behaves as HTTP/1.1 says (keep-alive, pipelining,
`Connection: close`, a client that goes away)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from portcullis.context import signed_headers
from portcullis.procs import free_port
from services.suppression.app import LookupApp, create_app
from services.suppression.asgi import LookupHttp
from services.suppression.config import Config
from services.suppression.store import Store
from tests.suppression.conftest import BASE, KEYS, Api, new_account


class Servers:
    """One lookup app served twice: by LookupHttp and by uvicorn's httptools protocol."""

    def __init__(self, app: LookupApp) -> None:
        self.app = app
        self.ports = {"fast": free_port(), "plain": free_port()}
        self.servers = [
            uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.ports[name],
                                          http=http, lifespan="off", log_level="critical"))
            for name, http in (("fast", LookupHttp), ("plain", "httptools"))]
        self.tasks: list[asyncio.Task[None]] = []
        self.fast_answers = 0  # requests LookupHttp answered itself

    async def start(self) -> None:
        for server in self.servers:
            self.tasks.append(asyncio.create_task(server.serve()))
        for server in self.servers:
            while not server.started:
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        # Last started, first stopped: each server puts back the signal handlers it found.
        for server, task in reversed(list(zip(self.servers, self.tasks, strict=True))):
            server.should_exit = True
            await task


@pytest.fixture
async def servers(config: Config, store: Store,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    app = create_app(config, store=store, role="lookup")
    assert isinstance(app, LookupApp)
    out = Servers(app)
    answer = LookupHttp.answer

    async def counted(self: LookupHttp, *args: Any) -> None:
        out.fast_answers += 1
        await answer(self, *args)

    monkeypatch.setattr(LookupHttp, "answer", counted)
    await out.start()
    yield out
    await out.stop()


def request(uri: str, account: int, *, method: str = "GET", extra: str = "",
            version: str = "HTTP/1.1", signed_as: str | None = None) -> bytes:
    head = signed_headers(KEYS, method, signed_as or uri, account_id=account)
    lines = [f"{method} {uri} {version}", "Host: lookup.test",
             *(f"{k}: {v}" for k, v in head.items())]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_answer(reader: asyncio.StreamReader, method: str = "GET") -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length: (\d+)\r\n", head, re.I)
    assert m or method == "HEAD", head
    body = await reader.readexactly(int(m.group(1))) if m and method != "HEAD" else b""
    return head + body


def same(answer: bytes) -> bytes:
    """The answer without its Date header (the two servers' clocks tick apart)."""
    return re.sub(rb"date: [^\r]*\r\n", b"", answer)


async def exchange(port: int, *requests: bytes, methods: tuple[str, ...] = (),
                   together: bool = False) -> tuple[list[bytes], bool]:
    """Send the requests on one connection (all in one write when `together`); the answers,
    and whether the server closed the connection after the last."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        if together:
            writer.write(b"".join(requests))
        for i, req in enumerate(requests):
            if not together:
                writer.write(req)
            answers.append(await read_answer(reader, (methods or ("GET",) * len(requests))[i]))
        closed = await asyncio.wait_for(reader.read(1), 0.5) == b"" \
            if any(b"close" in r.lower() or b"HTTP/1.0" in r for r in requests[-1:]) \
            else False
        return answers, closed
    finally:
        writer.close()


async def both(servers: Servers, *requests: bytes, **kw: Any) -> list[bytes]:
    fast, fast_closed = await exchange(servers.ports["fast"], *requests, **kw)
    plain, plain_closed = await exchange(servers.ports["plain"], *requests, **kw)
    assert [same(a) for a in fast] == [same(a) for a in plain]
    assert fast_closed == plain_closed
    return fast


@pytest.fixture
async def account(api: Api) -> int:
    account = new_account()
    mine = Api(api.clients, account)
    resp = await mine.bulk([
        {"recipient": "hit@example.com", "type": "transactional", "description": "é ✓"},
        {"recipient": "hit@example.com", "type": "non_transactional", "list_id": "news"},
        {"recipient": "o'neil+x@example.com", "type": "transactional"}])
    assert resp.status_code == 200
    return account


@pytest.mark.parametrize("uri", [
    f"{BASE}/hit@example.com",
    f"{BASE}/HIT@EXAMPLE.COM",
    f"{BASE}/hit@example.com?types=transactional",
    f"{BASE}/hit@example.com?per_page=1&cursor=initial",
    f"{BASE}/hit@example.com?per_page=0",
    f"{BASE}/o%27neil%2Bx@example.com",
    f"{BASE}/miss@example.com",
    f"{BASE}/not-an-address",
    f"{BASE}/hit@example.com/",
    f"{BASE}/summary",
    f"{BASE}/lookup",
])
async def test_each_answer_is_uvicorns_byte_for_byte(servers: Servers, account: int,
                                                     uri: str) -> None:
    (answer,) = await both(servers, request(uri, account))
    assert answer.startswith(b"HTTP/1.1 ")
    assert servers.fast_answers == 1


async def test_the_list_path_with_a_trailing_slash_is_not_a_recipient(
        servers: Servers, account: int) -> None:
    """`/api/v1/suppression-list/` is the list (a trailing slash is ignored), which the
    lookup service does not serve: Starlette answers it, the same from both servers."""
    (answer,) = await both(servers, request(f"{BASE}/", account))
    assert answer.startswith(b"HTTP/1.1 40")
    assert servers.fast_answers == 0


async def test_the_answers_are_the_services_own(servers: Servers, account: int) -> None:
    (hit,) = await both(servers, request(f"{BASE}/hit@example.com", account))
    assert hit.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: application/json\r\n" in hit
    assert b'"total_count":2' in hit and "é ✓".encode() in hit
    (miss,) = await both(servers, request(f"{BASE}/miss@example.com", account))
    assert miss.startswith(b"HTTP/1.1 404 Not Found\r\n")


async def test_unsigned_stale_or_tampered_requests_are_refused_alike(
        servers: Servers, account: int) -> None:
    uri = f"{BASE}/hit@example.com"
    unsigned = f"GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    other_uri = request(uri, account, signed_as=f"{BASE}/miss@example.com")
    for req in (unsigned, other_uri):
        (answer,) = await both(servers, req)
        assert answer.startswith(b"HTTP/1.1 401 ")


async def test_requests_the_fast_path_leaves_to_uvicorn_answer_as_before(
        servers: Servers, account: int) -> None:
    uri = f"{BASE}/hit@example.com"
    (head,) = await both(servers, request(uri, account, method="HEAD"), methods=("HEAD",))
    assert servers.fast_answers == 0
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    (openapi,) = await both(servers, request(f"{BASE}/openapi.json", account))
    assert openapi.startswith(b"HTTP/1.1 404 ")
    (health,) = await both(servers, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 ")


async def test_keep_alive_pipelining_and_close(servers: Servers, account: int) -> None:
    hit = request(f"{BASE}/hit@example.com", account)
    miss = request(f"{BASE}/miss@example.com", account)
    head = request(f"{BASE}/hit@example.com", account, method="HEAD")
    # Three in a row on one connection, then three in one write (pipelined): the answers
    # come in order, whatever path each takes.
    one_by_one = await both(servers, hit, miss, hit)
    assert [a.split(b"\r\n")[0] for a in one_by_one] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
    pipelined = await both(servers, hit, head, miss, hit, together=True,
                           methods=("GET", "HEAD", "GET", "GET"))
    assert [a.split(b"\r\n")[0] for a in pipelined] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
    assert servers.fast_answers == 4  # the first of each series; uvicorn queued the rest
    # A client that asks to close, or speaks HTTP/1.0, gets its answer and the close.
    (closing,) = await both(servers, request(f"{BASE}/hit@example.com", account,
                                             extra="Connection: close"))
    assert b"connection: close\r\n" in closing.lower()
    (old,) = await both(servers, request(f"{BASE}/hit@example.com", account,
                                         version="HTTP/1.0"))
    assert old.startswith(b"HTTP/1.1 200 ")


async def test_a_failed_lookup_is_answered_by_the_apps_handlers(
        servers: Servers, account: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    async def down(*args: Any) -> Any:
        calls.append(args)
        raise ConnectionRefusedError("database is down")

    monkeypatch.setattr(servers.app.state.suppressions, "get_recipient", down)
    (answer,) = await both(servers, request(f"{BASE}/hit@example.com", account))
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b'"errors":[' in answer
    assert len(calls) == 2  # one per server: the fast path did ask

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(servers.app.state.suppressions, "get_recipient", broken)
    fast, _ = await exchange(servers.ports["fast"], request(f"{BASE}/hit@example.com",
                                                            account))
    plain, _ = await exchange(servers.ports["plain"], request(f"{BASE}/hit@example.com",
                                                              account))
    assert same(fast[0]) == same(plain[0])
    assert fast[0].startswith(b"HTTP/1.1 500 ")


async def test_a_client_gone_before_its_answer_leaves_the_server_serving(
        servers: Servers, account: int, monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    original = servers.app.state.suppressions.get_recipient

    async def slow(*args: Any) -> Any:
        await release.wait()
        return await original(*args)

    monkeypatch.setattr(servers.app.state.suppressions, "get_recipient", slow)
    _, writer = await asyncio.open_connection("127.0.0.1", servers.ports["fast"])
    writer.write(request(f"{BASE}/hit@example.com", account))
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    release.set()
    monkeypatch.setattr(servers.app.state.suppressions, "get_recipient", original)
    answers, _ = await exchange(servers.ports["fast"], request(f"{BASE}/hit@example.com",
                                                               account))
    assert answers[0].startswith(b"HTTP/1.1 200 ")
