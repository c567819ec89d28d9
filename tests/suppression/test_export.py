"""Streaming export: CSV and NDJSON, the search filters, formula neutralisation."""

from __future__ import annotations

import csv
import io
import json

import pytest

from services.suppression.model import Entry
from services.suppression.store import Store
from tests.suppression.conftest import BASE, Api, error_messages

EXPORT = f"{BASE}/export"


async def export(api: Api, **params: str) -> tuple[str, str]:
    resp = await api.call("GET", EXPORT, params=params)
    assert resp.status_code == 200, resp.text
    return resp.headers["content-type"], resp.text


async def test_csv_export_has_a_header_and_every_record(api: Api) -> None:
    await api.bulk([
        {"recipient": "a@example.com", "type": "transactional", "description": "plain"},
        {"recipient": "b@example.com", "type": "non_transactional", "list_id": "news",
         "description": 'has "quotes", commas\nand a newline'},
    ])
    ctype, text = await export(api, format="csv", sort="asc")
    assert ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["recipient"] for r in rows] == ["a@example.com", "b@example.com"]
    assert list(rows[0]) == ["recipient", "type", "source", "description", "list_id",
                             "subaccount_id", "created", "updated"]
    assert rows[1]["description"] == 'has "quotes", commas\nand a newline'
    assert rows[1]["list_id"] == "news" and rows[0]["list_id"] == ""
    assert rows[0]["updated"].endswith("+00:00")


async def test_csv_export_is_the_default_format(api: Api) -> None:
    await api.bulk([{"recipient": "a@example.com", "type": "transactional"}])
    ctype, text = await export(api)
    assert ctype.startswith("text/csv") and text.startswith("recipient,type")


async def test_ndjson_export_writes_one_object_a_line(api: Api) -> None:
    await api.bulk([
        {"recipient": "a@example.com", "type": "transactional", "description": 'q"\\\t'},
        {"recipient": "b@example.com", "type": "non_transactional", "list_id": "news"},
    ])
    ctype, text = await export(api, format="ndjson", sort="asc")
    assert ctype.startswith("application/x-ndjson")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [x["recipient"] for x in lines] == ["a@example.com", "b@example.com"]
    assert lines[0]["description"] == 'q"\\\t'
    assert lines[0]["list_id"] is None and lines[1]["list_id"] == "news"
    assert set(lines[0]) == {"recipient", "type", "source", "description", "list_id",
                             "subaccount_id", "created", "updated"}


async def test_csv_cells_that_start_a_formula_are_neutralised(api: Api, store: Store) -> None:
    dangerous = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    await store.upsert(api.account_id, 0, [
        Entry(f"d{i}@example.com", "transactional", description=d)
        for i, d in enumerate(dangerous)] + [Entry("=cmd@example.com", "transactional",
                                                   description="safe")])
    _, text = await export(api, format="csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    by_recipient = {r["recipient"]: r["description"] for r in rows}
    for i, d in enumerate(dangerous):
        assert by_recipient[f"d{i}@example.com"] == "'" + d
    assert "'=cmd@example.com" in by_recipient
    assert by_recipient["'=cmd@example.com"] == "safe"


async def test_export_takes_the_search_filters_and_the_scope(api: Api, other_api: Api) -> None:
    await api.bulk([{"recipient": f"x{i}@one.example", "type": "transactional"}
                    for i in range(3)] +
                   [{"recipient": "y@two.example", "type": "non_transactional"}])
    await api.as_sub(4).bulk([{"recipient": "z@two.example", "type": "transactional"}])
    _, text = await export(api, format="ndjson", domain="two.example")
    assert sorted(json.loads(x)["recipient"] for x in text.splitlines()) == [
        "y@two.example", "z@two.example"]
    _, text = await export(api, format="ndjson", types="transactional")
    assert len(text.splitlines()) == 4
    _, text = await export(api.as_sub(4), format="ndjson")
    assert [json.loads(x)["recipient"] for x in text.splitlines()] == ["z@two.example"]
    _, text = await export(other_api, format="csv")
    assert text.splitlines() == ["recipient,type,source,description,list_id,subaccount_id,"
                                 "created,updated"]


async def test_a_large_export_streams_every_row(api: Api) -> None:
    for start in range(0, 30_000, 10_000):
        await api.bulk([{"recipient": f"r{i}@example.com", "type": "transactional"}
                        for i in range(start, start + 10_000)])
    _, text = await export(api, format="csv")
    assert len(text.splitlines()) == 30_001


@pytest.mark.parametrize(("params", "message"), [
    ({"format": "xml"}, "Invalid format"),
    ({"domain": "x.com", "from": "nope"}, "Invalid from date"),
    ({"sources": "Nope"}, "Invalid sources: Nope"),
])
async def test_export_refuses_bad_parameters(api: Api, params: dict[str, str],
                                             message: str) -> None:
    resp = await api.call("GET", EXPORT, params=params)
    assert resp.status_code == 400
    assert error_messages(resp) == [message]
