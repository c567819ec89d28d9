"""The worker's own rules, in a database of their own (no other test's jobs in its queue)."""

from __future__ import annotations

import asyncio
import itertools
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


async def entries(conn: asyncpg.Connection, account: int) -> dict[tuple[str, str], tuple[str, str]]:
    rows = await conn.fetch("SELECT recipient, type, source, description, updated "
                            "FROM suppression.entries WHERE account_id = $1", account)
    return {(r["recipient"], r["type"]): (r["source"], r["description"]) for r in rows}


async def merge_one(conn: asyncpg.Connection, account: int,
                          staged: list[tuple[int, str, str, str, str, str]]) -> None:
    job = {"id": 0, "account_id": account, "subaccount_id": 0}
    jobs = JobStore(conn)
    await jobs.ensure_staging()
    await jobs.merge(job, staged, (), None, 60)


def staged_rows(pairs: list[tuple[str, str]]) -> list[tuple[int, str, str, str, str, str]]:
    return [(line, r, "", "transactional", r.split("@")[1], d)
            for line, (r, d) in enumerate(pairs, 2)]


async def test_a_merge_adds_new_keys_changes_changed_ones_and_leaves_the_rest(
        private: Config) -> None:
    account = 5000
    conn = await asyncpg.connect(private.database_url)
    try:
        await conn.execute(
            """INSERT INTO suppression.entries (account_id, recipient, type, domain, source,
                   description)
               VALUES ($1, 'same@x.com', 'transactional', 'x.com', 'Manually Added', 'same'),
                      ($1, 'old@x.com', 'transactional', 'x.com', 'Manually Added', 'old'),
                      ($1, 'legal@x.com', 'transactional', 'x.com', 'Compliance', 'kept')""",
            account)
        before = {r["recipient"]: r["updated"] for r in await conn.fetch(
            "SELECT recipient, updated FROM suppression.entries WHERE account_id = $1",
            account)}
        await merge_one(conn, account, staged_rows([
            ("new@x.com", "first"), ("same@x.com", "same"), ("old@x.com", "new"),
            ("legal@x.com", "overwritten?"), ("new@x.com", "last wins")]))
        assert await entries(conn, account) == {
            ("new@x.com", "transactional"): ("Manually Added", "last wins"),
            ("same@x.com", "transactional"): ("Manually Added", "same"),
            ("old@x.com", "transactional"): ("Manually Added", "new"),
            ("legal@x.com", "transactional"): ("Compliance", "kept")}
        after = {r["recipient"]: r["updated"] for r in await conn.fetch(
            "SELECT recipient, updated FROM suppression.entries WHERE account_id = $1",
            account)}
        assert after["same@x.com"] == before["same@x.com"]  # unchanged: not rewritten
        assert after["legal@x.com"] == before["legal@x.com"]
        assert await conn.fetchval("SELECT count(*) FROM import_staging") == 0
    finally:
        await conn.close()


def test_a_batch_splits_into_disjoint_recipient_ranges_in_line_order() -> None:
    rows = [(line, f"r{line % 997}@x.com", "", "transactional", "x.com", str(line))
            for line in range(10_000)]
    for parts in (2, 3):
        split = imports.split_by_recipient(rows, parts)
        assert len(split) == parts and all(split)
        assert sorted(r for part in split for r in part) == rows
        for part in split:
            assert part == sorted(part)  # line order kept: the last duplicate wins
        ranges = [(min(r[1] for r in p), max(r[1] for r in p)) for p in split]
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
    assert imports.split_by_recipient(rows[:10], 2) == [rows[:10], []]


async def test_merging_connections_side_by_side_give_the_same_rows(private: Config) -> None:
    store = await Store.connect(private.database_url, 1, 2)
    conns = [await asyncpg.connect(private.database_url) for _ in range(3)]
    try:
        lines = [f"r{i % 3000}@example.com,transactional,line {i}\n" for i in range(9000)]
        job_id = await imports.upload(
            store, Scope(78, None), "csv",
            body(("recipient,type,description\n" + "".join(lines)).encode()), 4096)
        jobs, helper = JobStore(conns[0]), JobStore(conns[2])
        for each in (jobs, helper):
            await each.ensure_staging()
        assert await worker.run_one(private, jobs, conns[1], asyncio.Event(), [helper])
        job = await store.job(Scope(78, None), job_id)
        assert job is not None
        assert (job["state"], job["rows_read"], job["rows_written"]) == ("done", 9000, 9000)
        got = await entries(conns[0], 78)
        assert len(got) == 3000
        # the last of each recipient's three lines won, across batches and key ranges
        assert all(d == f"line {6000 + int(r[1:].split('@')[0])}"
                   for (r, _), (_, d) in got.items())
    finally:
        for c in conns:
            await c.close()
        await store.close()
