"""The api-keys API and fresh keys, end to end through the real nginx gateway."""

from __future__ import annotations

import time

import httpx

from gateway.stack import Stack
from tests.stackfix import Tenant, unique

PATH = "/api/v1/api-keys"


def status_until(gw: httpx.Client, key: str, path: str, want: int,
                 timeout: float = 10.0) -> int:
    """Poll until `key` gets `want` on `path` (decisions are cached by the gateway)."""
    deadline = time.monotonic() + timeout
    while True:
        code = gw.get(path, headers={"Authorization": key}).status_code
        if code == want or time.monotonic() > deadline:
            return code
        time.sleep(0.05)


def tenant_with(stack: Stack, grants: list[str]) -> Tenant:
    account = stack.create_account(unique("gw-acct"))
    return Tenant(stack, account, str(stack.create_key(account, grants)["key"]))


def test_a_customer_creates_lists_and_deletes_a_key_through_the_gateway(
        stack: Stack, gw: httpx.Client) -> None:
    tenant = tenant_with(stack, ["api_keys/manage", "suppression_lists/manage"])
    auth = {"Authorization": tenant.key}
    r = gw.post(PATH, json={"label": "ci", "grants": ["api_keys/manage"]}, headers=auth)
    assert r.status_code == 200, r.text
    made = r.json()["results"]
    assert len(made["key"]) == 40
    listed = gw.get(PATH, headers=auth).json()["results"]
    assert made["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)
    # the new key works through the gateway, then stops working once deleted
    assert status_until(gw, made["key"], PATH, 200) == 200
    assert gw.delete(f"{PATH}/{made['id']}", headers=auth).status_code == 204
    assert status_until(gw, made["key"], PATH, 401) == 401


def test_through_the_gateway_a_key_cannot_create_a_key_stronger_than_itself(
        stack: Stack, gw: httpx.Client) -> None:
    tenant = tenant_with(stack, ["api_keys/manage", "suppression_lists/view"])
    r = gw.post(PATH, json={"label": "x", "grants": ["suppression_lists/manage"]},
                headers={"Authorization": tenant.key})
    assert r.status_code == 403
    assert r.json()["errors"][0]["code"] == "1403"


def test_through_the_gateway_a_key_without_api_keys_manage_cannot_manage_keys(
        stack: Stack, gw: httpx.Client) -> None:
    tenant = tenant_with(stack, ["suppression_lists/manage"])
    r = gw.post(PATH, json={"label": "x", "grants": ["suppression_lists/view"]},
                headers={"Authorization": tenant.key})
    assert r.status_code == 403


def test_through_the_gateway_a_key_made_under_a_subaccount_header_belongs_to_it(
        stack: Stack, gw: httpx.Client) -> None:
    tenant = tenant_with(stack, ["api_keys/manage", "suppression_lists/manage"])
    sub = tenant.subaccount()
    r = gw.post(PATH, json={"label": "eu", "grants": ["suppression_lists/view"]},
                headers={"Authorization": tenant.key, "X-MSYS-SUBACCOUNT": str(sub)})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["subaccount_id"] == sub
