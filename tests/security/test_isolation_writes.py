"""Tenant isolation, write side: single PUT, DELETE, bulk PUT, imports and import
cancellation aimed at another scope's data never touch it; the key API never changes or
revokes another tenant's key."""

from __future__ import annotations

import pytest

from tests.security.conftest import (
    BASE,
    ENTRY,
    World,
    assert_sparkpost_error,
    auth,
    wait_import_done,
)
from tests.security.test_isolation import OTHER, header_value
from tests.stackfix import unique

# (writer tenant, writer key kind, X-MSYS-SUBACCOUNT, victim "tenant.scope")
ATTEMPTS = [
    ("A", "manage", None, "B.primary"),
    ("A", "manage", None, "B.sub1"),
    ("A", "manage", None, "A.sub1"),     # no header: writes go to the primary account only
    ("A", "manage", "0", "A.sub2"),
    ("A", "manage", "sub1", "A.primary"),
    ("A", "manage", "sub1", "A.sub2"),
    ("A", "sub1", None, "A.primary"),
    ("A", "sub1", None, "A.sub2"),
    ("A", "sub1", None, "B.sub1"),
    ("B", "sub2", "sub2", "A.sub2"),
    ("B", "manage", None, "A.primary"),
]


def victim_entry(world: World, ref: str) -> tuple[str, dict[str, str]]:
    """A fresh entry in the victim's scope, and the headers its owner reads it with."""
    scope = world.scope(ref)
    owner = auth(world.accounts[scope.tenant].keys["manage"], scope.subaccount_id)
    recipient = f"{unique('victim')}@example.com"
    put = world.gw.put(f"{BASE}/{recipient}", json=ENTRY, headers=owner)
    assert put.status_code == 200, put.text
    return recipient, owner


def assert_intact(world: World, recipient: str, owner: dict[str, str], sub: int) -> None:
    got = world.gw.get(f"{BASE}/{recipient}", headers=owner)
    assert got.status_code == 200, got.text
    assert [(r["type"], r["description"], r["subaccount_id"], r["source"])
            for r in got.json()["results"]] == [
        ("non_transactional", "seeded", sub, "Manually Added")]


def writer_scope_name(kind: str, ref: str | None) -> str:
    if kind.startswith("sub"):
        return kind
    return "primary" if ref in (None, "0") else str(ref)


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=["-".join(map(str, a)) for a in ATTEMPTS])
def test_writes_aimed_at_another_scope_never_touch_it(
        world: World, attempt: tuple[str, str, str | None, str]) -> None:
    tenant, kind, ref, victim_ref = attempt
    gw = world.gw
    victim = world.scope(victim_ref)
    recipient, owner = victim_entry(world, victim_ref)
    writer = auth(world.accounts[tenant].keys[kind], header_value(world, tenant, ref))

    # DELETE first: the writer's scope holds no such entry, so 404, and the victim's stays.
    assert_sparkpost_error(gw.delete(f"{BASE}/{recipient}", headers=writer), 404)
    assert_intact(world, recipient, owner, victim.subaccount_id)

    put = gw.put(f"{BASE}/{recipient}", json={"type": "non_transactional",
                                              "description": "overwritten"}, headers=writer)
    assert put.status_code == 200, put.text
    bulk = gw.put(BASE, json={"recipients": [
        {"recipient": recipient, "type": "non_transactional", "description": "bulk"},
        {"recipient": victim.recipient, "type": "non_transactional", "description": "bulk"}]},
        headers=writer)
    assert bulk.status_code == 200, bulk.text
    imported = gw.post(f"{BASE}/imports", content=(
        f"recipient,type,description\n{recipient},non_transactional,imported\n").encode(),
        headers={**writer, "Content-Type": "text/csv"})
    assert imported.status_code == 202, imported.text
    job = imported.json()["results"]["id"]
    wait_import_done(gw, writer, job)
    writes_to = world.accounts[tenant].scopes[writer_scope_name(kind, ref)].subaccount_id

    assert_intact(world, recipient, owner, victim.subaccount_id)
    victim_seeded = gw.get(f"{BASE}/{victim.recipient}", headers=owner)
    assert {r["description"] for r in victim_seeded.json()["results"]
            if r["subaccount_id"] == victim.subaccount_id} == {"seeded"}
    # The writer's own copy went to the writer's scope, invisible from the victim's.
    exact = auth(world.accounts[tenant].keys["manage"], writes_to)
    mine = gw.get(f"{BASE}/{recipient}", headers=exact).json()["results"]
    assert [(r["subaccount_id"], r["description"]) for r in mine] == [(writes_to, "imported")]
    assert job not in {j["id"] for j in gw.get(f"{BASE}/imports", headers=owner)
                       .json()["results"]}
    # Cancelling the victim's (finished) job is 404, not 409, for a caller who cannot read
    # it: not even its existence leaks. A primary key without the header reads every job of
    # its account, so it is told the truth (409: a finished job cannot be cancelled).
    sees_it = victim.tenant == tenant and not kind.startswith("sub") and ref is None
    assert_sparkpost_error(gw.delete(f"{BASE}/imports/{victim.import_id}", headers=writer),
                           409 if sees_it else 404)


@pytest.mark.parametrize("tenant", ["A", "B"])
@pytest.mark.parametrize("kind", ["manage", "sub1", "nogrant"])
def test_the_key_api_never_changes_or_revokes_another_tenants_key(
        world: World, tenant: str, kind: str) -> None:
    gw = world.gw
    headers = auth(world.accounts[tenant].keys[kind])
    other = world.accounts[OTHER[tenant]]
    for key_id in other.key_ids.values():
        path = f"/api/v1/api-keys/{key_id}"
        assert_sparkpost_error(gw.put(path, json={"label": "stolen"}, headers=headers), 404)
        assert_sparkpost_error(gw.delete(path, headers=headers), 404)
    # A key the caller makes belongs to the caller's own scope.
    made = gw.post("/api/v1/api-keys", json={"label": "mine", "grants": ["api_keys/manage"]},
                   headers=headers)
    assert made.status_code == 200, made.text
    assert_sparkpost_error(gw.get(f"/api/v1/api-keys/{made.json()['results']['id']}",
                                  headers=auth(other.keys["manage"])), 404)
    # The other tenant's keys still work, unchanged.
    still = gw.get("/api/v1/api-keys", headers=auth(other.keys["manage"]))
    assert still.status_code == 200, still.text
    labels = {k["id"]: k["label"] for k in still.json()["results"]}
    assert all(not label.startswith("stolen") for label in labels.values())
    assert gw.get(BASE, headers=auth(other.keys["view"])).status_code == 200
