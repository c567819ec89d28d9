from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from portcullis import derive
from portcullis.procs import Proc, free_port
from tests.authsvc.conftest import ADMIN_TOKEN, GATEWAY, GATEWAY_TOKEN, ROOT_SECRET, Api, basic

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_line_starts_a_service_that_answers_health_and_decisions(
        pg_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": pg_dsn, "PORTCULLIS_ADMIN_TOKEN": ADMIN_TOKEN,
           "PORTCULLIS_CONTEXT_KEYS": derive.context_keys_value(ROOT_SECRET, "auth"),
           "PORTCULLIS_GATEWAY_TOKEN": GATEWAY_TOKEN}
    env.pop("REDIS_URL", None)
    proc = Proc("authsvc", [sys.executable, "-m", "authsvc", "--host", "127.0.0.1",
                            "--port", str(port)], tmp_path / "authsvc.log", env=env, cwd=ROOT)
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}
        r = httpx.post(base + "/v1/authorize", json={
            "resource": "suppression_lists", "method": "GET", "token": None,
            "subaccount": None, "client_ip": "127.0.0.1", "grants": None}, headers=GATEWAY)
        assert r.status_code == 401
        assert r.json()["reason"] == "credential_missing"
    finally:
        proc.stop()


def test_the_command_line_refuses_to_start_without_its_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PORTCULLIS_CONTEXT_KEYS", "PORTCULLIS_ADMIN_TOKEN",
                        "PORTCULLIS_GATEWAY_TOKEN")}
    import subprocess
    res = subprocess.run([sys.executable, "-m", "authsvc"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode != 0
    assert "DATABASE_URL" in res.stderr


async def test_a_new_key_is_shown_once_and_allows_what_its_grants_say(api: Api) -> None:
    account = await api.account()
    created = await api.key(account, ["suppression_lists/manage"])
    assert len(created["key"]) == 40 and created["short_key"] == created["key"][:4]
    r = await api.authorize(created["key"], "PUT")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["account_id"] == account
    assert answer["subaccount_id"] is None
    assert answer["key_id"] == created["id"]
    assert answer["grants"] == ["suppression_lists/manage"]
    assert answer["ttl"] > 0 and answer["plan"]["rate_limits"]
    shown = (await api.admin("GET", f"/admin/keys/{created['id']}")).json()["results"]
    assert "key" not in shown and shown["short_key"] == created["short_key"]
    r = await api.authorize(basic(created["key"]), "GET")
    assert r.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/admin/accounts", {"name": "x"}),
    ("POST", "/admin/accounts/1/subaccounts", {"name": "x"}),
    ("POST", "/admin/keys", {"account_id": 1, "label": "x", "grants": ["a/view"]}),
    ("DELETE", "/admin/keys/k_0000", None),
])
@pytest.mark.parametrize("token", [None, "wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]])
async def test_the_admin_api_refuses_callers_without_the_admin_token(
        api: Api, method: str, path: str, body: object, token: str | None) -> None:
    r = await api.admin(method, path, body, token=token)
    assert r.status_code == 401
    assert r.json()["errors"][0]["code"] == "1401"


async def test_health_answers_ok_once_postgresql_is_reachable(api: Api) -> None:
    r = await api.client.get(api.base + "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
