"""Delegation never widens: who the caller is (its forwarded credential, read fresh and matched
with the signed context), the bounds a key it makes, changes or rotates stays within
(grants, networks, expiry), who made each key, revocation of what a revoked key made, and
the cap on an account's live keys."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.authsvc.callers import (
    ALL,
    MANAGE,
    PATH,
    Caller,
    jwt_caller,
    key_caller,
    of_key,
)
from tests.authsvc.conftest import Api, base_config, expire, running, sql, status_of, until
from tests.authsvc.jwtfix import SECRET, Issuer, add_issuer

VIEW = "suppression_lists/view"
SUPPRESS = "suppression_lists/manage"


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def refusal(r: Any) -> str:
    """The description of a refusal in SparkPost's shape."""
    errors = r.json()["errors"]
    assert len(errors) == 1 and set(errors[0]) == {"message", "code", "description"}
    assert errors[0]["code"] == f"1{r.status_code}"
    description: str = errors[0]["description"]
    return description


@dataclass
class World:
    account: int
    sub: int
    sibling: int
    expires: datetime          # the restricted caller's expiry
    restricted: Caller         # valid_ips 10.0.0.0/8, expires tomorrow, ALL grants
    restricted_v6: Caller      # valid_ips 2001:db8::/32
    free: Caller               # no networks, no expiry, ALL grants
    issuer: Issuer


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    account = await api.account()
    sub, sibling = await api.subaccount(account), await api.subaccount(account)
    restricted = await key_caller(api, account, valid_ips=["10.0.0.0/8"],
                                  expires_at=later(days=1).isoformat())
    expires = when(restricted.key["expires_at"])
    assert expires is not None
    return World(
        account, sub, sibling, expires, restricted,
        await key_caller(api, account, valid_ips=["2001:db8::/32"]),
        await key_caller(api, account),
        await add_issuer(api, account, "HS256", SECRET, secret=SECRET))


# -- who the caller is


async def test_key_management_without_the_callers_credential_is_401(world: World) -> None:
    anonymous = Caller(world.free.api, world.account, world.free.key_id, world.free.grants,
                       None)
    for method, path in (("GET", PATH), ("POST", PATH)):
        r = await anonymous.call(method, path, {"label": "x", "grants": [VIEW]})
        assert r.status_code == 401
        assert "needs the caller's credential" in refusal(r)


async def test_someone_elses_valid_key_under_a_signed_context_is_401(
        api: Api, world: World) -> None:
    """A key forwarded with a context signed for another key (same account or not) is
    refused: the bounds are the forwarded key's, the gateway decided about the other."""
    other_account = await key_caller(api, await api.account())
    for stranger in (world.free, other_account):
        mixed = Caller(api, world.account, world.restricted.key_id, world.restricted.grants,
                       stranger.authorization)
        r = await mixed.create([VIEW], valid_ips=[])
        assert r.status_code == 401
        assert "does not match the gateway context" in refusal(r)
    # a subaccount's key under a context that acts for its sibling
    sub_key = await key_caller(api, world.account, own_subaccount=world.sub)
    r = await sub_key.acting_for(world.sibling).call("GET", PATH)
    assert r.status_code == 401 and "does not match" in refusal(r)


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "garbage"])
async def test_a_dead_or_unknown_credential_cannot_manage_keys(
        api: Api, pg_dsn: str, world: World, state: str) -> None:
    caller = await key_caller(api, world.account)
    if state == "revoked":
        await api.admin("DELETE", f"/admin/keys/{caller.key_id}")
    elif state == "expired":
        await expire(pg_dsn, caller.key_id)
    elif state == "unknown":
        caller.authorization = "0" * 40
    else:
        caller.authorization = "Zap " + "x" * 9000
    r = await caller.create([VIEW])
    assert r.status_code == 401, r.text
    assert len(refusal(r)) < 300


