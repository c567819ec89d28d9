"""The lookup service's hot path (services.suppression.app.LookupApp) answers exactly as the
Starlette stack around it would: the same context check, bodies and errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers

from portcullis.context import ContextError, ContextKeys, signed_headers, verify
from services.suppression.app import FastContext
from tests.suppression.conftest import BASE, KEYS, ROOT_SECRET, Api, error_messages

URI = f"{BASE}/jane@example.com?types=transactional"


def scope_of(headers: list[tuple[str, str]], method: str = "GET",
             uri: str = URI) -> dict[str, Any]:
    path, _, qs = uri.partition("?")
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": qs.encode(),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in headers]}


def outcome(fn: Any, scope: dict[str, Any]) -> Any:
    try:
        return fn(scope)
    except ContextError as exc:
        return ("error", exc.status, exc.entries)


def reference(scope: dict[str, Any]) -> Any:
    uri = scope["path"] + (f"?{scope['query_string'].decode()}" if scope["query_string"]
                           else "")
    return verify(KEYS, scope["method"], uri, Headers(scope=scope))


def good(**kw: Any) -> list[tuple[str, str]]:
    return list(signed_headers(KEYS, "GET", URI, **{"account_id": 7, **kw}).items())


def cases() -> list[list[tuple[str, str]]]:
    base = good(subaccount_id=3, grants=["suppression_lists/view", "x"])
    sig = dict(base)["X-Gateway-Signature"]
    replace = lambda name, value: [(k, value if k == name else v) for k, v in base]  # noqa: E731
    without = lambda name: [(k, v) for k, v in base if k != name]  # noqa: E731
    return [
        base,
        good(),
        good(subaccount_id=0),
        [("Host", "x"), *base, ("Accept", "*/*")],
        without("X-Gateway-Signature"),
        replace("X-Gateway-Signature", ""),
        replace("X-Gateway-Signature", sig.upper()),
        replace("X-Gateway-Signature", "0" * 64),
        without("X-Gateway-Timestamp"),
        replace("X-Gateway-Timestamp", "12x"),
        replace("X-Gateway-Timestamp", str(int(time.time()) - 3600)),
        good(timestamp=int(time.time()) + 3600),
        replace("X-Account-Id", "8"),
        replace("X-Subaccount-Id", ""),
        without("X-Grants"),
        [*base, ("X-Grants", "admin")],
        [*base, ("X-Request-Id", "again"), ("X-Account-Id", "8")],
        [*base, ("X-Gateway-Signature", sig)],
        list(signed_headers(KEYS, "GET", URI, account_id=-1).items()),
        [(k, "abc" if k == "X-Account-Id" else v) for k, v in base],
        [("X-Account-Id", "7"), ("X-Gateway-Signature", "ab")],
        # made for another service (same root, so the same key id): refused
        list(signed_headers(ContextKeys.for_roots(ROOT_SECRET, "auth"), "GET", URI,
                            account_id=7).items()),
        replace("X-Gateway-Signature", "ffffffff:" + sig.partition(":")[2]),
    ]


@pytest.mark.parametrize("index", range(len(cases())))
def test_the_fast_context_check_agrees_with_the_reference(index: int) -> None:
    scope = scope_of(cases()[index])
    assert outcome(FastContext(KEYS).verify, scope) == outcome(reference, scope)


def test_the_fast_context_check_binds_method_and_uri() -> None:
    scope = scope_of(good())
    for other in (scope_of(good(), method="HEAD"),
                  scope_of(good(), uri=f"{BASE}/jane@example.com"),
                  scope_of(good(), uri=f"{BASE}/john@example.com?types=transactional")):
        other["headers"] = scope["headers"]
        assert outcome(FastContext(KEYS).verify, other) == outcome(reference, other)
        assert outcome(reference, other)[0] == "error"


async def test_hot_paths_refuse_unsigned_requests(clients: dict[str, httpx.AsyncClient]
                                                  ) -> None:
    lookup = clients["lookup"]
    for method, path in (("GET", f"{BASE}/a@example.com"), ("HEAD", f"{BASE}/a@example.com"),
                         ("POST", f"{BASE}/lookup")):
        resp = await lookup.request(method, path)
        assert resp.status_code == 401
        if method != "HEAD":
            assert error_messages(resp) == ["Unauthorized"]


async def test_the_lookup_service_keeps_its_other_answers(api: Api) -> None:
    await api.bulk([{"recipient": "kept@example.com", "type": "transactional"}])
    resp = await api.call("HEAD", f"{BASE}/kept@example.com")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    for name in ("lookup", "summary", "imports", "export"):
        resp = await api.call("GET", f"{BASE}/{name}", role="lookup")
        assert resp.status_code == 404
        assert error_messages(resp) == ["Not found"]
    # Open path: answered (404) without a signature, as before.
    resp = await api.clients["lookup"].get(f"{BASE}/openapi.json")
    assert resp.status_code == 404
    resp = await api.call("PUT", f"{BASE}/kept@example.com", json={"type": "transactional"},
                          role="lookup")
    assert resp.status_code == 405
    assert set(resp.headers["allow"].split(", ")) == {"GET", "HEAD"}
    resp = await api.call("GET", f"{BASE}/lookup?x=1", role="lookup")
    assert resp.status_code == 404
    # the list itself (a trailing slash is ignored): not the lookup service's
    resp = await api.call("GET", f"{BASE}/", role="lookup")
    assert resp.status_code == 404
    resp = await api.call("GET", f"{BASE}/kept@example.com", params={"per_page": "0"})
    assert resp.status_code == 400
    resp = await api.call("POST", f"{BASE}/lookup", content=b"{", role="lookup")
    assert resp.status_code == 400
    assert error_messages(resp) == ["Problems parsing request as json"]
    resp = await api.call("POST", f"{BASE}/lookup", content=b"a",
                          headers={"Content-Type": "text/plain"}, role="lookup")
    assert resp.status_code == 415
    resp = await api.clients["lookup"].get("/healthz")
    assert resp.status_code == 200


@pytest.fixture
async def both(clients: dict[str, httpx.AsyncClient]) -> Any:
    """The lookup app as served, and the same app with its hot path bypassed."""
    from starlette.applications import Starlette

    app: Any = clients["lookup"]._transport.app  # type: ignore[attr-defined]

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await Starlette.__call__(app, scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                 base_url="http://suppression.test") as client:
        yield clients["lookup"], client


async def test_answers_equal_those_of_the_starlette_stack(api: Api, both: Any) -> None:
    fast, plain = both
    await api.bulk([{"recipient": "eq@example.com", "type": "transactional"},
                    {"recipient": "eq@example.com", "type": "non_transactional",
                     "list_id": "news", "description": 'quote " back \\ ü'},
                    {"recipient": 'we"ird@example.com', "type": "transactional"}])
    await api.as_sub(4).bulk([{"recipient": "eq@example.com", "type": "transactional"}])
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"{BASE}/eq@example.com", {}),
        ("GET", f"{BASE}/eq@EXAMPLE.com", {}),
        ("GET", f"{BASE}/eq@example.com?per_page=1", {}),
        ("GET", f"{BASE}/eq@example.com?per_page=1&page=2&types=transactional", {}),
        ("GET", f"{BASE}/eq@example.com?cursor=initial&per_page=2", {}),
        ("GET", f"{BASE}/eq@example.com?cursor=9", {}),
        ("GET", f"{BASE}/eq@example.com?types=marketing", {}),
        ("GET", f"{BASE}/we%22ird@example.com", {}),
        ("GET", f"{BASE}/nobody@example.com", {}),
        ("GET", f"{BASE}/broken", {}),
        ("GET", f"{BASE}/summary", {}),
        ("HEAD", f"{BASE}/eq@example.com", {}),
        ("POST", f"{BASE}/lookup", {"json": {"recipients": ["eq@example.com", "x",
                                                            'we"ird@example.com', 5]}}),
        ("POST", f"{BASE}/lookup", {"json": {"recipients": ["eq@example.com"],
                                             "list_id": "news"}}),
        ("POST", f"{BASE}/lookup", {"json": {"recipients": "no"}}),
        ("POST", f"{BASE}/lookup", {"json": {"recipients": [], "type": "x"}}),
        ("POST", f"{BASE}/lookup", {"content": b""}),
        ("POST", f"{BASE}/lookup", {"content": b"[1]"}),
    ]
    for sub in (None, 0, 4):
        for method, uri, kw in calls:
            raw = httpx.URL("http://suppression.test" + uri).raw_path.decode()
            headers = signed_headers(KEYS, method, raw, account_id=api.account_id,
                                     subaccount_id=sub)
            got = [await c.request(method, raw, headers=headers, **kw) for c in (fast, plain)]
            assert got[0].status_code == got[1].status_code, (method, uri)
            assert got[0].content == got[1].content, (method, uri)
            assert sorted(got[0].headers.items()) == sorted(got[1].headers.items())


async def test_concurrent_lookups_answer_as_one_at_a_time(api: Api, other_api: Api) -> None:
    """Lookups that wait for a query in flight go out together (store.Lookups): each still
    gets exactly its own recipient's entries in its own scope."""
    import asyncio

    people = [f"p{i}@example.com" for i in range(6)]
    await api.bulk([{"recipient": p, "type": "transactional"} for p in people[:4]])
    await api.as_sub(5).bulk([{"recipient": p, "type": "non_transactional",
                               "list_id": "l1"} for p in people[2:]])
    await other_api.bulk([{"recipient": people[0], "type": "non_transactional"}])
    calls = [(a, p, q) for a in (api, api.as_sub(0), api.as_sub(5), other_api)
             for p in [*people, people[0].upper()]
             for q in ({}, {"types": "transactional"}, {"per_page": 1})]
    alone = [await a.get(p, params=q) for a, p, q in calls]
    together = await asyncio.gather(*(a.get(p, params=q) for a, p, q in calls * 3))
    for i, resp in enumerate(together):
        want = alone[i % len(calls)]
        assert (resp.status_code, resp.content) == (want.status_code, want.content), calls[
            i % len(calls)]
    assert {r.status_code for r in alone} == {200, 404}


