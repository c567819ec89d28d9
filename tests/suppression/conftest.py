"""The suppression services in-process over a real PostgreSQL, and an API helper that signs
each request as the gateway would."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from portcullis.context import ContextKeys, signed_headers
from services.suppression.app import create_app
from services.suppression.config import AUDIENCE, Config
from services.suppression.store import Store

ROOT_SECRET = "suppression-test-secret"  # the gateway's root, in these tests
KEYS = ContextKeys.for_roots(ROOT_SECRET, AUDIENCE)  # what the services verify with
BASE = "/api/v1/suppression-list"
LOOKUP_PATHS = (f"{BASE}/lookup",)


@pytest.fixture(scope="session")
def config(pg_dsn: str) -> Config:
    return Config(database_url=pg_dsn, context_keys=KEYS, import_batch_rows=1000,
                  import_chunk_bytes=4096)


@pytest.fixture(scope="session")
async def store(config: Config) -> AsyncIterator[Store]:
    active = await Store.connect(config.database_url, 2, 10)
    yield active
    await active.close()


@pytest.fixture(scope="session")
async def clients(config: Config, store: Store) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    out = {}
    for role in ("lookup", "list"):
        app = create_app(config, store=store, role=role)  # type: ignore[arg-type]
        out[role] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://suppression.test")
    yield out
    for client in out.values():
        await client.aclose()


def new_account() -> int:
    return random.randint(10**9, 2**62)


class Api:
    """Calls as the gateway would make them, to the service that owns the route."""

    def __init__(self, clients: dict[str, httpx.AsyncClient], account_id: int,
                 subaccount_id: int | None = None) -> None:
        self.clients = clients
        self.account_id = account_id
        self.subaccount_id = subaccount_id

    def as_sub(self, subaccount_id: int | None) -> Api:
        return Api(self.clients, self.account_id, subaccount_id)

    @staticmethod
    def role(method: str, path: str) -> str:
        if path.split("?")[0] == f"{BASE}/lookup" and method == "POST":
            return "lookup"
        rest = path.split("?")[0][len(BASE) + 1:]
        if method in ("GET", "HEAD") and "@" in rest:
            return "lookup"
        return "list"

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   json: Any = None, content: bytes | None = None,
                   headers: dict[str, str] | None = None, role: str | None = None,
                   sign_uri: str | None = None) -> httpx.Response:
        uri = path + (f"?{urlencode(params)}" if params else "")
        raw = httpx.URL("http://suppression.test" + uri).raw_path.decode()
        sent = signed_headers(KEYS, method, sign_uri or raw, account_id=self.account_id,
                              subaccount_id=self.subaccount_id,
                              grants=["suppression_lists/manage"])
        sent |= headers or {}
        client = self.clients[role or self.role(method, raw)]
        return await client.request(method, raw, json=json, content=content, headers=sent)

    # --- SparkPost calls ---
    async def put(self, recipient: str, body: Any, **kw: Any) -> httpx.Response:
        return await self.call("PUT", f"{BASE}/{quote(recipient, safe='@+')}", json=body, **kw)

    async def get(self, recipient: str, **kw: Any) -> httpx.Response:
        return await self.call("GET", f"{BASE}/{quote(recipient, safe='@+')}", **kw)

    async def delete(self, recipient: str, **kw: Any) -> httpx.Response:
        return await self.call("DELETE", f"{BASE}/{quote(recipient, safe='@+')}", **kw)

    async def bulk(self, recipients: list[Any], **kw: Any) -> httpx.Response:
        return await self.call("PUT", BASE, json={"recipients": recipients}, **kw)

    async def search(self, **params: Any) -> httpx.Response:
        return await self.call("GET", BASE, params=params)

    async def summary(self) -> httpx.Response:
        return await self.call("GET", f"{BASE}/summary")

    async def lookup(self, body: Any) -> httpx.Response:
        return await self.call("POST", f"{BASE}/lookup", json=body)


@pytest.fixture
def api(clients: dict[str, httpx.AsyncClient]) -> Api:
    return Api(clients, new_account())


@pytest.fixture
def other_api(clients: dict[str, httpx.AsyncClient]) -> Api:
    return Api(clients, new_account())


@pytest.fixture(scope="session")
def anyio_backend() -> Iterator[str]:
    yield "asyncio"


def error_messages(resp: httpx.Response) -> list[str]:
    body = resp.json()
    assert set(body) == {"errors"}
    for entry in body["errors"]:
        assert set(entry) == {"message", "code", "description"}
        assert isinstance(entry["code"], str)
    return [e["message"] for e in body["errors"]]