async def test_the_caller_is_read_fresh_not_from_the_key_cache(
        api: Api, pg_dsn: str, world: World) -> None:
    caller = await key_caller(api, world.account)
    assert (await api.authorize(caller.authorization)).status_code == 200  # now cached
    # Narrowed behind the service's back (no event): only a fresh read can know.
    await sql(pg_dsn, "UPDATE auth.api_keys SET valid_ips = '{192.0.2.0/24}' WHERE id = $1",
              caller.key_id)
    r = await caller.create([VIEW])
    assert r.status_code == 200, r.text
    assert r.json()["results"]["valid_ips"] == ["192.0.2.0/24"]
    await sql(pg_dsn, "UPDATE auth.api_keys SET revoked_at = now() WHERE id = $1",
              caller.key_id)
    assert (await caller.create([VIEW])).status_code == 401


async def test_a_key_that_lost_api_keys_manage_is_refused_at_once(
        api: Api, world: World) -> None:
    caller = await key_caller(api, world.account)
    r = await world.free.call("PUT", f"{PATH}/{caller.key_id}", {"grants": [VIEW]})
    assert r.status_code == 200, r.text
    # the gateway's context (signed from a cached decision) still says api_keys/manage
    r = await caller.create([VIEW])
    assert r.status_code == 403 and MANAGE in refusal(r)


# -- bounds when creating


# what the restricted caller (10.0.0.0/8, expires tomorrow) asks -> status, words expected
NETWORK_CASES = [
    ({"valid_ips": []}, 403, "usable from any address"),
    ({"valid_ips": None}, 403, "usable from any address"),
    ({"valid_ips": ["0.0.0.0/0"]}, 403, "valid_ips 0.0.0.0/0 is outside"),
    ({"valid_ips": ["::/0"]}, 403, "valid_ips ::/0 is outside"),
    ({"valid_ips": ["2001:db8::/32"]}, 403, "outside this credential's networks"),
    ({"valid_ips": ["10.0.0.0/7"]}, 403, "valid_ips 10.0.0.0/7 is outside"),   # overlaps
    ({"valid_ips": ["11.0.0.0/8"]}, 403, "outside"),
    ({"valid_ips": ["10.1.0.0/16", "192.0.2.1"]}, 403, "valid_ips 192.0.2.1/32 is outside"),
    ({"valid_ips": ["::ffff:0:0/96"]}, 403, "outside"),     # every IPv4 address, mapped
    ({"valid_ips": ["10.1.0.0/16"]}, 200, None),
    ({"valid_ips": ["10.0.0.0/8"]}, 200, None),
    ({"valid_ips": ["10.2.3.4"]}, 200, None),
    ({"valid_ips": ["::ffff:10.1.0.0/112"]}, 200, None),   # 10.1.0.0/16, mapped
    ({"valid_ips": "10.0.0.0/8"}, 400, "valid_ips"),
    ({"valid_ips": [123]}, 400, "valid_ips"),
    ({"valid_ips": ["10.0.0.0/8" + "0" * 5000]}, 400, "not an address"),
    ({"valid_ips": [{"cidr": "10.0.0.0/8"}]}, 400, "not an address"),
]
EXPIRY_CASES = [
    ({"expires_at": None}, 403, "never expires outlives this credential"),
    ({"expires_at": "later"}, 403, "later than this credential's own expiry"),
    ({"expires_at": "same"}, 200, None),
    ({"expires_at": "sooner"}, 200, None),
    ({"expires_at": "past"}, 400, "already past"),
    ({"expires_at": "tomorrow"}, 400, "ISO-8601"),
    ({"expires_at": 1893456000}, 400, "ISO-8601"),
    ({"expires_at": ["2030-01-01"]}, 400, "ISO-8601"),
    ({"expires_at": "2030-01-01" + "9" * 5000}, 400, "ISO-8601"),
]


def expiry(world: World, word: Any) -> Any:
    """An `expires_at` named by a word of the tables above; anything else as it is."""
    if not isinstance(word, str):
        return word
    return {"later": (world.expires + timedelta(seconds=1)).isoformat(),
            "same": world.expires.isoformat(),
            "sooner": later(hours=1).isoformat(),
            "past": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}.get(word, word)


