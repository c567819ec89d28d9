"""Key lifecycle: networks, expiry, revocation, rotation; events and the revocation log;
failed authentications counted per client address."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.authsvc.conftest import (
    ADMIN_TOKEN,
    GATEWAY_TOKEN,
    Api,
    base_config,
    expire,
    running,
    status_of,
    unique,
    until,
)

GRANTS = ["suppression_lists/manage"]


@pytest.mark.parametrize(("client_ip", "allowed"), [
    ("10.1.2.3", True),
    ("10.255.255.255", True),
    ("192.0.2.7", True),
    ("2001:db8::1", True),
    ("::ffff:10.0.0.1", True),
    ("192.0.2.8", False),
    ("11.0.0.1", False),
    ("2001:db9::1", False),
    (None, False),
    ("not-an-address", False),
])
async def test_a_key_with_valid_ips_is_refused_from_other_addresses(
        api: Api, client_ip: str | None, allowed: bool) -> None:
    account = await api.account()
    key = await api.key(account, GRANTS, valid_ips=["10.0.0.0/8", "192.0.2.7",
                                                   "2001:db8::/32"])
    code, reason = await status_of(api, key["key"], client_ip=client_ip)
    assert (code, reason) == ((200, None) if allowed else (403, "ip_not_allowed"))


@pytest.mark.parametrize(("client_ip", "allowed"), [
    ("10.1.2.3", True), ("::ffff:10.1.2.3", True), ("10.2.0.1", False),
    ("::ffff:10.2.0.1", False),
])
async def test_a_network_written_as_ipv4_mapped_ipv6_admits_the_ipv4_client(
        api: Api, client_ip: str, allowed: bool) -> None:
    account = await api.account()
    key = await api.key(account, GRANTS, valid_ips=["::ffff:10.1.0.0/112"])
    code, reason = await status_of(api, key["key"], client_ip=client_ip)
    assert (code, reason) == ((200, None) if allowed else (403, "ip_not_allowed"))


@pytest.mark.parametrize("body", [
    {"grants": GRANTS, "valid_ips": ["10.0.0.0/33"]},
    {"grants": GRANTS, "valid_ips": "10.0.0.0/8"},
    {"grants": GRANTS, "expires_at": "tomorrow"},
    {"grants": GRANTS, "expires_at": "2020-01-01T00:00:00Z"},  # already past
    {"grants": GRANTS, "expires_at": 1893456000},
    {"grants": []},
    {"grants": ["no-slash"]},
    {"grants": GRANTS, "label": ""},
])
async def test_a_key_with_bad_fields_is_not_created(api: Api, body: dict[str, Any]) -> None:
    account = await api.account()
    r = await api.admin("POST", "/admin/keys", {"account_id": account, "label": "x", **body})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"] == "1400"


async def test_an_expired_key_is_refused_as_expired(api: Api, pg_dsn: str) -> None:
    account = await api.account()
    key = await api.key(account, GRANTS)
    await expire(pg_dsn, key["id"])
    assert await status_of(api, key["key"]) == (401, "key_expired")


async def test_a_key_cannot_be_made_already_expired(api: Api) -> None:
    account = await api.account()
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    r = await api.admin("POST", "/admin/keys", {"account_id": account, "label": "x",
                                                "grants": GRANTS, "expires_at": past})
    assert r.status_code == 400 and "already past" in r.json()["errors"][0]["description"]


async def test_a_key_expiring_soon_gets_a_short_decision_ttl_then_expires_with_an_event(
        api: Api, revocation_events: list[dict[str, Any]]) -> None:
    account = await api.account()
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    key = await api.key(account, GRANTS, expires_at=soon)
    r = await api.authorize(key["key"])
    assert r.status_code == 200 and r.json()["ttl"] <= 2

    async def expired() -> bool:
        return await status_of(api, key["key"]) == (401, "key_expired")

    await until(expired)

    async def announced() -> bool:
        return any(e["key_id"] == key["id"] and e["reason"] == "expired"
                   for e in revocation_events)

    await until(announced)


async def test_a_revoked_key_is_refused_at_once_logged_and_announced(
        api: Api, revocation_events: list[dict[str, Any]]) -> None:
    account = await api.account()
    key = await api.key(account, GRANTS)
    before = (await api.revocations("0")).json()["seq"]
    assert (await status_of(api, key["key"]))[0] == 200  # now in the key cache
    assert (await api.admin("DELETE", f"/admin/keys/{key['id']}")).status_code == 204
    assert await status_of(api, key["key"]) == (401, "key_revoked")
    log = (await api.revocations(f"{before}")).json()
    assert [key["id"]] == [k for _, k in log["entries"] if k == key["id"]]
    assert log["seq"] > before and all(seq > before for seq, _ in log["entries"])

    async def announced() -> bool:
        return any(e == {"key_id": key["id"], "seq": e["seq"], "reason": "revoked"}
                   for e in revocation_events)

    await until(announced)
    # revoking again changes nothing and is not an error
    assert (await api.admin("DELETE", f"/admin/keys/{key['id']}")).status_code == 204


async def test_revoking_an_unknown_key_is_a_404(api: Api) -> None:
    r = await api.admin("DELETE", "/admin/keys/k_doesnotexist")
    assert r.status_code == 404


async def test_the_revocation_log_answers_the_latest_seq_when_nothing_is_new(api: Api) -> None:
    latest = (await api.revocations("0")).json()["seq"]
    r = await api.revocations(f"{latest}")
    assert r.json() == {"seq": latest, "entries": []}
    for bad in ("x", "-1", "9" * 19):
        assert (await api.revocations(bad)).status_code == 400


async def test_the_internal_api_answers_the_gateway_only(api: Api) -> None:
    question = {"resource": "suppression_lists", "method": "GET", "token": None,
                "subaccount": None, "client_ip": "127.0.0.1", "grants": None}
    for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    {"Authorization": "Bearer " + "0" * 64}, {"Authorization": GATEWAY_TOKEN}):
        r = await api.client.post(api.base + "/v1/authorize", json=question, headers=headers)
        assert r.status_code == 401 and "gateway" in r.json()["errors"][0]["description"]
        r = await api.client.get(api.base + "/v1/revocations?since=0", headers=headers)
        assert r.status_code == 401 and "gateway" in r.json()["errors"][0]["description"]
    assert (await api.authorize(None)).json()["reason"] == "credential_missing"


async def test_a_rotated_key_gives_a_new_key_and_the_old_one_works_for_the_grace_period(
        api: Api, revocation_events: list[dict[str, Any]]) -> None:
    account = await api.account()
    old = await api.key(account, GRANTS, valid_ips=["127.0.0.0/8"])
    r = await api.admin("POST", f"/admin/keys/{old['id']}/rotate", {"grace_seconds": 60})
    assert r.status_code == 201, r.text
    new = r.json()["results"]
    assert new["key"] != old["key"] and new["id"] != old["id"]
    assert (new["grants"], new["valid_ips"]) == (old["grants"], old["valid_ips"])
    ok_new = await api.authorize(new["key"])
    ok_old = await api.authorize(old["key"])
    assert ok_new.status_code == 200 and ok_old.status_code == 200
    assert ok_old.json()["ttl"] <= 60
    again = await api.admin("POST", f"/admin/keys/{old['id']}/rotate", {})
    assert again.status_code == 409

    async def announced() -> bool:
        return any(e["key_id"] == old["id"] and e["reason"] == "rotated"
                   for e in revocation_events)

    await until(announced)


async def test_a_key_rotated_without_grace_stops_working_at_once(api: Api) -> None:
    account = await api.account()
    old = await api.key(account, GRANTS)
    r = await api.admin("POST", f"/admin/keys/{old['id']}/rotate", {"grace_seconds": 0})
    assert r.status_code == 201
    assert await status_of(api, old["key"]) == (401, "key_expired")
    assert (await status_of(api, r.json()["results"]["key"]))[0] == 200


async def test_failed_authentications_are_counted_per_client_address(
        api: Api, pg_dsn: str, redis_url: str) -> None:
    # A window of ~30 years: the test never straddles two windows.
    config = base_config(pg_dsn, redis_url=redis_url, failure_window=10**9)
    async with running(config) as service:
        await count_failures(service)


async def count_failures(api: Api) -> None:
    address = f"198.51.100.{int(time.time() * 1000) % 250 + 1}"
    other = unique("203.0.113.9")
    account = await api.account()
    key = await api.key(account, ["suppression_lists/view"])
    counts = []
    for _ in range(3):
        r = await api.authorize("0" * 40, client_ip=address)
        counts.append((r.json()["failed_attempts"], r.headers["x-auth-failures"]))
    start = counts[0][0]
    assert counts == [(start + i, str(start + i)) for i in range(3)]
    # no credential, a valid key, or a 403 counts nothing; another address has its own
    missing = await api.authorize(None, client_ip=address)
    assert missing.status_code == 401 and "failed_attempts" not in missing.json()
    assert (await api.authorize(key["key"], client_ip=address)).status_code == 200
    forbidden = await api.authorize(key["key"], "DELETE", client_ip=address)
    assert forbidden.status_code == 403 and "failed_attempts" not in forbidden.json()
    r = await api.authorize("0" * 40, client_ip=address)
    assert r.json()["failed_attempts"] == start + 3
    r = await api.authorize("0" * 40, client_ip=other)
    assert r.json()["failed_attempts"] == 1


async def test_a_key_revoked_on_one_instance_is_refused_by_another_through_the_event(
        api: Api, pg_dsn: str, redis_url: str) -> None:
    # The second instance caches keys for an hour: only the event can make it forget.
    config = base_config(pg_dsn, redis_url=redis_url, key_cache_ttl=3600.0)
    async with running(config) as other:
        account = await api.account()
        key = await api.key(account, GRANTS)
        assert (await status_of(other, key["key"]))[0] == 200
        assert (await api.admin("DELETE", f"/admin/keys/{key['id']}")).status_code == 204

        async def refused() -> bool:
            return await status_of(other, key["key"]) == (401, "key_revoked")

        await until(refused)


async def test_a_revoked_or_expired_key_cannot_be_rotated(api: Api, pg_dsn: str) -> None:
    account = await api.account()
    revoked = await api.key(account, GRANTS)
    await api.admin("DELETE", f"/admin/keys/{revoked['id']}")
    expired = await api.key(account, GRANTS)
    await expire(pg_dsn, expired["id"])
    for key in (revoked, expired):
        r = await api.admin("POST", f"/admin/keys/{key['id']}/rotate", {})
        assert r.status_code == 409, r.text
    assert (await api.admin("POST", "/admin/keys/k_nope/rotate", {})).status_code == 404