async def test_a_failed_coalesced_query_fails_each_of_its_lookups(config: Any) -> None:
    from services.suppression.model import Scope
    from services.suppression.store import Store

    store = await Store.connect(config.database_url, 1, 1)
    await store.close()
    import asyncio

    results = await asyncio.gather(*(store.recipient_records(Scope(1, None), f"x{i}@e.com")
                                     for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert store.lookups.running == 0 and not store.lookups.waiting


async def test_batch_answer_is_what_json_dumps_writes(api: Api) -> None:
    """The batch answer is built as text: byte for byte what JSONResponse would send."""
    from services.suppression.app import dumps

    odd = ['q"uote@example.com', "back\\slash@example.com", "ünï@exämple.com",
           "plain@example.com"]
    await api.bulk([{"recipient": r, "type": "transactional"} for r in odd])
    await api.bulk([{"recipient": odd[3], "type": "non_transactional", "list_id": "l.1"}])
    await api.as_sub(9).bulk([{"recipient": odd[0], "type": "non_transactional"}])
    for body in ({"recipients": [*odd, "nobody@example.com"]},
                 {"recipients": [*odd, "Bad Recipient", 7, None, " Plain@EXAMPLE.com "]},
                 {"recipients": odd, "list_id": "l.1"},
                 {"recipients": odd, "type": "non_transactional"},
                 {"recipients": []}):
        resp = await api.lookup(body)
        assert resp.status_code == 200
        assert resp.content == dumps(resp.json())
        assert resp.json()["results"]["checked"] + len(resp.json()["results"]["invalid"]) == \
            len(body["recipients"])  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [
    ["a@b", "plain@example.com", "Mixed.Case+tag@example.com"],
    [],
    ["a@b", "upper@EXAMPLE.COM"],
    ["a@b", " padded@example.com"],
    ["a@b", "dots..local@example.com"],
    ["a@b", "x@exa..mple.com"],
    ["a@b", "x@.example.com"],
    ["a@b", "x@example.com."],
    ["a@b", "x" * 64 + "@example.com"],
    ["a@b", "x" * 65 + "@example.com"],
    ["a@b", "a@" + "b" * 252],
    ["a@b", "a@" + "b" * 251],
    ["a@b", "two@at@example.com"],
    ["a@b", "nodomain@"],
    ["a@b", ""],
    ["a@b", "line\n@example.com"],
    ["a@b\nc@d"],
    ["a@b", 5],
    ["ünï@exämple.com"],
])
def test_the_whole_batch_check_agrees_with_one_by_one(values: list[Any]) -> None:
    from services.suppression.recipient import BadRecipient, all_plain, canonical_fast

    def unchanged(value: Any) -> bool:
        try:
            return isinstance(value, str) and canonical_fast(value) == value
        except BadRecipient:
            return False

    if all_plain(values):  # may say False when all are fine, never True when one is not
        assert all(unchanged(v) for v in values)
    else:
        assert values[:3] != ["a@b", "plain@example.com", "Mixed.Case+tag@example.com"]
