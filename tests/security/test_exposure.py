"""What the public listener must not expose: the admin APIs, the auth service's internal
calls, the metrics, the internal locations; and what no log may hold: credentials and
secrets."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import jwt
import pytest

from gateway.stack import Stack
from tests.security.conftest import BASE, assert_sparkpost_error
from tests.stackfix import Tenant

# Paths of the control plane, the auth service's internal and admin calls, the metrics
# listener and the gateway's internal locations.
ADMIN_PATHS = [
    ("GET", "/routes"), ("POST", "/routes"), ("GET", "/routes/suppression-list"),
    ("DELETE", "/routes/suppression-list"), ("GET", "/routes/suppression-list/audit"),
    ("GET", "/table"), ("GET", "/admin/accounts"), ("POST", "/admin/accounts"),
    ("POST", "/admin/keys"), ("GET", "/admin/issuers"), ("POST", "/v1/authorize"),
    ("GET", "/v1/revocations?since=0"), ("GET", "/metrics"), ("GET", "/healthz"),
    ("GET", "/_gw/authorize"), ("POST", "/_gw/authorize"), ("GET", "/_gw/error"),
    ("GET", "/_gw/authorize?x=1"), ("GET", "/%5Fgw/authorize"), ("GET", "/_GW/authorize"),
]
CREDENTIALS = ["none", "admin token", "api key"]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("call", ADMIN_PATHS, ids=[f"{m} {p}" for m, p in ADMIN_PATHS])
def test_admin_and_internal_paths_are_unreachable_from_the_public_listener(
        gw: httpx.Client, stack: Stack, tenant: Tenant, call: tuple[str, str],
        credential: str) -> None:
    method, path = call
    headers = {"none": {}, "admin token": {"Authorization": f"Bearer {stack.admin_token}"},
               "api key": {"Authorization": tenant.key}}[credential]
    body = {"name": "evil", "resource": "suppression_lists", "method": "GET",
            "token": tenant.key, "account_id": tenant.account_id, "label": "x",
            "grants": ["suppression_lists/manage"]}
    resp = gw.request(method, path, headers=headers,
                      json=body if method == "POST" else None)
    first = assert_sparkpost_error(resp, 404, 401)
    text = resp.text
    for leak in ('"routes"', '"version"', '"key_ids"', '"account_id"', "gateway_requests_total",
                 '"status": "ok"', '"status":"ok"', '"key":'):
        assert leak not in text, (path, text)
    assert first["code"] in ("1404", "1401")


def credentials_in_use(stack: Stack, gw: httpx.Client, tenant: Tenant) -> list[str]:
    """Drive the stack with every kind of secret in every place it may travel; return them."""
    made = gw.post("/api/v1/api-keys", json={"label": "log-probe",
                                             "grants": ["suppression_lists/view"]},
                   headers={"Authorization": tenant.new_key(
                       ["api_keys/manage", "suppression_lists/view"])})
    assert made.status_code == 200, made.text
    minted = made.json()["results"]["key"]
    revoked = tenant.new_key(["suppression_lists/manage"])
    revoked_id = stack.create_key(tenant.account_id, ["suppression_lists/view"])["id"]
    stack.admin("DELETE", f"/admin/keys/{revoked_id}")
    token = jwt.encode({"sub": "probe", "exp": int(time.time()) + 60}, "x" * 32)
    basic = base64.b64encode(f"{tenant.key}:".encode()).decode()
    path = f"{BASE}/probe@example.com"
    calls: list[dict[str, str]] = [
        {"Authorization": tenant.key}, {"Authorization": f"Basic {basic}"},
        {"Authorization": f"Bearer {tenant.key}"}, {"Authorization": minted},
        {"Authorization": revoked}, {"Authorization": f"Bearer {token}"},
        {"Authorization": f"Bearer {stack.admin_token}"},
        {"Authorization": tenant.key, "X-Gateway-Signature": stack.signing_secret},
        {"Authorization": tenant.key, "X-MSYS-SUBACCOUNT": "999999999"},
        {"Authorization": tenant.key[:-1] + "0"},
    ]
    for headers in calls:
        gw.get(path, headers=headers)
        gw.put(path, json={"type": "transactional"}, headers=headers)
        gw.get("/api/v1/api-keys", headers=headers)
        gw.get("/routes", headers=headers)
    # The admin APIs themselves, called the right way.
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    httpx.get(stack.url("control") + "/routes", headers=admin).raise_for_status()
    httpx.get(stack.url("control") + "/routes", headers={"Authorization": "Bearer wrong"})
    stack.admin("GET", f"/admin/keys/{revoked_id}")
    return [tenant.key, basic, minted, revoked, token, stack.admin_token,
            stack.signing_secret, tenant.key[:-1] + "0"]


def every_log(stack: Stack) -> list[Path]:
    logs = [p for p in stack.logs.rglob("*") if p.is_file()]
    logs += [p for p in (stack.gateway_prefix / "logs").rglob("*") if p.is_file()]
    assert any(p.name == "access.log" for p in logs) and any(p.name == "error.log" for p in logs)
    return logs


def test_no_credential_or_secret_reaches_any_log(gw: httpx.Client, stack: Stack,
                                                  tenant: Tenant) -> None:
    secrets = credentials_in_use(stack, gw, tenant)
    # The gateway writes its access log when each request ends and buffers nothing, but the
    # Python services' loggers may lag a moment: wait until the last request shows up.
    marker = f"{BASE}/log-probe-end@example.com"
    gw.get(marker, headers={"Authorization": tenant.key})
    deadline = time.monotonic() + 10
    access = stack.gateway_prefix / "logs" / "access.log"
    while "log-probe-end" not in access.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the access log never showed the last request"
        time.sleep(0.05)
    found = []
    for log in every_log(stack):
        text = log.read_text(errors="replace")
        found += [(log.name, s[:6] + "...") for s in secrets if s in text]
    assert not found, f"secrets in logs: {found}"
