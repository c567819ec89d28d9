"""Search with every parameter, its pagination and links, and the summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from services.suppression.model import Entry
from services.suppression.store import Store
from tests.suppression.conftest import Api, error_messages

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def seed(api: Api, store: Store) -> None:
    """12 entries with known updated times: hour i for entry i."""
    rows = [
        # recipient, type, list, source, description, subaccount
        ("a0@one.example", "transactional", "", "Manually Added", "welcome mail", 0),
        ("a1@one.example", "non_transactional", "", "Bounce Rule", "hard bounce", 0),
        ("a2@two.example", "transactional", "news", "Spam Complaint", "fbl", 0),
        ("a3@two.example", "non_transactional", "news", "List Unsubscribe", "one click", 0),
        ("a4@one.example", "transactional", "", "Unsubscribe Link", "footer link", 3),
        ("a5@three.example", "non_transactional", "promo", "Manually Added", "100% done", 3),
        ("a6@three.example", "transactional", "", "Compliance", "legal hold", 0),
        ("a7@one.example", "non_transactional", "", "Manually Added", "Welcome Mail", 0),
        ("a8@two.example", "transactional", "", "Bounce Rule", "soft_bounce", 4),
        ("a9@two.example", "non_transactional", "", "Manually Added", "", 0),
        ("a10@one.example", "transactional", "promo", "Manually Added", "welcome", 0),
        ("a11@one.example", "non_transactional", "", "Manually Added", "welcome mail", 0),
    ]
    for recipient, kind, list_id, source, description, sub in rows:
        await store.upsert(api.account_id, sub,
                           [Entry(recipient, kind, list_id, description, source)])
    async with store.pool.acquire() as conn:
        for i, row in enumerate(rows):
            await conn.execute(
                "UPDATE suppression.entries SET updated = $3, created = $3 "
                "WHERE account_id = $1 AND recipient = $2",
                api.account_id, row[0], T0 + timedelta(hours=i))


@pytest.fixture
async def seeded(api: Api, store: Store) -> Api:
    await seed(api, store)
    return api


def names(resp: object) -> list[str]:
    return [r["recipient"].split("@")[0] for r in resp.json()["results"]]  # type: ignore[attr-defined]


def stamp(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("params", "expected"), [
    ({}, [f"a{i}" for i in range(11, -1, -1)]),
    ({"sort": "asc"}, [f"a{i}" for i in range(12)]),
    ({"from": stamp(9)}, ["a11", "a10", "a9"]),
    ({"to": stamp(2)}, ["a2", "a1", "a0"]),
    ({"from": stamp(3), "to": stamp(4), "sort": "asc"}, ["a3", "a4"]),
    ({"domain": "TWO.example"}, ["a9", "a8", "a3", "a2"]),
    ({"sources": "Bounce Rule,Spam Complaint"}, ["a8", "a2", "a1"]),
    ({"sources": "Compliance"}, ["a6"]),
    ({"types": "transactional"}, ["a10", "a8", "a6", "a4", "a2", "a0"]),
    ({"types": "transactional,non_transactional", "domain": "three.example"}, ["a6", "a5"]),
    ({"description": "welcome"}, ["a11", "a10", "a7", "a0"]),
    ({"description": "welcome mail", "description_strict": "true"}, ["a11", "a0"]),
    ({"description": "welcome mail", "description_strict": "false"}, ["a11", "a7", "a0"]),
    ({"description": "100%"}, ["a5"]),
    ({"description": "soft_"}, ["a8"]),
    ({"list_id": "news"}, ["a3", "a2"]),
    ({"list_id": "promo", "sort": "asc"}, ["a5", "a10"]),
    ({"list_id": ""}, ["a11", "a9", "a8", "a7", "a6", "a4", "a1", "a0"]),
    ({"domain": "one.example", "types": "non_transactional", "from": stamp(2)}, ["a11", "a7"]),
])
async def test_search_filters(seeded: Api, params: dict[str, str], expected: list[str]) -> None:
    resp = await seeded.search(**params)
    assert resp.status_code == 200, resp.text
    assert names(resp) == expected
    assert resp.json()["total_count"] == len(expected)


async def test_search_records_have_every_field(seeded: Api) -> None:
    resp = await seeded.search(list_id="news", sort="asc")
    record = resp.json()["results"][0]
    assert record == {
        "recipient": "a2@two.example", "type": "transactional", "source": "Spam Complaint",
        "description": "fbl", "list_id": "news", "subaccount_id": 0,
        "created": "2026-01-01T02:00:00+00:00", "updated": "2026-01-01T02:00:00+00:00",
        "transactional": True, "non_transactional": False,
    }


async def test_search_is_scoped_by_subaccount(seeded: Api) -> None:
    assert names(await seeded.as_sub(3).search(sort="asc")) == ["a4", "a5"]
    assert names(await seeded.as_sub(4).search()) == ["a8"]
    assert len(names(await seeded.as_sub(0).search())) == 9
    assert len(names(await seeded.as_sub(None).search())) == 12
    assert names(await seeded.as_sub(99).search()) == []


async def test_search_never_shows_another_account(seeded: Api, other_api: Api) -> None:
    resp = await other_api.search()
    assert resp.json() == {"results": [], "links": resp.json()["links"], "total_count": 0}


async def test_cursor_pages_walk_the_whole_list_once(seeded: Api) -> None:
    seen: list[str] = []
    resp = await seeded.search(cursor="initial", per_page=5)
    while True:
        body = resp.json()
        assert body["total_count"] == 12
        seen += names(resp)
        rels = {link["rel"]: link["href"] for link in body["links"]}
        assert "first" in rels
        if "next" not in rels:
            break
        query = {k: v[0] for k, v in parse_qs(urlsplit(rels["next"]).query).items()}
        assert query["per_page"] == "5"
        resp = await seeded.search(**query)
    assert seen == [f"a{i}" for i in range(11, -1, -1)]


async def test_cursor_pages_keep_the_filters_and_the_sort(seeded: Api) -> None:
    resp = await seeded.search(cursor="initial", per_page=2, domain="one.example", sort="asc")
    rels = {link["rel"]: link["href"] for link in resp.json()["links"]}
    query = {k: v[0] for k, v in parse_qs(urlsplit(rels["next"]).query).items()}
    assert query["domain"] == "one.example" and query["sort"] == "asc"
    assert names(resp) == ["a0", "a1"]
    assert names(await seeded.search(**query)) == ["a4", "a7"]


async def test_a_cursor_ignores_page(seeded: Api) -> None:
    assert names(await seeded.search(cursor="initial", page=3, per_page=2)) == ["a11", "a10"]


async def test_page_numbers_and_their_links(seeded: Api) -> None:
    resp = await seeded.search(page=2, per_page=5)
    assert names(resp) == ["a6", "a5", "a4", "a3", "a2"]
    rels = {link["rel"]: link["href"] for link in resp.json()["links"]}
    assert set(rels) == {"first", "previous", "next", "last"}
    assert "page=3" in rels["next"] and "page=1" in rels["previous"]
    assert "page=3" in rels["last"]
    assert names(await seeded.search(page=3, per_page=5)) == ["a1", "a0"]


async def test_deprecated_limit_sets_the_page_size(seeded: Api) -> None:
    assert names(await seeded.search(limit=3)) == ["a11", "a10", "a9"]
    assert names(await seeded.search(limit=3, per_page=2)) == ["a11", "a10"]


async def test_the_default_page_is_a_thousand(api: Api) -> None:
    resp = await api.bulk([{"recipient": f"p{i}@example.com", "type": "transactional"}
                           for i in range(1001)])
    assert resp.status_code == 200
    body = (await api.search()).json()
    assert len(body["results"]) == 1000 and body["total_count"] == 1001


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "yesterday"}, "Invalid from date"),
    ({"to": "2026-13-01T00:00:00Z"}, "Invalid to date"),
    ({"from": stamp(5), "to": stamp(1)}, "from must be before to"),
    ({"sources": "Manually Added,Carrier Pigeon"}, "Invalid sources: Carrier Pigeon"),
    ({"types": "marketing"}, "Invalid types: marketing"),
    ({"per_page": "0"}, "Invalid per_page"),
    ({"per_page": "10001"}, "Invalid per_page"),
    ({"per_page": "ten"}, "Invalid per_page"),
    ({"limit": "0"}, "Invalid limit"),
    ({"page": "0"}, "Invalid page"),
    ({"page": "11", "per_page": "1000"}, "Page out of range"),
    ({"sort": "sideways"}, "Invalid sort"),
    ({"cursor": "garbage!"}, "Invalid cursor"),
    ({"description_strict": "maybe", "description": "x"}, "Invalid description_strict"),
    ({"list_id": "bad list"}, "Invalid list_id"),
])
async def test_search_refuses_bad_parameters(api: Api, params: dict[str, str],
                                             message: str) -> None:
    resp = await api.search(**params)
    assert resp.status_code == 400
    assert error_messages(resp) == [message]


async def test_get_of_one_recipient_covers_every_list_and_takes_types_and_pages(
        api: Api) -> None:
    for list_id in (None, "a", "b"):
        for kind in ("transactional", "non_transactional"):
            await api.put("many@example.com",
                          {"type": kind} | ({"list_id": list_id} if list_id else {}))
    body = (await api.get("many@example.com")).json()
    assert body["total_count"] == 6 and len(body["results"]) == 6
    body = (await api.get("many@example.com", params={"types": "transactional"})).json()
    assert {r["type"] for r in body["results"]} == {"transactional"}
    assert body["total_count"] == 3
    body = (await api.get("many@example.com", params={"per_page": 4})).json()
    assert len(body["results"]) == 4
    assert body["links"][0]["rel"] == "next"
    body2 = (await api.get("many@example.com", params={"per_page": 4, "page": 2})).json()
    assert len(body2["results"]) == 2
    first = (await api.get("many@example.com", params={"per_page": 4,
                                                       "cursor": "initial"})).json()
    nxt = first["links"][0]["href"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(nxt).query).items()}
    rest = (await api.get("many@example.com", params=query)).json()
    assert len(first["results"]) + len(rest["results"]) == 6


async def test_summary_counts_each_source_and_the_total(seeded: Api) -> None:
    resp = await seeded.summary()
    assert resp.status_code == 200
    assert resp.json() == {"results": {
        "compliance": 1, "manually_added": 6, "unsubscribe_link": 1, "bounce_rule": 2,
        "list_unsubscribe": 1, "spam_complaint": 1, "total": 12}}
    sub = (await seeded.as_sub(3).summary()).json()["results"]
    assert (sub["total"], sub["manually_added"], sub["unsubscribe_link"]) == (2, 1, 1)


async def test_summary_of_an_empty_account_is_zeroes(api: Api) -> None:
    assert (await api.summary()).json()["results"]["total"] == 0


async def test_past_the_count_cap_the_total_is_an_estimate_and_says_so(
        seeded: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.suppression import store as store_module

    exact = (await seeded.search()).json()
    assert exact["total_count"] == 12 and "total_count_estimated" not in exact
    monkeypatch.setattr(store_module, "COUNT_CAP", 5)
    body = (await seeded.search(cursor="initial", per_page=4)).json()
    assert body["total_count_estimated"] is True
    assert body["total_count"] >= 6
    assert len(body["results"]) == 4


@pytest.mark.parametrize(("params", "message"), [
    ({"types": "marketing"}, "Invalid types: marketing"),
    ({"per_page": "0"}, "Invalid per_page"),
    ({"page": "0"}, "Invalid page"),
    ({"cursor": "-1"}, "Invalid cursor"),
    ({"cursor": "abc"}, "Invalid cursor"),
])
async def test_get_of_one_recipient_refuses_bad_parameters(api: Api, params: dict[str, str],
                                                           message: str) -> None:
    await api.put("p@example.com", {"type": "transactional"})
    resp = await api.get("p@example.com", params=params)
    assert resp.status_code == 400
    assert error_messages(resp) == [message]


async def test_head_answers_like_get_without_a_body(api: Api) -> None:
    await api.put("h@example.com", {"type": "transactional"})
    resp = await api.call("HEAD", "/api/v1/suppression-list/h@example.com")
    assert resp.status_code == 200 and resp.content == b""
    resp = await api.call("HEAD", "/api/v1/suppression-list/none@example.com")
    assert resp.status_code == 404


@pytest.mark.parametrize("strict", [False, True])
async def test_a_description_search_uses_the_trigram_index(store: Store, strict: bool) -> None:
    # The index covers non-empty descriptions only: unless the search says it wants those,
    # the planner cannot use it, and a rare description meant reading the whole account
    # (while every import paid to keep the index up to date).
    from services.suppression.model import Scope
    from services.suppression.search import Filters
    from services.suppression.store import filter_where
    from tests.suppression.conftest import new_account

    account = new_account()
    rows = [(account, f"r{i}@d{i % 50}.example", "transactional", f"d{i % 50}.example",
             "Manually Added", f"common text {i % 7}") for i in range(20_000)]
    rows.append((account, "needle@x.example", "transactional", "x.example", "Manually Added",
                 "the needle"))
    async with store.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "entries", schema_name="suppression", records=rows,
            columns=("account_id", "recipient", "type", "domain", "source", "description"))
        # merge the GIN pending list, as autovacuum would, and refresh the statistics
        await conn.execute("VACUUM ANALYZE suppression.entries")
        where = filter_where(Scope(account_id=account, subaccount_id=None),
                             Filters(description="the needle" if strict else "needle",
                                     description_strict=strict))
        plan = "\n".join(r[0] for r in await conn.fetch(
            f"EXPLAIN SELECT 1 FROM suppression.entries WHERE {where.sql()}", *where.args))
        await conn.execute("DELETE FROM suppression.entries WHERE account_id = $1", account)
    assert "description_idx" in plan, plan