@pytest.mark.parametrize(("asked", "status", "words"), NETWORK_CASES + EXPIRY_CASES)
async def test_a_restricted_key_creates_no_key_wider_than_itself(
        world: World, asked: dict[str, Any], status: int, words: str | None) -> None:
    asked = {k: expiry(world, v) if k == "expires_at" else v for k, v in asked.items()}
    r = await world.restricted.create([VIEW], **asked)
    assert r.status_code == status, r.text
    if words is not None:
        description = refusal(r)
        assert words in description
        assert len(description) < 400  # long input is cut, never echoed whole
    else:
        made = r.json()["results"]
        assert made["created_by"] == world.restricted.key_id
        assert when(made["expires_at"]) is not None
        assert when(made["expires_at"]) <= world.expires  # type: ignore[operator]


async def test_a_refusal_names_everything_too_wide_at_once(world: World) -> None:
    r = await world.restricted.create([VIEW, "templates/manage"], valid_ips=["::/0"],
                                      expires_at=None)
    assert r.status_code == 403
    description = refusal(r)
    for words in ("templates/manage", "valid_ips ::/0 is outside", "never expires"):
        assert words in description


async def test_networks_and_expiry_left_out_are_the_callers_own(world: World) -> None:
    made = await world.restricted.made([VIEW])
    assert made["valid_ips"] == ["10.0.0.0/8"]
    assert when(made["expires_at"]) == world.expires
    # the key works from inside the network, not from outside it
    api = world.restricted.api
    assert (await api.authorize(made["key"], client_ip="10.9.9.9")).status_code == 200
    assert (await api.authorize(made["key"], client_ip="192.0.2.1")).status_code == 403
    # an unrestricted, unexpiring caller gives what it has: no networks, no expiry
    free = await world.free.made([VIEW])
    assert (free["valid_ips"], free["expires_at"]) == ([], None)
    assert (await world.free.create([VIEW], valid_ips=[])).status_code == 200


@pytest.mark.parametrize(("asked", "status"), [
    (["2001:db8:1::/48"], 200),
    (["2001:db8::/32"], 200),
    (["2001:db8::/31"], 403),
    (["10.0.0.0/8"], 403),
    (["::ffff:10.0.0.0/104"], 403),
    ([], 403),
])
async def test_an_ipv6_restricted_key_gives_only_networks_inside_its_own(
        world: World, asked: list[str], status: int) -> None:
    r = await world.restricted_v6.create([VIEW], valid_ips=asked)
    assert r.status_code == status, r.text


async def test_a_jwt_caller_is_bounded_by_its_exp(world: World) -> None:
    exp = int(time.time()) + 600
    caller = jwt_caller(world.free.api, world.account, world.issuer, sub="deployer",
                        exp=exp, grants=[MANAGE, VIEW])
    made = await caller.made([VIEW])
    assert when(made["expires_at"]) == datetime.fromtimestamp(exp, UTC)
    assert made["created_by"] == f"jwt:{world.issuer.name}:deployer"
    # not one second past exp (the verification leeway does not lengthen the token)
    after = datetime.fromtimestamp(exp + 1, UTC).isoformat()
    for asked in ({"expires_at": None}, {"expires_at": after}):
        r = await caller.create([VIEW], **asked)
        assert r.status_code == 403 and "expires_at" in refusal(r)
    assert (await caller.create([SUPPRESS])).status_code == 403
    # a token, forwarded under a context signed for a key, is not that key
    mixed = Caller(caller.api, world.account, world.free.key_id, world.free.grants,
                   caller.authorization)
    assert (await mixed.create([VIEW])).status_code == 401


# -- managing another key


