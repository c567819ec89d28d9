"""X-MSYS-SUBACCOUNT: who may act for which subaccount, and what the answer says."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.authsvc.conftest import Api, basic


@dataclass
class World:
    account: int
    sub: int          # a subaccount of `account`
    sibling: int      # another subaccount of `account`
    foreign: int      # a subaccount of another account
    primary_key: str
    sub_key: str


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    account, other = await api.account(), await api.account()
    sub, sibling, foreign = (await api.subaccount(account), await api.subaccount(account),
                             await api.subaccount(other))
    grants = ["suppression_lists/manage"]
    primary_key = str((await api.key(account, grants))["key"])
    sub_key = str((await api.key(account, grants, subaccount_id=sub))["key"])
    return World(account, sub, sibling, foreign, primary_key, sub_key)


def header(world: World, name: str) -> str | None:
    return {"absent": None, "empty": "", "0": "0", "sub": str(world.sub),
            "sibling": str(world.sibling), "foreign": str(world.foreign),
            "missing": "999999999999", "padded": f" {world.sub} ", "letters": "abc",
            "negative": "-1", "decimal": "1.5", "hex": "0x1f", "huge": "9" * 30}[name]


# (credential, header, status, subaccount_id in the answer or the denial's reason)
CASES = [
    ("primary", "absent", 200, None),
    ("primary", "empty", 200, None),
    ("primary", "0", 200, 0),
    ("primary", "sub", 200, "sub"),
    ("primary", "padded", 200, "sub"),
    ("primary", "sibling", 200, "sibling"),
    ("primary", "foreign", 403, "subaccount_unknown"),
    ("primary", "missing", 403, "subaccount_unknown"),
    ("subaccount", "absent", 200, "sub"),
    ("subaccount", "empty", 200, "sub"),
    ("subaccount", "sub", 200, "sub"),
    ("subaccount", "0", 403, "subaccount_not_permitted"),
    ("subaccount", "sibling", 403, "subaccount_not_permitted"),
    ("subaccount", "foreign", 403, "subaccount_not_permitted"),
    ("subaccount", "missing", 403, "subaccount_not_permitted"),
    *[(cred, bad, 400, "subaccount_malformed")
      for cred in ("primary", "subaccount")
      for bad in ("letters", "negative", "decimal", "hex", "huge")],
]


@pytest.mark.parametrize(("credential", "header_name", "status", "expected"), CASES)
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("kind", ["raw key", "Basic key:", "Bearer key"])
async def test_the_subaccount_header_is_honoured_as_sparkpost_does(
        api: Api, world: World, credential: str, header_name: str, status: int,
        expected: str | int | None, method: str, kind: str) -> None:
    key = world.primary_key if credential == "primary" else world.sub_key
    token = {"raw key": key, "Basic key:": basic(key), "Bearer key": f"Bearer {key}"}[kind]
    r = await api.authorize(token, method, subaccount=header(world, header_name))
    assert r.status_code == status, r.text
    body = r.json()
    if status == 200:
        want = {"sub": world.sub, "sibling": world.sibling}.get(str(expected), expected)
        assert body["subaccount_id"] == want
        assert body["account_id"] == world.account
    else:
        assert body["reason"] == expected


async def test_a_subaccount_key_cannot_be_made_for_another_accounts_subaccount(
        api: Api, world: World) -> None:
    r = await api.admin("POST", "/admin/keys", {
        "account_id": world.account, "subaccount_id": world.foreign, "label": "x",
        "grants": ["suppression_lists/view"]})
    assert r.status_code == 400
