"""The lookup service on a streaming replica (hot standby), the list service and the import
workers on the primary: the sending path's reads leave the primary to bulk work. Real
PostgreSQL replication (pg_basebackup, WAL streaming), the whole stack, the gateway."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.stack import PORTS, Stack, StackSettings
from portcullis.pgcluster import Cluster
from portcullis.procs import free_port

BASE = "/api/v1/suppression-list"


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[Stack, Cluster, Cluster]]:
    # Not under pytest's temp folder (0700): the postgres user must reach both data folders.
    root = Path(tempfile.mkdtemp(prefix="portcullis-replica-"))
    os.chmod(root, 0o755)
    primary = Cluster(root / "primary", free_port(), durable=False)
    standby = Cluster(root / "standby", free_port(), durable=False)
    stack: Stack | None = None
    try:
        primary.start()
        standby.init_standby_of(primary)
        standby.start()
        stack = Stack(StackSettings(var=root / "stack",
                                    ports={name: free_port() for name in PORTS},
                                    database_url=primary.dsn,
                                    lookup_database_url=standby.dsn, gateway_workers=1))
        stack.start(say=lambda *_: None)  # migrates the primary; the standby replays it
        yield stack, primary, standby
    finally:
        if stack is not None:
            stack.stop()
        standby.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def until(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_lookups_are_answered_by_the_replica_and_follow_writes_to_the_primary(
        replicated: tuple[Stack, Cluster, Cluster]) -> None:
    stack, primary, standby = replicated
    assert asyncio.run(fetch(standby.dsn, "SELECT pg_is_in_recovery()"))[0][0] is True
    streaming = asyncio.run(fetch(primary.dsn, "SELECT state FROM pg_stat_replication"))
    assert [r["state"] for r in streaming] == ["streaming"]

    account = stack.create_account("replica")
    key = str(stack.create_key(account, ["suppression_lists/manage"])["key"])
    recipient = "Replica.Reader@Example.COM"
    with httpx.Client(base_url=stack.gateway_url, timeout=10,
                      headers={"Authorization": key}) as gw:
        # Written through the list service, on the primary.
        put = gw.put(f"{BASE}/{recipient}", json={"type": "transactional",
                                                  "description": "bounced"})
        assert put.status_code == 200, put.text

        # Read through the lookup service, on the standby, once replayed there.
        found = until(lambda: (r := gw.get(f"{BASE}/{recipient}")).status_code == 200 and r,
                      "the replica to show the new entry")
        [entry] = found.json()["results"]
        assert (entry["recipient"], entry["type"], entry["description"]) == (
            "Replica.Reader@example.com", "transactional", "bounced")
        batch = gw.post(f"{BASE}/lookup", json={"recipients": [recipient, "no@example.com"]})
        assert batch.status_code == 200, batch.text
        assert [r["recipient"] for r in batch.json()["results"]["suppressed"]] == [
            "Replica.Reader@example.com"]

        # Those answers came from the standby: the lookup service's connections are there
        # (nothing else of the stack connects to it).
        on_standby = asyncio.run(fetch(standby.dsn, "SELECT count(*) FROM pg_stat_activity "
                                       "WHERE backend_type = 'client backend' "
                                       "AND pid <> pg_backend_pid()"))[0][0]
        assert on_standby >= 1

        # A delete on the primary reaches the replica's answers too.
        deleted = gw.delete(f"{BASE}/{recipient}")
        assert deleted.status_code == 204, deleted.text
        until(lambda: gw.get(f"{BASE}/{recipient}").status_code == 404,
              "the replica to drop the entry")


def test_the_replica_refuses_writes_so_a_lookup_service_on_it_cannot_write(
        replicated: tuple[Stack, Cluster, Cluster]) -> None:
    _, _, standby = replicated

    async def write() -> None:
        conn = await asyncpg.connect(standby.dsn)
        try:
            await conn.execute("DELETE FROM suppression.entries")
        finally:
            await conn.close()

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        asyncio.run(write())
