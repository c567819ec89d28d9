"""The worker's own rules, in a database of their own (no other test's jobs in its queue)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from portcullis.migrate import migrate_all
from portcullis.pgcluster import Cluster
from services.suppression import imports, worker
from services.suppression.config import Config
from services.suppression.jobstore import JobStore
from services.suppression.model import Scope
from services.suppression.store import Store


@pytest.fixture(scope="module")
async def private(pg_cluster: Cluster, config: Config) -> AsyncIterator[Config]:
    admin = await asyncpg.connect(pg_cluster.dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS suppression_worker_test")
        await admin.execute("CREATE DATABASE suppression_worker_test")
    finally:
        await admin.close()
    dsn = pg_cluster.dsn.rsplit("/", 1)[0] + "/suppression_worker_test"
    await migrate_all(dsn)
    yield replace(config, database_url=dsn)


async def body(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i:i + 1000]


async def test_a_stopping_worker_puts_its_job_back_and_the_next_finishes_it(
        private: Config) -> None:
    store = await Store.connect(private.database_url, 1, 2)
    conn = await asyncpg.connect(private.database_url)
    reader = await asyncpg.connect(private.database_url)
    try:
        rows = "".join(f"r{i}@example.com,transactional\n" for i in range(3000))
        job_id = await imports.upload(store, Scope(77, None), "csv",
                                      body(("recipient,type\n" + rows).encode()), 4096)
        jobs = JobStore(conn)
        await jobs.ensure_staging()
        stopping = asyncio.Event()
        stopping.set()
        assert await worker.run_one(private, jobs, reader, stopping)
        job = await store.job(Scope(77, None), job_id)
        assert job is not None
        assert (job["state"], job["attempts"]) == ("queued", 1)
        assert await worker.run_one(private, jobs, reader, asyncio.Event())
        job = await store.job(Scope(77, None), job_id)
        assert job is not None
        assert (job["state"], job["attempts"], job["rows_written"]) == ("done", 2, 3000)
        assert not await worker.run_one(private, jobs, reader, asyncio.Event())
    finally:
        await conn.close()
        await reader.close()
        await store.close()


async def test_jobs_of_different_accounts_are_taken_in_queue_order(private: Config) -> None:
    store = await Store.connect(private.database_url, 1, 2)
    conn = await asyncpg.connect(private.database_url)
    try:
        ids = [await imports.upload(store, Scope(account, None), "csv",
                                    body(b"recipient,type\na@example.com,transactional\n"),
                                    4096)
               for account in (81, 82, 81, 83)]
        jobs = JobStore(conn)
        taken = []
        while (job := await jobs.claim(60)) is not None:
            taken.append(job["id"])
        # The second job of account 81 waits for the first, which is still running.
        assert taken == [ids[0], ids[1], ids[3]]
    finally:
        await conn.close()
        await store.close()
