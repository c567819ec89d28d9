"""Tenant isolation, read side: every caller (two accounts x primary/view/subaccount keys x
X-MSYS-SUBACCOUNT) on every read endpoint of the suppression API and the key API sees exactly
the scopes docs/contracts.md gives it, and nothing of the other tenant."""

from __future__ import annotations

import json

import pytest

from tests.security.conftest import BASE, World, assert_sparkpost_error, auth

OTHER = {"A": "B", "B": "A"}

# (key kind, X-MSYS-SUBACCOUNT, scopes of the caller's own account it sees)
# The header names a scope: None (absent), "0", "sub1"/"sub2" (the caller's subaccounts),
# "other.sub1" (a subaccount of the other tenant), or a raw value.
ALLOWED = [
    ("manage", None, {"primary", "sub1", "sub2"}),
    ("manage", "0", {"primary"}),
    ("manage", "sub1", {"sub1"}),
    ("view", None, {"primary", "sub1", "sub2"}),
    ("view", "sub2", {"sub2"}),
    ("sub1", None, {"sub1"}),
    ("sub1", "sub1", {"sub1"}),
    ("sub2", None, {"sub2"}),
]
# (key kind, X-MSYS-SUBACCOUNT, status on every suppression endpoint)
DENIED = [
    ("sub1", "0", 403),
    ("sub1", "sub2", 403),
    ("manage", "other.sub1", 403),
    ("view", "other.sub2", 403),
    ("manage", "abc", 400),
    ("nogrant", None, 403),
]


def header_value(world: World, tenant: str, ref: str | None) -> str | None:
    acct = world.accounts[tenant]
    if ref is None or ref == "0" or ref == "abc":
        return ref
    if ref.startswith("other."):
        return str(world.accounts[OTHER[tenant]].scopes[ref.split(".")[1]].subaccount_id)
    return str(acct.scopes[ref].subaccount_id)


def caller(world: World, tenant: str, kind: str, ref: str | None) -> dict[str, str]:
    return auth(world.accounts[tenant].keys[kind], header_value(world, tenant, ref))


def seeded(world: World) -> set[str]:
    return {r for s in world.all_scopes() for r in (s.recipient, f"imp-{s.recipient}")}


def expected(world: World, tenant: str, names: set[str]) -> set[str]:
    scopes = [world.accounts[tenant].scopes[n] for n in names]
    return {r for s in scopes for r in (s.recipient, f"imp-{s.recipient}")}


def case_id(row: tuple[object, ...]) -> str:
    return f"{row[0]}-sub={row[1]}"


@pytest.mark.parametrize("tenant", ["A", "B"])
@pytest.mark.parametrize("row", ALLOWED, ids=[case_id(r) for r in ALLOWED])
def test_every_read_endpoint_shows_exactly_the_callers_scopes(
        world: World, tenant: str, row: tuple[str, str | None, set[str]]) -> None:
    kind, ref, names = row
    gw, headers = world.gw, caller(world, tenant, kind, ref)
    want = expected(world, tenant, names)
    everything = seeded(world)

    search = gw.get(BASE, params={"per_page": 10000}, headers=headers)
    assert search.status_code == 200, search.text
    assert {r["recipient"] for r in search.json()["results"]} == want

    summary = gw.get(f"{BASE}/summary", headers=headers)
    assert summary.status_code == 200, summary.text
    assert summary.json()["results"]["total"] == len(want)

    lookup = gw.post(f"{BASE}/lookup", json={"recipients": sorted(everything)},
                     headers=headers)
    assert lookup.status_code == 200, lookup.text
    assert {r["recipient"] for r in lookup.json()["results"]["suppressed"]} == want

    export = gw.get(f"{BASE}/export", params={"format": "ndjson"}, headers=headers)
    assert export.status_code == 200, export.text
    assert {json.loads(line)["recipient"] for line in export.text.splitlines()
            if line.strip()} == want

    for recipient in sorted(everything):
        got = gw.get(f"{BASE}/{recipient}", headers=headers)
        if recipient in want:
            assert got.status_code == 200, (recipient, got.text)
            assert {r["recipient"] for r in got.json()["results"]} == {recipient}
        else:
            assert_sparkpost_error(got, 404)

    jobs = gw.get(f"{BASE}/imports", headers=headers)
    assert jobs.status_code == 200, jobs.text
    visible_jobs = {world.accounts[tenant].scopes[n].import_id for n in names}
    assert {j["id"] for j in jobs.json()["results"]} == visible_jobs
    for scope in world.all_scopes():
        one = gw.get(f"{BASE}/imports/{scope.import_id}", headers=headers)
        rejects = gw.get(f"{BASE}/imports/{scope.import_id}/rejects", headers=headers)
        if scope.import_id in visible_jobs:
            assert one.status_code == 200, one.text
            assert rejects.status_code == 200 and "not-an-address" in rejects.text
        else:
            assert_sparkpost_error(one, 404)
            assert_sparkpost_error(rejects, 404)


