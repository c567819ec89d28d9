"""The decision contract: credential kinds x methods x grants, route grants, denials."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.authsvc.conftest import GATEWAY, Api, basic

KINDS: dict[str, Callable[[str], str]] = {
    "raw key": lambda key: key,
    "Basic key:": basic,
    "Bearer key": lambda key: f"Bearer {key}",
}
GRANT_SETS = {
    "view": ["suppression_lists/view"],
    "manage": ["suppression_lists/manage"],
    "other resource": ["templates/manage", "suppression_lists/viewer"],
}
ALLOWED = {
    "view": {"GET", "HEAD"},
    "manage": {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"},
    "other resource": set(),
}


def assert_denial(body: dict[str, object], reason: str) -> None:
    assert body["reason"] == reason
    assert isinstance(body["ttl"], int) and body["ttl"] >= 0
    errors = body["errors"]
    assert isinstance(errors, list) and errors
    assert set(errors[0]) == {"message", "code", "description"}


@pytest.fixture(scope="module")
async def keys_by_grants(api: Api) -> dict[str, dict[str, object]]:
    account = await api.account()
    return {name: await api.key(account, grants) for name, grants in GRANT_SETS.items()}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("grant_set", list(GRANT_SETS))
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
async def test_each_method_needs_view_or_manage_as_the_grant_rule_says(
        api: Api, keys_by_grants: dict[str, dict[str, object]], kind: str, grant_set: str,
        method: str) -> None:
    key = keys_by_grants[grant_set]
    r = await api.authorize(KINDS[kind](str(key["key"])), method)
    if method in ALLOWED[grant_set]:
        assert r.status_code == 200, r.text
        assert r.json()["key_id"] == key["id"]
    else:
        assert r.status_code == 403, r.text
        assert_denial(r.json(), "grant_missing")
        assert r.json()["key_id"] == key["id"]


@pytest.mark.parametrize(("key_grants", "route_grants", "method", "status"), [
    (["api_keys/manage"], ["api_keys/manage"], "POST", 200),
    (["api_keys/manage"], ["api_keys/manage", "admin/all"], "GET", 200),
    (["suppression_lists/manage"], ["reports/view"], "GET", 403),
    # the route's grants replace the method rule, even where it would have allowed
    (["suppression_lists/manage"], ["suppression_lists/special"], "GET", 403),
    (["suppression_lists/special"], ["suppression_lists/special"], "DELETE", 200),
])
async def test_a_route_that_names_grants_replaces_the_method_rule(
        api: Api, key_grants: list[str], route_grants: list[str], method: str,
        status: int) -> None:
    account = await api.account()
    key = await api.key(account, key_grants)
    r = await api.authorize(str(key["key"]), method, grants=route_grants)
    assert r.status_code == status, r.text


@pytest.mark.parametrize(("token", "status", "reason"), [
    (None, 401, "credential_missing"),
    ("", 401, "credential_missing"),
    ("   ", 401, "credential_missing"),
    ("Basic !!!not-base64", 401, "credential_malformed"),
    ("Basic " + "a2V5".strip(), 401, "credential_malformed"),  # "key" with no colon
    ("Digest abc def", 401, "credential_malformed"),
    ("Bearer ", 401, "credential_malformed"),
    ("0" * 40, 401, "key_unknown"),
    ("f" * 40, 401, "key_unknown"),
    ("not-a-key", 401, "key_unknown"),
    (basic("0" * 40), 401, "key_unknown"),
    ("x" * 9000, 401, "credential_too_large"),
    ("Bearer " + "a" * 9000, 401, "credential_too_large"),
])
async def test_a_missing_malformed_or_unknown_credential_is_a_401_with_its_reason(
        api: Api, token: str | None, status: int, reason: str) -> None:
    r = await api.authorize(token)
    assert r.status_code == status, r.text
    assert_denial(r.json(), reason)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"resource": "x"}', b'{"method": "GET"}',
    b'{"resource": "x", "method": "GET", "token": 5}',
    b'{"resource": "x", "method": "GET", "grants": "a/b"}',
])
async def test_a_malformed_question_from_the_gateway_is_a_400_never_cached(
        api: Api, body: bytes) -> None:
    r = await api.client.post(api.base + "/v1/authorize", content=body, headers=GATEWAY)
    assert r.status_code == 400
    assert_denial(r.json(), "request_malformed")
    assert r.json()["ttl"] == 0


async def test_an_account_plan_carries_its_own_rate_limits(api: Api) -> None:
    limits = [{"dimension": "account", "limit": 7, "window": 60, "burst": 7}]
    account = await api.account(rate_limits=limits)
    key = await api.key(account, ["suppression_lists/view"])
    r = await api.authorize(str(key["key"]))
    assert r.json()["plan"] == {"rate_limits": limits}


async def test_a_subaccount_sent_as_a_json_number_is_read_as_the_header(api: Api) -> None:
    account = await api.account()
    key = await api.key(account, ["suppression_lists/view"])
    r = await api.client.post(api.base + "/v1/authorize", json={
        "resource": "suppression_lists", "method": "GET", "token": key["key"],
        "subaccount": 0, "client_ip": "127.0.0.1", "grants": None}, headers=GATEWAY)
    assert r.status_code == 200 and r.json()["subaccount_id"] == 0


async def test_a_decision_that_cannot_reach_postgresql_is_a_503_never_an_allow(
        pg_dsn: str) -> None:
    from authsvc.store import Store
    from tests.authsvc.conftest import base_config, running

    store = await Store.connect(pg_dsn, 1, 2)
    async with running(base_config(pg_dsn), store=store) as service:
        await store.close()
        r = await service.authorize("0" * 40)
        assert r.status_code == 503
        assert r.json()["reason"] == "auth_unavailable" and r.json()["ttl"] == 0
        assert (await service.client.get(service.base + "/healthz")).status_code == 503