async def test_a_key_with_a_grant_the_caller_lacks_cannot_be_touched(
        api: Api, world: World) -> None:
    limited = await key_caller(api, world.account, grants=(MANAGE, VIEW))
    target = await world.free.made([SUPPRESS])
    for method, path, body in (("PUT", "", {"valid_ips": []}), ("PUT", "", {"label": "x"}),
                               ("POST", "/rotate", {}), ("DELETE", "", None)):
        r = await limited.call(method, f"{PATH}/{target['id']}{path}", body)
        assert r.status_code == 403, (method, path, r.text)
        assert SUPPRESS in refusal(r)
    # untouched: still working, not rotated
    assert (await api.authorize(target["key"], "PUT")).status_code == 200
    shown = (await world.free.call("GET", f"{PATH}/{target['id']}")).json()["results"]
    assert shown["label"] == target["label"]


@pytest.mark.parametrize(("change", "status", "words"), [
    ({"valid_ips": []}, 403, "usable from any address"),
    ({"valid_ips": None}, 403, "usable from any address"),
    ({"valid_ips": ["0.0.0.0/0"]}, 403, "outside"),
    ({"expires_at": None}, 403, "never expires"),
    ({"expires_at": "later"}, 403, "later than"),
    ({"expires_at": "past"}, 400, "already past"),
    ({"grants": [SUPPRESS, "templates/view"]}, 403, "templates/view"),
    ({"valid_ips": ["10.4.0.0/16"]}, 200, None),
    ({"expires_at": "sooner"}, 200, None),
    ({"label": "renamed"}, 200, None),
])
async def test_a_restricted_key_changes_a_key_only_within_its_bounds(
        world: World, change: dict[str, Any], status: int, words: str | None) -> None:
    target = await world.restricted.made([SUPPRESS])
    change = {k: expiry(world, v) if k == "expires_at" else v for k, v in change.items()}
    r = await world.restricted.call("PUT", f"{PATH}/{target['id']}", change)
    assert r.status_code == status, r.text
    if words is not None:
        assert words in refusal(r)
        return
    changed = r.json()["results"]
    for name, value in change.items():
        if name == "expires_at":
            assert when(changed[name]) == when(value)
        else:
            assert changed[name] == value


async def test_a_restricted_key_cannot_even_rename_a_key_wider_than_itself(
        world: World) -> None:
    wide = await world.free.made([VIEW])   # no networks, no expiry
    r = await world.restricted.call("PUT", f"{PATH}/{wide['id']}", {"label": "mine now"})
    assert r.status_code == 403
    assert "usable from any address" in refusal(r) and "never expires" in refusal(r)


async def test_a_changed_expiry_takes_effect_on_the_next_decision(world: World) -> None:
    target = await world.free.made([VIEW])
    r = await world.free.call("PUT", f"{PATH}/{target['id']}",
                              {"expires_at": later(seconds=4).isoformat()})
    assert r.status_code == 200, r.text
    api = world.free.api
    decision = await api.authorize(target["key"])
    assert decision.status_code == 200 and decision.json()["ttl"] <= 4


async def test_a_rotated_or_expired_key_cannot_be_changed(
        api: Api, pg_dsn: str, world: World) -> None:
    rotated = await world.free.made([VIEW])
    r = await world.free.call("POST", f"{PATH}/{rotated['id']}/rotate", {})
    assert r.status_code == 201, r.text
    expired = await world.free.made([VIEW])
    await expire(pg_dsn, expired["id"])
    for target in (rotated, expired):
        r = await world.free.call("PUT", f"{PATH}/{target['id']}",
                                  {"expires_at": later(days=30).isoformat()})
        assert r.status_code == 409, r.text


