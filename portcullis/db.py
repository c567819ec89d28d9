"""The connection pool every service uses."""

from __future__ import annotations

from typing import Any

import asyncpg


async def _keep_session(conn: Any) -> None:
    return None


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10,
                      statement_timeout_ms: int = 0) -> asyncpg.Pool:
    """`statement_timeout_ms` bounds every statement of the pool's connections (0: none):
    PostgreSQL cancels a statement that runs, or waits for a lock, longer; the services
    answer it as a 503 (portcullis.errors), so one tenant's slow query never holds a
    connection that another tenant's request is waiting for."""
    # Our services never leave session state behind (no SET, LISTEN, advisory locks or
    # cursors across requests), so the pool's default reset query, one more round trip per
    # acquire, is skipped; asyncpg still rolls back a transaction left open.
    settings = {"statement_timeout": str(statement_timeout_ms)} if statement_timeout_ms else {}
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                                   reset=_keep_session,
                                                   server_settings=settings)
    return pool
