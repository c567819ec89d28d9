"""The auth service, started for real (uvicorn on an ephemeral port) against the session's
PostgreSQL and Redis; helpers that call it as the gateway and operators do, poll, watch the
revocation events, and reach into PostgreSQL for states no API makes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from authsvc.app import create_app
from authsvc.config import Config
from authsvc.events import CHANNEL
from authsvc.store import Store
from portcullis import derive
from portcullis.context import ContextKeys
from portcullis.procs import free_port

ADMIN_TOKEN = "test-admin-token"
ROOT_SECRET = "test-signing-secret"  # the gateway's root: what the auth service is given
CONTEXT_KEYS = ContextKeys.for_roots(ROOT_SECRET, "auth")  # ... is derived from it
GATEWAY_TOKEN = derive.gateway_token(ROOT_SECRET)
GATEWAY = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@dataclass
class Api:
    """Calls to one running auth service."""

    client: httpx.AsyncClient
    base: str

    async def admin(self, method: str, path: str, json: Any = None,
                    token: str | None = ADMIN_TOKEN) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return await self.client.request(method, self.base + path, json=json, headers=headers)

    async def account(self, **extra: Any) -> int:
        r = await self.admin("POST", "/admin/accounts", {"name": unique("acct"), **extra})
        assert r.status_code == 201, r.text
        return int(r.json()["results"]["id"])

    async def subaccount(self, account_id: int) -> int:
        r = await self.admin("POST", f"/admin/accounts/{account_id}/subaccounts",
                             {"name": unique("sub")})
        assert r.status_code == 201, r.text
        return int(r.json()["results"]["id"])

    async def key(self, account_id: int, grants: list[str], **extra: Any) -> dict[str, Any]:
        r = await self.admin("POST", "/admin/keys", {"account_id": account_id,
                                                     "label": unique("key"),
                                                     "grants": grants, **extra})
        assert r.status_code == 201, r.text
        results: dict[str, Any] = r.json()["results"]
        return results

    async def authorize(self, token: str | None, method: str = "GET",
                        resource: str = "suppression_lists", subaccount: str | None = None,
                        client_ip: str | None = "127.0.0.1",
                        grants: list[str] | None = None) -> httpx.Response:
        return await self.client.post(self.base + "/v1/authorize", json={
            "resource": resource, "method": method, "token": token,
            "subaccount": subaccount, "client_ip": client_ip, "grants": grants},
            headers=GATEWAY)

    async def revocations(self, since: int | str) -> httpx.Response:
        return await self.client.get(self.base + f"/v1/revocations?since={since}",
                                     headers=GATEWAY)


def base_config(pg_dsn: str, **overrides: Any) -> Config:
    config = Config(database_url=pg_dsn, context_keys=CONTEXT_KEYS, admin_token=ADMIN_TOKEN,
                    gateway_tokens=(GATEWAY_TOKEN,), expiry_sweep_interval=0.1)
    return replace(config, **overrides)


@contextlib.asynccontextmanager
async def running(config: Config, store: Store | None = None) -> AsyncIterator[Api]:
    """An auth service on an ephemeral port in this event loop, for the block's duration."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config, store), host="127.0.0.1",
                                           port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("auth service stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield Api(client, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
async def api(pg_dsn: str, redis_url: str) -> AsyncIterator[Api]:
    async with running(base_config(pg_dsn, redis_url=redis_url)) as service:
        yield service


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def revocation_events(redis_url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every message published on the revocation channel while the test runs."""
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    seen: list[dict[str, Any]] = []

    async def pump() -> None:
        async for message in pubsub.listen():
            seen.append(json.loads(message["data"]))

    task = asyncio.create_task(pump())
    yield seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()
    await client.aclose()


async def status_of(api: Api, key: str, **kw: Any) -> tuple[int, str | None]:
    r = await api.authorize(key, **kw)
    return r.status_code, r.json().get("reason")


async def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def expire(dsn: str, key_id: str) -> None:
    """Make a key expired (no API makes a key whose expiry is already past)."""
    await sql(dsn, "UPDATE auth.api_keys SET expires_at = now() - interval '5 seconds'"
                   " WHERE id = $1", key_id)