async def test_a_key_rotated_by_a_customer_keeps_its_bounds_and_is_shown_once(
        api: Api, world: World) -> None:
    old = await world.restricted.made([SUPPRESS], valid_ips=["10.1.0.0/16"])
    r = await world.restricted.call("POST", f"{PATH}/{old['id']}/rotate",
                                    {"grace_seconds": 60})
    assert r.status_code == 201, r.text
    new = r.json()["results"]
    assert len(new["key"]) == 40 and new["id"] != old["id"]
    for name in ("grants", "valid_ips", "expires_at", "label", "subaccount_id", "created_by"):
        assert new[name] == old[name], name
    assert (await api.authorize(new["key"], client_ip="10.1.2.3")).status_code == 200
    grace = await api.authorize(old["key"], client_ip="10.1.2.3")
    assert grace.status_code == 200 and grace.json()["ttl"] <= 60
    shown = (await world.restricted.call("GET", f"{PATH}/{new['id']}")).json()["results"]
    assert "key" not in shown
    again = await world.restricted.call("POST", f"{PATH}/{old['id']}/rotate", {})
    assert again.status_code == 409


@pytest.mark.parametrize(("target", "status"), [
    ("free", 403),             # rotating gives a new unrestricted, unexpiring key
    ("own child", 201),
    ("itself", 201),           # a key may always rotate itself
])
async def test_a_restricted_key_rotates_only_keys_within_its_bounds(
        api: Api, world: World, target: str, status: int) -> None:
    caller = await key_caller(api, world.account, valid_ips=["10.0.0.0/8"],
                              expires_at=later(days=1).isoformat())
    key_id = {"free": (await world.free.made([VIEW]))["id"],
              "own child": (await caller.made([VIEW]))["id"],
              "itself": caller.key_id}[target]
    r = await caller.call("POST", f"{PATH}/{key_id}/rotate", {"grace_seconds": 0})
    assert r.status_code == status, r.text


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, "60", 1.5, True])
async def test_a_rotation_with_a_bad_grace_is_400(world: World, grace: Any) -> None:
    target = await world.free.made([VIEW])
    r = await world.free.call("POST", f"{PATH}/{target['id']}/rotate", {"grace_seconds": grace})
    assert r.status_code == 400, r.text


# -- who made each key, and revocation of what a revoked key made


async def test_each_key_records_who_made_it(api: Api, world: World) -> None:
    by_admin = await api.key(world.account, [VIEW])
    assert by_admin["created_by"] == "admin"
    made = await world.free.made([VIEW])
    assert made["created_by"] == world.free.key_id
    shown = (await api.admin("GET", f"/admin/keys/{made['id']}")).json()["results"]
    assert shown["created_by"] == world.free.key_id
    listed = (await world.free.call("GET", PATH)).json()["results"]
    assert {k["id"]: k["created_by"] for k in listed}[made["id"]] == world.free.key_id


async def test_a_rotation_hands_the_old_keys_children_to_the_new_key(
        api: Api, world: World) -> None:
    parent = of_key(api, world.account, await world.free.made(list(ALL)))
    child = await parent.made([VIEW])
    r = await parent.call("POST", f"{PATH}/{parent.key_id}/rotate", {"grace_seconds": 60})
    assert r.status_code == 201, r.text
    successor = r.json()["results"]
    assert successor["created_by"] == world.free.key_id  # the old key's maker
    shown = (await api.admin("GET", f"/admin/keys/{child['id']}")).json()["results"]
    assert shown["created_by"] == successor["id"]
    # revoking the successor reaches the child it inherited
    assert (await api.admin("DELETE", f"/admin/keys/{successor['id']}")).status_code == 204
    assert await status_of(api, child["key"]) == (401, "key_revoked")


@dataclass
class Family:
    root: Caller       # made by the admin API
    parent: Caller     # made by root
    child: Caller      # made by parent
    grandchild: dict[str, Any]


async def family(api: Api, account: int) -> Family:
    root = await key_caller(api, account)
    parent = of_key(api, account, await root.made(list(ALL)))
    child = of_key(api, account, await parent.made(list(ALL)))
    grandchild = await child.made([VIEW])
    return Family(root, parent, child, grandchild)


async def reasons(pg_dsn: str, key_ids: list[str]) -> dict[str, list[str]]:
    rows = await sql(pg_dsn, "SELECT key_id, reason FROM auth.revocations"
                             " WHERE key_id = ANY($1) ORDER BY seq", key_ids)
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["key_id"], []).append(row["reason"])
    return out


