"""The connection pool every service uses."""

from __future__ import annotations

from typing import Any

import asyncpg


async def _keep_session(conn: Any) -> None:
    return None


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    # Our services never leave session state behind (no SET, LISTEN, advisory locks or
    # cursors across requests), so the pool's default reset query, one more round trip per
    # acquire, is skipped; asyncpg still rolls back a transaction left open.
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                                   reset=_keep_session)
    return pool
