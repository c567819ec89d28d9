"""Versioned, idempotent schema migrations.

Each service keeps `migrations/NNNN_name.sql` next to its code. A migration runs once, in a
transaction, and is recorded in `public.schema_migrations`; an advisory lock keeps two
starting processes from applying the same one twice. Run all of them with
`python -m portcullis.migrate` (DATABASE_URL from the environment).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
# (service, folder) in the order they apply.
SERVICES: tuple[tuple[str, Path], ...] = (
    ("gateway", ROOT / "gateway" / "migrations"),
    ("authsvc", ROOT / "authsvc" / "migrations"),
    ("suppression", ROOT / "services" / "suppression" / "migrations"),
)
FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x706F7274  # "port"


def migration_files(folder: Path) -> list[tuple[int, str, Path]]:
    found: list[tuple[int, str, Path]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        m = FILE_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration version in {folder}")
    return found


async def apply(conn: asyncpg.Connection, service: str, folder: Path) -> list[str]:
    """Apply the service's pending migrations; return the names applied."""
    applied: list[str] = []
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS public.schema_migrations (
               service text NOT NULL, version int NOT NULL, name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (service, version))"""
    )
    done = {r["version"] for r in await conn.fetch(
        "SELECT version FROM public.schema_migrations WHERE service = $1", service)}
    for version, name, path in migration_files(folder):
        if version in done:
            continue
        async with conn.transaction():
            await conn.execute(path.read_text())
            await conn.execute(
                "INSERT INTO public.schema_migrations (service, version, name) VALUES ($1,$2,$3)",
                service, version, name)
        applied.append(f"{service}/{path.name}")
    return applied


async def migrate_all(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            applied: list[str] = []
            for service, folder in SERVICES:
                applied += await apply(conn, service, folder)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


def main() -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate_all(dsn))
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