async def test_revoking_a_key_revokes_three_generations_below_it_logged_and_announced(
        api: Api, pg_dsn: str, redis_url: str, world: World,
        revocation_events: list[dict[str, Any]]) -> None:
    fam = await family(api, world.account)
    other = await key_caller(api, world.account, grants=(MANAGE, VIEW))
    # another instance, caching keys for an hour: only the events can make it forget
    config = base_config(pg_dsn, redis_url=redis_url, key_cache_ttl=3600.0)
    async with running(config) as peer:
        for key in (fam.parent.authorization, fam.child.authorization, fam.grandchild["key"]):
            assert (await status_of(peer, str(key)))[0] == 200
        before = (await api.revocations(0)).json()["seq"]
        r = await fam.root.call("DELETE", f"{PATH}/{fam.parent.key_id}")
        assert r.status_code == 204
        below = [fam.child.key_id, fam.grandchild["id"]]
        for key in (fam.parent.authorization, fam.child.authorization, fam.grandchild["key"]):
            assert await status_of(api, str(key)) == (401, "key_revoked")

        async def forgotten() -> bool:
            for key in (fam.parent.authorization, fam.child.authorization,
                        fam.grandchild["key"]):
                if await status_of(peer, str(key)) != (401, "key_revoked"):
                    return False
            return True

        await until(forgotten)
    assert (await status_of(api, str(fam.root.authorization)))[0] == 200
    assert (await status_of(api, str(other.authorization)))[0] == 200
    log = (await api.revocations(before)).json()
    assert {fam.parent.key_id, *below} <= {key_id for _, key_id in log["entries"]}
    assert await reasons(pg_dsn, [fam.parent.key_id, *below]) == {
        fam.parent.key_id: ["revoked"],
        fam.child.key_id: ["parent_revoked"],
        fam.grandchild["id"]: ["parent_revoked"]}

    async def announced() -> bool:
        seen = {(e["key_id"], e["reason"]) for e in revocation_events}
        return {(fam.parent.key_id, "revoked"), (fam.child.key_id, "parent_revoked"),
                (fam.grandchild["id"], "parent_revoked")} <= seen

    await until(announced)


async def test_the_admin_api_revokes_what_a_key_made_too(
        api: Api, pg_dsn: str, world: World) -> None:
    fam = await family(api, world.account)
    assert (await api.admin("DELETE", f"/admin/keys/{fam.root.key_id}")).status_code == 204
    for key in (fam.root.authorization, fam.parent.authorization, fam.child.authorization,
                fam.grandchild["key"]):
        assert await status_of(api, str(key)) == (401, "key_revoked")
    logged = await reasons(pg_dsn, [fam.root.key_id, fam.grandchild["id"]])
    assert logged == {fam.root.key_id: ["revoked"], fam.grandchild["id"]: ["parent_revoked"]}


async def test_a_dead_descendant_is_not_revoked_again_but_what_it_made_is(
        api: Api, pg_dsn: str, world: World) -> None:
    fam = await family(api, world.account)
    await expire(pg_dsn, fam.child.key_id)    # the middle generation expired meanwhile
    assert (await api.admin("DELETE", f"/admin/keys/{fam.parent.key_id}")).status_code == 204
    logged = await reasons(pg_dsn, [fam.child.key_id, fam.grandchild["id"]])
    # (the expiry sweep may log the child's expiry meanwhile: that is not a revocation)
    assert [r for r in logged.get(fam.child.key_id, []) if r != "expired"] == []
    assert logged[fam.grandchild["id"]] == ["parent_revoked"]


async def test_a_key_made_while_its_makers_family_is_revoked_does_not_survive_it(
        api: Api, world: World) -> None:
    for _ in range(5):
        fam = await family(api, world.account)
        revoked, made = await asyncio.gather(
            api.admin("DELETE", f"/admin/keys/{fam.root.key_id}"), fam.child.create([VIEW]))
        assert revoked.status_code == 204
        assert made.status_code in (200, 401), made.text
        if made.status_code == 200:
            assert await status_of(api, made.json()["results"]["key"]) == (401, "key_revoked")


