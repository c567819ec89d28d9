"""The export's cheaper SQL and its two-connection COPY give the same rows and bytes."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from services.suppression import store as store_module
from services.suppression.model import Scope
from services.suppression.search import parse_filters
from services.suppression.store import EXPORT_SETTINGS, Store
from tests.suppression.conftest import BASE, Api

EXPORT = f"{BASE}/export"
TRICKY = ["plain", 'has "quotes", commas\nand a newline', "=SUM(A1)", "+1", "-1", "@x",
          "\tTab", "\rCR", "", "ünï ✓", "back\\slash"]


async def test_stamps_and_neutralising_match_to_char_and_csv_safe(store: Store) -> None:
    stamps = ["2026-01-02 03:04:05.999999+05:30", "1999-12-31 23:59:59.5-08",
              "2026-06-01 00:00:00+00", "2024-02-29 12:00:00.000001+00", "2026-03-29 01:30:00+01"]
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL TimeZone = 'America/New_York'; "
                           "SET LOCAL DateStyle = 'German, DMY'")  # whatever a session had
        old = [await conn.fetchval(
            "SELECT to_char($1::text::timestamptz AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')", s) for s in stamps]
        safe_old = [await conn.fetchval("SELECT suppression.csv_safe($1)", t) for t in TRICKY]
        await conn.execute(EXPORT_SETTINGS)
        new = [await conn.fetchval(
            "SELECT replace(date_trunc('second', $1::text::timestamptz)::text, ' ', 'T') || ':00'",
            s) for s in stamps]
        safe_new = [await conn.fetchval(
            "SELECT CASE WHEN ascii($1) IN (61, 43, 45, 64, 9, 13) THEN '''' || $1 "
            "ELSE $1 END", t) for t in TRICKY]
    assert new == old
    assert safe_new == safe_old


@pytest.fixture
def split_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every export that spans two pages or more (a test's few hundred rows)."""
    monkeypatch.setattr(store_module, "EXPORT_SPLIT_PAGES", 2)


def rows_of(fmt: str, text: str) -> list[Any]:
    if fmt == "csv":
        return list(csv.reader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


async def seed(api: Api) -> None:
    for start in (0, 400):
        await api.bulk([{"recipient": f"r{i}@example.com",
                         "type": "transactional" if i % 3 else "non_transactional",
                         "list_id": "news" if i % 5 == 0 else None,
                         "description": TRICKY[i % len(TRICKY)] + f" {i}" * (i % 7)}
                        for i in range(start, start + 400)])


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_a_split_export_has_every_row_once(api: Api, split_small: None,
                                                 fmt: str) -> None:
    await seed(api)
    await api.as_sub(3).bulk([{"recipient": "s@example.com", "type": "transactional"}])
    ordered = await api.call("GET", EXPORT, params={"format": fmt, "sort": "asc"})
    split = await api.call("GET", EXPORT, params={"format": fmt})
    assert split.status_code == ordered.status_code == 200
    want, got = rows_of(fmt, ordered.text), rows_of(fmt, split.text)
    if fmt == "csv":
        assert got[0] == want[0]  # the header first
        want, got = want[1:], got[1:]
    assert len(got) == len(want) == 801
    key = json.dumps
    assert sorted(map(key, got)) == sorted(map(key, want))
    # Filters apply to both halves.
    resp = await api.call("GET", EXPORT, params={"format": fmt, "list_id": "news"})
    assert len(rows_of(fmt, resp.text)) == 160 + (fmt == "csv")


async def test_export_splits_only_big_partitions_and_in_one_snapshot(
        api: Api, store: Store, split_small: None) -> None:
    await seed(api)
    chunks: list[bytes] = []

    async def output(chunk: bytes) -> None:
        chunks.append(chunk)
        if len(chunks) == 2:  # written after the snapshot: not in this export
            await api.bulk([{"recipient": "late@example.com", "type": "transactional"}])

    scope = Scope(api.account_id, None)
    await store.export(scope, parse_filters({}), "csv", False, output)
    text = b"".join(chunks).decode()
    assert "late@example.com" not in text
    assert len(rows_of("csv", text)) == 801
    async with store.pool.acquire() as conn:
        assert await store.export_split(conn, api.account_id) is not None
        store_module.EXPORT_SPLIT_PAGES = 10**9  # restored by split_small's monkeypatch
        assert await store.export_split(conn, api.account_id) is None


async def test_a_busy_pool_exports_both_halves_on_one_connection(api: Api, config: Any,
                                                                split_small: None) -> None:
    await seed(api)
    small = await Store.connect(config.database_url, 1, 1)
    try:
        chunks: list[bytes] = []

        async def output(chunk: bytes) -> None:
            chunks.append(chunk)

        await small.export(Scope(api.account_id, None), parse_filters({}), "csv", False,
                           output)
    finally:
        await small.close()
    rows = rows_of("csv", b"".join(chunks).decode())
    assert rows[0][0] == "recipient" and len(rows) == 801