@pytest.mark.parametrize("tenant", ["A", "B"])
@pytest.mark.parametrize("row", DENIED, ids=[case_id(r) for r in DENIED])
def test_a_caller_outside_its_scope_is_refused_on_every_endpoint(
        world: World, tenant: str, row: tuple[str, str | None, int]) -> None:
    kind, ref, status = row
    gw, headers = world.gw, caller(world, tenant, kind, ref)
    victim = world.accounts[OTHER[tenant]].scopes["primary"]
    own = world.accounts[tenant].scopes["sub1"]
    calls = [
        ("GET", BASE, None), ("GET", f"{BASE}/summary", None),
        ("GET", f"{BASE}/export", None), ("GET", f"{BASE}/imports", None),
        ("GET", f"{BASE}/{victim.recipient}", None), ("GET", f"{BASE}/{own.recipient}", None),
        ("POST", f"{BASE}/lookup", {"recipients": [victim.recipient, own.recipient]}),
        ("GET", f"{BASE}/imports/{own.import_id}", None),
        ("GET", f"{BASE}/imports/{victim.import_id}/rejects", None),
        ("PUT", f"{BASE}/{own.recipient}", {"type": "transactional"}),
        ("DELETE", f"{BASE}/{own.recipient}", None),
        ("PUT", BASE, {"recipients": [{"recipient": own.recipient, "type": "transactional"}]}),
        ("DELETE", f"{BASE}/imports/{own.import_id}", None),
    ]
    for method, path, body in calls:
        resp = gw.request(method, path, json=body, headers=headers)
        assert_sparkpost_error(resp, status)
    # Nothing moved: the owner still sees its entries as seeded.
    owner = auth(world.accounts[tenant].keys["manage"], own.subaccount_id)
    got = gw.get(f"{BASE}/{own.recipient}", headers=owner)
    assert [(r["type"], r["description"]) for r in got.json()["results"]] == [
        ("non_transactional", "seeded")]


# (key kind, X-MSYS-SUBACCOUNT, key kinds of the caller's own account listed), or a status.
KEY_LISTS: list[tuple[str, str | None, set[str] | int]] = [
    ("manage", None, {"manage", "view", "sub1", "sub2", "nogrant"}),
    ("manage", "0", {"manage", "view", "nogrant"}),
    ("manage", "sub1", {"sub1"}),
    ("nogrant", None, {"manage", "view", "sub1", "sub2", "nogrant"}),
    ("sub1", None, {"sub1"}),
    ("sub2", "sub2", {"sub2"}),
    ("view", None, 403),
    ("sub1", "0", 403),
    ("manage", "other.sub1", 403),
]


@pytest.mark.parametrize("tenant", ["A", "B"])
@pytest.mark.parametrize("row", KEY_LISTS, ids=[case_id(r) for r in KEY_LISTS])
def test_the_key_api_lists_and_opens_only_keys_in_the_callers_scope(
        world: World, tenant: str, row: tuple[str, str | None, set[str] | int]) -> None:
    kind, ref, want = row
    gw, headers = world.gw, caller(world, tenant, kind, ref)
    listed = gw.get("/api/v1/api-keys", headers=headers)
    if isinstance(want, int):
        assert_sparkpost_error(listed, want)
        return
    assert listed.status_code == 200, listed.text
    acct = world.accounts[tenant]
    ids = {k["id"] for k in listed.json()["results"]}
    # Keys made by other tests of this module (write side) may exist: compare the seeded ones.
    every_seeded = {i for a in world.accounts.values() for i in a.key_ids.values()}
    assert ids & every_seeded == {acct.key_ids[k] for k in want}
    for other in world.accounts[OTHER[tenant]].key_ids.values():
        assert_sparkpost_error(gw.get(f"/api/v1/api-keys/{other}", headers=headers), 404)
    for own_kind, key_id in acct.key_ids.items():
        one = gw.get(f"/api/v1/api-keys/{key_id}", headers=headers)
        if own_kind in want:
            assert one.status_code == 200, one.text
            assert "key" not in one.json()["results"]
        else:
            assert_sparkpost_error(one, 404)