async def test_overlapping_revocations_both_succeed(api: Api, world: World) -> None:
    for _ in range(5):
        fam = await family(api, world.account)
        answers = await asyncio.gather(*(
            api.admin("DELETE", f"/admin/keys/{key_id}")
            for key_id in (fam.root.key_id, fam.child.key_id, fam.parent.key_id)))
        assert [a.status_code for a in answers] == [204, 204, 204]
        assert await status_of(api, fam.grandchild["key"]) == (401, "key_revoked")


async def test_a_revoked_key_can_make_nothing_more(api: Api, world: World) -> None:
    fam = await family(api, world.account)
    assert (await api.admin("DELETE", f"/admin/keys/{fam.parent.key_id}")).status_code == 204
    assert (await fam.child.create([VIEW])).status_code == 401


# -- the cap on live keys


async def test_an_account_holds_at_most_max_keys_live_keys(
        api: Api, pg_dsn: str) -> None:
    account = await api.account(max_keys=4)
    caller = await key_caller(api, account)               # 1
    first = await caller.made([VIEW])                       # 2
    await caller.made([VIEW])                               # 3
    await api.key(account, [VIEW])                          # 4 (admin)
    r = await caller.create([VIEW])
    assert r.status_code == 403
    assert "limit is 4" in refusal(r) and "revoke" in refusal(r)
    r = await api.admin("POST", "/admin/keys", {"account_id": account, "label": "x",
                                                "grants": [VIEW]})
    assert r.status_code == 403 and "limit is 4" in refusal(r)
    # a rotation never counts: a compromised key must always be rotatable
    r = await caller.call("POST", f"{PATH}/{first['id']}/rotate", {"grace_seconds": 3600})
    assert r.status_code == 201, r.text
    # a revoked or an expired key frees its place
    assert (await caller.call("DELETE", f"{PATH}/{r.json()['results']['id']}")).status_code \
        == 204
    await expire(pg_dsn, first["id"])   # the old one, in its grace period
    assert (await caller.create([VIEW])).status_code == 200
    assert (await caller.create([VIEW])).status_code == 403


async def test_concurrent_creations_at_the_cap_let_exactly_one_in(api: Api) -> None:
    for _ in range(3):
        account = await api.account(max_keys=3)
        caller = await key_caller(api, account)
        await caller.made([VIEW])                           # 2 of 3
        answers = await asyncio.gather(caller.create([VIEW]), caller.create([VIEW]))
        assert sorted(a.status_code for a in answers) == [200, 403]
        listed = (await caller.call("GET", PATH)).json()["results"]
        assert len(listed) == 3


async def test_the_default_cap_comes_from_the_service_settings(
        api: Api, pg_dsn: str) -> None:
    async with running(base_config(pg_dsn, max_keys=2)) as capped:
        account = await capped.account()
        await capped.key(account, [VIEW])
        await capped.key(account, [VIEW])
        r = await capped.admin("POST", "/admin/keys", {"account_id": account, "label": "x",
                                                       "grants": [VIEW]})
        assert r.status_code == 403 and "limit is 2" in refusal(r)
        roomy = await capped.account(max_keys=3)
        for _ in range(3):
            await capped.key(roomy, [VIEW])


@pytest.mark.parametrize(("max_keys", "status"), [
    (None, 201), (1, 201), (1_000_000, 201),
    (0, 400), (-1, 400), (1_000_001, 400), ("5", 400), (1.5, 400), (True, 400),
])
async def test_max_keys_is_a_whole_number_up_to_a_million(
        api: Api, max_keys: Any, status: int) -> None:
    r = await api.admin("POST", "/admin/accounts", {"name": f"cap-{time.time_ns()}",
                                                    "max_keys": max_keys})
    assert r.status_code == status, r.text
    if status == 201:
        assert r.json()["results"]["max_keys"] == max_keys

