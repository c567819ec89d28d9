"""One real path through every part: nginx + Lua -> auth service -> suppression service ->
PostgreSQL, with the route table from the control plane."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from tests.stackfix import Tenant, unique

JANE = "/api/v1/suppression-list/jane@example.com"
ENTRY = {"type": "non_transactional", "description": "demo"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": key}


def assert_sparkpost_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"errors"}
    first = body["errors"][0]
    assert {"message", "code", "description"} <= set(first)
    assert isinstance(first["code"], str)
    return first


def test_put_then_get_then_delete_an_entry_with_a_real_key(gw: httpx.Client,
                                                          tenant: Tenant) -> None:
    put = gw.put(JANE, json=ENTRY, headers=auth(tenant.key))
    assert put.status_code == 200, put.text
    got = gw.get(JANE, headers=auth(tenant.key))
    assert got.status_code == 200, got.text
    results = got.json()["results"]
    assert [(r["recipient"], r["type"], r["description"]) for r in results] == [
        ("jane@example.com", "non_transactional", "demo")]
    assert gw.delete(JANE, headers=auth(tenant.key)).status_code == 204
    assert_sparkpost_error(gw.get(JANE, headers=auth(tenant.key)), 404)


def test_request_without_a_key_is_401(gw: httpx.Client) -> None:
    assert_sparkpost_error(gw.get(JANE), 401)


def test_unknown_key_is_401(gw: httpx.Client) -> None:
    assert_sparkpost_error(gw.get(JANE, headers=auth("0" * 40)), 401)


def test_key_without_the_grant_is_403(gw: httpx.Client, make_tenant: Any) -> None:
    other = make_tenant(["api_keys/manage"])
    assert_sparkpost_error(gw.get(JANE, headers=auth(other.key)), 403)


def test_view_only_key_reads_but_cannot_write(gw: httpx.Client, tenant: Tenant) -> None:
    viewer = tenant.new_key(["suppression_lists/view"])
    assert gw.put(JANE, json=ENTRY, headers=auth(tenant.key)).status_code == 200
    assert gw.get(JANE, headers=auth(viewer)).status_code == 200
    assert_sparkpost_error(gw.put(JANE, json=ENTRY, headers=auth(viewer)), 403)
    assert_sparkpost_error(gw.delete(JANE, headers=auth(viewer)), 403)


def test_account_a_cannot_read_or_delete_account_b_entry(gw: httpx.Client,
                                                        make_tenant: Any) -> None:
    a, b = make_tenant(), make_tenant()
    path = f"/api/v1/suppression-list/{unique('b')}@example.com"
    assert gw.put(path, json=ENTRY, headers=auth(b.key)).status_code == 200
    assert_sparkpost_error(gw.get(path, headers=auth(a.key)), 404)
    assert_sparkpost_error(gw.delete(path, headers=auth(a.key)), 404)
    assert gw.get(path, headers=auth(b.key)).status_code == 200


@pytest.mark.parametrize("header", ["X-Account-Id", "x-account-id", "X-ACCOUNT-ID"])
def test_client_sent_account_header_is_ignored(gw: httpx.Client, make_tenant: Any,
                                               header: str) -> None:
    a, b = make_tenant(), make_tenant()
    path = f"/api/v1/suppression-list/{unique('spoof')}@example.com"
    assert gw.put(path, json=ENTRY, headers=auth(b.key)).status_code == 200
    spoofed = {**auth(a.key), header: str(b.account_id)}
    assert_sparkpost_error(gw.get(path, headers=spoofed), 404)


def test_client_sent_context_headers_never_reach_the_service(
        gw: httpx.Client, stack: Stack, tenant: Tenant, upstream_factory: Any) -> None:
    _, target = upstream_factory("spine-echo")
    name = unique("echo")
    route = {"name": name, "paths": [f"/{name}"], "upstream": {"targets": [target]},
             "resource": "suppression_lists", "owner": "tests"}
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    created = httpx.post(stack.url("control") + "/routes", json=route, headers=admin)
    assert created.status_code == 201, created.text
    try:
        spoof = [("Authorization", tenant.key), ("X-Account-Id", "1"), ("x-account-id", "2"),
                 ("X-Subaccount-Id", "3"), ("X-Key-Id", "evil"), ("X-Grants", "all/manage"),
                 ("X-Gateway-Signature", "00"), ("X-Gateway-Timestamp", "1"),
                 ("X-Account-Anything", "x")]
        seen = poll_route(gw, f"/{name}/x", spoof)
        headers = [(k.lower(), v) for k, v in seen["headers"]]
        context = [(k, v) for k, v in headers
                   if k.startswith(("x-account", "x-subaccount", "x-key", "x-grants",
                                    "x-gateway"))]
        # Each once, and only the gateway's; an empty X-Subaccount-Id (no subaccount named)
        # is not sent at all, which the services read as empty.
        assert sorted(k for k, _ in context) == sorted(
            ["x-account-id", "x-key-id", "x-grants", "x-gateway-timestamp",
             "x-gateway-signature"])
        assert dict(context)["x-account-id"] == str(tenant.account_id)
        assert dict(context)["x-grants"] == "suppression_lists/manage"
        assert seen["signature"] == f"account={tenant.account_id}"
    finally:
        httpx.delete(stack.url("control") + f"/routes/{name}", headers=admin)


def poll_route(gw: httpx.Client, path: str, headers: list[tuple[str, str]]) -> Any:
    """Wait (polling, at most 5 s) until the gateway serves a just-registered route."""
    import time

    deadline = time.monotonic() + 5
    while True:
        resp = gw.get(path, headers=headers)
        if resp.status_code != 404 or time.monotonic() > deadline:
            assert resp.status_code == 200, resp.text
            return resp.json()
        time.sleep(0.05)


def test_unknown_path_is_404_json(gw: httpx.Client) -> None:
    first = assert_sparkpost_error(gw.get("/no/such/path"), 404)
    assert "/no/such/path" in first["description"]


def test_every_response_carries_a_request_id_and_keeps_a_good_one(gw: httpx.Client) -> None:
    made = gw.get("/no/such/path")
    assert len(made.headers["x-request-id"]) >= 16
    kept = gw.get("/no/such/path", headers={"X-Request-Id": "client-chosen-id-123"})
    assert kept.headers["x-request-id"] == "client-chosen-id-123"
    bad = gw.get("/no/such/path", headers={"X-Request-Id": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"


@pytest.mark.gateway_errors(r"connect\(\) failed \(111: Connection refused\)",
                            r"no live upstreams")
def test_a_stopped_service_gives_a_json_502_then_recovers(gw: httpx.Client, stack: Stack,
                                                          tenant: Tenant) -> None:
    stack.procs["lookup"].stop()
    try:
        first = assert_sparkpost_error(gw.get(JANE, headers=auth(tenant.key)), 502)
        assert first["message"] == "Bad gateway"
    finally:
        stack.restart("lookup")
    assert_sparkpost_error(gw.get(JANE, headers=auth(tenant.key)), 404)
