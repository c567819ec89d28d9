"""/api/v1/api-keys as the gateway forwards it: signed context plus the caller's own
credential, SparkPost's shapes, no escalation, no reaching outside the caller's
(sub)account. What a key may give (networks, expiry, cascade, the cap): test_delegation.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from portcullis.context import ContextKeys, signed_headers
from tests.authsvc.callers import ALL, MANAGE, PATH, key_caller
from tests.authsvc.conftest import Api


async def test_a_request_that_did_not_come_through_the_gateway_is_refused(api: Api) -> None:
    r = await api.client.get(api.base + PATH)
    assert r.status_code == 401
    forged = signed_headers(ContextKeys.for_roots("not-the-secret", "auth"), "GET", PATH,
                            account_id=1, grants=[MANAGE])
    r = await api.client.get(api.base + PATH, headers=forged)
    assert r.status_code == 401


async def test_managing_keys_needs_the_api_keys_manage_grant(api: Api) -> None:
    caller = await key_caller(api, await api.account(), grants=("suppression_lists/manage",))
    assert (await caller.call("GET", PATH)).status_code == 403
    assert (await caller.create(["suppression_lists/manage"])).status_code == 403


async def test_a_created_key_is_shown_once_then_listed_masked_and_works(api: Api) -> None:
    caller = await key_caller(api, await api.account())
    r = await caller.create(["suppression_lists/view"], valid_ips=["127.0.0.1/32"])
    assert r.status_code == 200, r.text
    made = r.json()["results"]
    assert len(made["key"]) == 40 and made["short_key"] == made["key"][:4]
    assert made["grants"] == ["suppression_lists/view"]
    listed = (await caller.call("GET", PATH)).json()["results"]
    assert [k["id"] for k in listed] == [caller.key_id, made["id"]]  # its own key, then this
    assert "key" not in listed[1] and listed[1]["short_key"] == made["short_key"]
    one = (await caller.call("GET", f"{PATH}/{made['id']}")).json()["results"]
    assert "key" not in one and one["label"] == "made by a customer"
    decision = await api.authorize(made["key"], "GET")
    assert decision.status_code == 200 and decision.json()["account_id"] == caller.account_id


@pytest.mark.parametrize(("held", "asked", "status"), [
    (list(ALL), ["suppression_lists/view"], 200),
    (list(ALL), [MANAGE], 200),
    ([MANAGE, "suppression_lists/manage"], ["suppression_lists/view"], 200),
    ([MANAGE], ["suppression_lists/manage"], 403),
    ([MANAGE], ["suppression_lists/view"], 403),
    ([MANAGE, "suppression_lists/view"], ["suppression_lists/view"], 200),
    ([MANAGE, "suppression_lists/view"], ["suppression_lists/manage"], 403),
    ([MANAGE, "suppression_lists/view"], ["suppression_lists/view", "templates/view"], 403),
])
async def test_a_key_never_creates_a_key_with_grants_it_does_not_hold(
        api: Api, held: list[str], asked: list[str], status: int) -> None:
    caller = await key_caller(api, await api.account(), grants=tuple(held))
    r = await caller.create(asked)
    assert r.status_code == status, r.text


async def test_a_key_never_raises_another_keys_grants_beyond_its_own(api: Api) -> None:
    account = await api.account()
    full = await key_caller(api, account)
    made = (await full.create(["suppression_lists/view"])).json()["results"]
    limited = await key_caller(api, account, grants=(MANAGE, "suppression_lists/view"))
    r = await limited.call("PUT", f"{PATH}/{made['id']}", {"grants": ["suppression_lists/manage"]})
    assert r.status_code == 403


async def test_updating_a_keys_grants_changes_the_next_decision(api: Api) -> None:
    caller = await key_caller(api, await api.account())
    made = (await caller.create(["suppression_lists/manage"])).json()["results"]
    assert (await api.authorize(made["key"], "PUT")).status_code == 200
    r = await caller.call("PUT", f"{PATH}/{made['id']}",
                          {"grants": ["suppression_lists/view"], "label": "read only"})
    assert r.status_code == 200 and r.json()["results"]["label"] == "read only"
    assert (await api.authorize(made["key"], "PUT")).json()["reason"] == "grant_missing"
    assert (await api.authorize(made["key"], "GET")).status_code == 200


async def test_a_deleted_key_is_revoked_and_gone_from_the_list(api: Api) -> None:
    caller = await key_caller(api, await api.account())
    made = (await caller.create(["suppression_lists/view"])).json()["results"]
    assert (await caller.call("DELETE", f"{PATH}/{made['id']}")).status_code == 204
    assert (await api.authorize(made["key"])).json()["reason"] == "key_revoked"
    listed = (await caller.call("GET", PATH)).json()["results"]
    assert [k["id"] for k in listed] == [caller.key_id]
    assert (await caller.call("GET", f"{PATH}/{made['id']}")).status_code == 404
    assert (await caller.call("DELETE", f"{PATH}/{made['id']}")).status_code == 404


@dataclass
class Scope:
    account: int
    other_account: int
    sub: int
    sibling: int


@pytest.fixture(scope="module")
async def scope(api: Api) -> Scope:
    account, other = await api.account(), await api.account()
    return Scope(account, other, await api.subaccount(account), await api.subaccount(account))


# the caller's context -> the owner a new key gets (None: primary)
@pytest.mark.parametrize(("context", "owner"), [
    (None, None), (0, None), ("sub", "sub"),
])
async def test_a_new_key_belongs_to_the_callers_subaccount_or_the_primary(
        api: Api, scope: Scope, context: Any, owner: Any) -> None:
    ids = {"sub": scope.sub}
    caller = await key_caller(api, scope.account, ids.get(context, context))
    made = (await caller.create(["suppression_lists/view"])).json()["results"]
    assert made["subaccount_id"] == ids.get(owner, owner)
    decision = (await api.authorize(made["key"])).json()
    assert decision["subaccount_id"] == ids.get(owner, owner)


# (who made the key, who looks) -> visible?
@pytest.mark.parametrize(("maker", "looker", "visible"), [
    ("primary", "primary", True),
    ("primary", "primary only", True),
    ("primary", "sub", False),
    ("sub", "primary", True),        # no header: the whole account
    ("sub", "primary only", False),
    ("sub", "sub", True),
    ("sub", "sibling", False),
    ("primary", "other account", False),
    ("sub", "other account", False),
])
async def test_a_caller_sees_and_touches_only_keys_in_its_scope(
        api: Api, scope: Scope, maker: str, looker: str, visible: bool) -> None:
    contexts = {"primary": (scope.account, None), "primary only": (scope.account, 0),
                "sub": (scope.account, scope.sub), "sibling": (scope.account, scope.sibling),
                "other account": (scope.other_account, None)}
    made = (await (await key_caller(api, *contexts[maker])).create(["suppression_lists/view"])
            ).json()["results"]
    looking = await key_caller(api, *contexts[looker])
    listed = [k["id"] for k in (await looking.call("GET", PATH)).json()["results"]]
    assert (made["id"] in listed) == visible
    expected = 200 if visible else 404
    assert (await looking.call("GET", f"{PATH}/{made['id']}")).status_code == expected
    r = await looking.call("PUT", f"{PATH}/{made['id']}", {"label": "touched"})
    assert r.status_code == expected
    if not visible:
        r = await looking.call("POST", f"{PATH}/{made['id']}/rotate", {})
        assert r.status_code == 404
        assert (await looking.call("DELETE", f"{PATH}/{made['id']}")).status_code == 404
        assert (await api.authorize(made["key"])).status_code == 200
