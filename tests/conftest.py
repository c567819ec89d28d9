"""Session fixtures: real PostgreSQL and Redis on ephemeral ports, started once, stopped at
the end. The full stack (nginx gateway and every service) is in tests/stackfix.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portcullis.migrate import migrate_all
from portcullis.pgcluster import Cluster
from portcullis.procs import Proc, free_port
from portcullis.redisserver import start_redis

pytest_plugins = ["tests.stackfix"]


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="portcullis-test-"))
    os.chmod(path, 0o755)
    yield path
    if not os.environ.get("KEEP_TEST_DIR"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster(workdir: Path) -> Iterator[Cluster]:
    cluster = Cluster(workdir / "pg", free_port(), durable=False)
    cluster.start()
    asyncio.run(migrate_all(cluster.dsn))
    yield cluster
    cluster.stop("immediate")


@pytest.fixture(scope="session")
def pg_dsn(pg_cluster: Cluster) -> str:
    """DSN of a migrated database shared by the session; tests make their own accounts."""
    return pg_cluster.dsn


@pytest.fixture
def fresh_dsn(pg_cluster: Cluster) -> str:
    """A new, empty database on the session's cluster: for tests that start a whole stack
    of their own (its route table must not replace the session stack's)."""
    return create_database(pg_cluster)


@pytest.fixture(scope="module")
def module_dsn(pg_cluster: Cluster) -> str:
    """As fresh_dsn, for a stack that a whole test module shares."""
    return create_database(pg_cluster)


def create_database(pg_cluster: Cluster) -> str:
    import uuid

    import asyncpg

    name = f"fresh_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_cluster.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return pg_cluster.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def redis_proc(workdir: Path) -> Iterator[Proc]:
    port = free_port()
    proc = start_redis(workdir / "redis", port)
    proc.port = port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_url(redis_proc: Proc) -> str:
    return f"redis://127.0.0.1:{redis_proc.port}/0"  # type: ignore[attr-defined]
