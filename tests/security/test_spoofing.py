"""Context headers sent by a client (in any case, duplicated, under other spellings, even
carrying a valid signature for another tenant) never change whose data is served."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portcullis.context import signed_headers
from tests.security.conftest import BASE, World, assert_sparkpost_error, auth
from tests.security.test_isolation import expected

Headers = list[tuple[str, str]]


def victim_context(world: World) -> dict[str, str]:
    b = world.accounts["B"]
    return {"X-Account-Id": str(b.account_id), "X-Subaccount-Id": str(b.sub1),
            "X-Key-Id": b.key_ids["manage"],
            "X-Grants": "suppression_lists/manage,api_keys/manage"}


def cased(transform: Callable[[str], str]) -> Callable[[World], Headers]:
    return lambda w: [(transform(k), v) for k, v in victim_context(w).items()]


def duplicated(w: World) -> Headers:
    a, b = w.accounts["A"], w.accounts["B"]
    return [("X-Account-Id", str(a.account_id)), ("X-Account-Id", str(b.account_id)),
            ("x-account-id", str(b.account_id)), ("X-Subaccount-Id", ""),
            ("X-Subaccount-Id", str(b.sub1)), ("X-Grants", "suppression_lists/manage"),
            ("X-GRANTS", "api_keys/manage")]


def comma_list(w: World) -> Headers:
    a, b = w.accounts["A"], w.accounts["B"]
    return [("X-Account-Id", f"{b.account_id}, {a.account_id}"),
            ("X-Subaccount-Id", f"{b.sub1},0")]


def underscores(w: World) -> Headers:
    return [(k.replace("-", "_"), v) for k, v in victim_context(w).items()]


def valid_signature_for_the_victim(w: World) -> Headers:
    b = w.accounts["B"]
    signed = signed_headers(w.stack.context_keys("suppression"), "GET", f"{BASE}?per_page=10000",
                            account_id=b.account_id, subaccount_id=None,
                            key_id=b.key_ids["manage"], grants=["suppression_lists/manage"],
                            request_id="spoofed-request-1")
    return list(signed.items())


def forged_signature(w: World) -> Headers:
    return [*victim_context(w).items(), ("X-Gateway-Signature", "0" * 64),
            ("X-Gateway-Timestamp", "1"), ("x-gateway-signature", "f" * 64)]


def look_alikes(w: World) -> Headers:
    b = w.accounts["B"]
    return [("X-Account", str(b.account_id)), ("X-Account-Ids", str(b.account_id)),
            ("X-Forwarded-Account-Id", str(b.account_id)),
            ("X-Original-Subaccount-Id", str(b.sub1)), ("X-MSYS-ACCOUNT", str(b.account_id))]


SPOOFS: list[tuple[str, Callable[[World], Headers]]] = [
    ("canonical names", cased(str)),
    ("lower case", cased(str.lower)),
    ("upper case", cased(str.upper)),
    ("mixed case", cased(lambda k: "".join(c.upper() if i % 2 else c.lower()
                                           for i, c in enumerate(k)))),
    ("duplicated", duplicated),
    ("comma lists", comma_list),
    ("underscores for dashes", underscores),
    ("a valid signature for the other tenant", valid_signature_for_the_victim),
    ("forged signatures", forged_signature),
    ("look-alike names", look_alikes),
]
# (key kind of tenant A, its X-MSYS-SUBACCOUNT, scopes of A it must see)
CALLERS = [("manage", None, {"primary", "sub1", "sub2"}), ("sub1", None, {"sub1"}),
           ("view", "0", {"primary"})]


@pytest.mark.parametrize("caller", CALLERS, ids=[f"{c[0]}-sub={c[1]}" for c in CALLERS])
@pytest.mark.parametrize("spoof", SPOOFS, ids=[s[0] for s in SPOOFS])
def test_spoofed_context_headers_never_change_whose_data_is_served(
        world: World, spoof: tuple[str, Callable[[World], Headers]],
        caller: tuple[str, str | None, set[str]]) -> None:
    kind, ref, names = caller
    a, b = world.accounts["A"], world.accounts["B"]
    sub = {None: None, "0": "0"}[ref]
    headers: Headers = [*auth(a.keys[kind], sub).items(), *spoof[1](world)]
    gw = world.gw
    want = expected(world, "A", names)

    search = gw.get(BASE, params={"per_page": 10000}, headers=headers)
    assert search.status_code == 200, search.text
    assert {r["recipient"] for r in search.json()["results"]} == want
    theirs = [s.recipient for s in b.scopes.values()]
    lookup = gw.post(f"{BASE}/lookup", json={"recipients": theirs}, headers=headers)
    assert lookup.status_code == 200, lookup.text
    assert lookup.json()["results"]["suppressed"] == []
    for recipient in theirs:
        assert_sparkpost_error(gw.get(f"{BASE}/{recipient}", headers=headers), 404)
    export = gw.get(f"{BASE}/export", params={"format": "csv"}, headers=headers)
    assert export.status_code == 200
    assert not any(r in export.text for r in theirs)


@pytest.mark.parametrize("spoof", SPOOFS, ids=[s[0] for s in SPOOFS])
def test_spoofed_context_headers_never_send_a_write_elsewhere(
        world: World, spoof: tuple[str, Callable[[World], Headers]]) -> None:
    a = world.accounts["A"]
    gw = world.gw
    recipient = f"spoofed-write-{spoof[0].replace(' ', '-')}@example.com"
    headers: Headers = [*auth(a.keys["sub1"]).items(), *spoof[1](world)]
    put = gw.put(f"{BASE}/{recipient}", json={"type": "transactional"}, headers=headers)
    assert put.status_code == 200, put.text
    # It landed in A's subaccount 1 and nowhere else, whatever the headers said.
    found = gw.get(f"{BASE}/{recipient}", headers=auth(a.keys["manage"])).json()["results"]
    assert [r["subaccount_id"] for r in found] == [a.sub1]
    for other in world.accounts["B"].keys.values():
        resp = gw.get(f"{BASE}/{recipient}", headers=auth(other))
        assert resp.status_code in (403, 404), resp.text
    keys = gw.get("/api/v1/api-keys", headers=headers)
    assert keys.status_code == 200, keys.text
    assert {k["id"] for k in keys.json()["results"]} == {a.key_ids["sub1"]}


def test_context_headers_without_a_credential_are_refused(world: World) -> None:
    spoofed = valid_signature_for_the_victim(world)
    assert_sparkpost_error(world.gw.get(BASE, params={"per_page": 10000}, headers=spoofed), 401)
