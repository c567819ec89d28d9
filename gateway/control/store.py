"""SQL of the route registry (schema `gateway`). Every change runs in a `Change`: one
transaction that first locks the version row, so writers take turns and each one's checks see
what the writers before it committed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.control.route import Claim, Route
from portcullis.db import create_pool


class Change:
    """One writer's transaction, holding the table lock until it ends."""

    def __init__(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self.conn = conn

    async def claims(self) -> list[Claim]:
        rows = await self.conn.fetch("SELECT spec FROM gateway.routes")
        return [Claim.of(json.loads(r["spec"])) for r in rows]

    async def get(self, name: str) -> dict[str, Any] | None:
        spec = await self.conn.fetchval("SELECT spec FROM gateway.routes WHERE name = $1", name)
        return None if spec is None else dict(json.loads(spec))

    async def insert(self, route: Route) -> None:
        await self.conn.execute(
            "INSERT INTO gateway.routes (name, spec) VALUES ($1, $2::jsonb)",
            route.name, json.dumps(route.to_dict()))

    async def replace(self, route: Route) -> None:
        await self.conn.execute(
            "UPDATE gateway.routes SET spec = $2::jsonb, updated_at = now() WHERE name = $1",
            route.name, json.dumps(route.to_dict()))

    async def remove(self, name: str) -> None:
        await self.conn.execute("DELETE FROM gateway.routes WHERE name = $1", name)

    async def version(self) -> int:
        version: int = await self.conn.fetchval("SELECT version FROM gateway.table_version")
        return version

    async def record(self, action: str, name: str, actor: str,
                     before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        """Raise the table version and write the audit row; return the new version."""
        version: int = await self.conn.fetchval(
            "UPDATE gateway.table_version SET version = version + 1 RETURNING version")
        await self.conn.execute(
            """INSERT INTO gateway.route_audit (version, route, action, actor, before, after)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)""",
            version, name, action, actor,
            None if before is None else json.dumps(before),
            None if after is None else json.dumps(after))
        return version


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, statement_timeout_ms: int = 10_000) -> Store:
        return cls(await create_pool(dsn, 1, 10, statement_timeout_ms))

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1 FROM gateway.table_version")

    @asynccontextmanager
    async def change(self) -> AsyncIterator[Change]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT version FROM gateway.table_version FOR UPDATE")
            yield Change(conn)

    async def routes(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT spec FROM gateway.routes ORDER BY name")
        return [dict(json.loads(r["spec"])) for r in rows]

    async def route(self, name: str) -> dict[str, Any] | None:
        spec = await self.pool.fetchval("SELECT spec FROM gateway.routes WHERE name = $1", name)
        return None if spec is None else dict(json.loads(spec))

    async def version(self) -> int:
        version: int = await self.pool.fetchval("SELECT version FROM gateway.table_version")
        return version

    async def table(self) -> tuple[int, str]:
        """The version and the table as a JSON document, read in one statement (so the two
        agree) and serialised by PostgreSQL (so a poll costs no Python decoding)."""
        row = await self.pool.fetchrow(
            """SELECT v.version,
                      json_build_object(
                          'version', v.version,
                          'routes', coalesce((SELECT json_agg(r.spec ORDER BY r.name)
                                              FROM gateway.routes r), '[]'::json))::text AS doc
               FROM gateway.table_version v""")
        assert row is not None
        return int(row["version"]), str(row["doc"])

    async def audit(self, name: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT version, action, actor, at, before, after FROM gateway.route_audit
               WHERE route = $1 ORDER BY id""", name)
        return [{"version": r["version"], "action": r["action"], "actor": r["actor"],
                 "at": r["at"].isoformat(),
                 "before": None if r["before"] is None else json.loads(r["before"]),
                 "after": None if r["after"] is None else json.loads(r["after"])}
                for r in rows]
