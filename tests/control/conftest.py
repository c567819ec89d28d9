"""The control plane in-process (httpx over ASGI) on the session's real PostgreSQL; a
private, freshly migrated database for tests that touch every route (prune-all)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from gateway.control.app import create_app
from gateway.control.config import Config
from gateway.control.store import Store
from portcullis.migrate import migrate_all
from portcullis.pgcluster import Cluster

TOKEN = "control-test-token"


@pytest.fixture(scope="session")
async def store(pg_dsn: str) -> AsyncIterator[Store]:
    store = await Store.connect(pg_dsn)
    yield store
    await store.close()


@pytest.fixture(scope="session")
def control_app(pg_dsn: str, store: Store) -> Starlette:
    return create_app(Config(database_url=pg_dsn, admin_token=TOKEN), store=store)


def client_for(app: Starlette, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://control",
                             headers={"Authorization": f"Bearer {TOKEN}", **headers})


@pytest.fixture
def tag() -> str:
    """A token unique to the test: in its route names, paths and owners."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def admin(control_app: Starlette, tag: str) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client; the routes whose names hold the test's tag are deleted afterwards."""
    async with client_for(control_app) as client:
        yield client
        for route in (await client.get("/routes")).json()["results"]:
            if tag in route["name"]:
                await client.delete(f"/routes/{route['name']}")


@pytest.fixture
async def private_dsn(pg_cluster: Cluster) -> str:
    """A database of its own, migrated, with no routes: for tests that own the whole table."""
    name = f"control_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_cluster.dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = pg_cluster.dsn.rsplit("/", 1)[0] + f"/{name}"
    await migrate_all(dsn)
    return dsn
