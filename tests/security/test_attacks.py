"""The attack table: each row is one way a credential could do more than the auth service
allows, tried through the real gateway (nginx, the auth service, the suppression services,
an echo upstream that shows exactly what a service receives, PostgreSQL, Redis). Each row
names the threat; docs/security.md lists them with the defence that stops them.

Revocation under concurrency has its own module (test_revocation.py): it needs gateway
nodes and auth instances of its own.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gateway.stack import Stack
from portcullis.context import ContextKeys, signed_headers
from portcullis.procs import Proc, free_port
from tests.security.conftest import BASE, World, assert_sparkpost_error, auth
from tests.stackfix import ROOT, RouteAdmin, echo_keys, unique

ALLOWED_IP = "127.0.0.2"   # a second client address on loopback
OTHER_IP = "127.0.0.1"
KEYS_PATH = "/api/v1/api-keys"
HS_SECRET = "a-tenant-controlled-hs256-secret-of-32-bytes!"
RESERVED = {"x-account-id", "x-subaccount-id", "x-key-id", "x-grants", "x-gateway-signature",
            "x-gateway-timestamp"}


@dataclass
class Edge:
    """What the rows share: the stack, two tenants with data, echo routes, a tenant's own
    JWT issuer, and clients from two addresses."""

    world: World
    echo: str                 # a route to the echo upstream (service "tests")
    forwarding: str           # the same upstream, with forward_credentials
    anonymous: str            # the same upstream, auth none
    issuer: str               # `iss` of tenant A's HS256 issuer
    issuer_name: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def stack(self) -> Stack:
        return self.world.stack

    def client(self, ip: str = OTHER_IP) -> httpx.Client:
        if ip not in self.clients:
            self.clients[ip] = httpx.Client(
                base_url=self.stack.gateway_url, timeout=30,
                transport=httpx.HTTPTransport(local_address=ip))
        return self.clients[ip]

    def key(self, grants: list[str], account: str = "A", subaccount: int | None = None,
            **extra: Any) -> dict[str, Any]:
        acct = self.world.accounts[account]
        return self.stack.create_key(acct.account_id, grants, subaccount,
                                     label=unique("atk"), **extra)

    def token(self, **claims: Any) -> str:
        body = {"iss": self.issuer, "aud": "portcullis", "sub": "user-1",
                "exp": int(time.time()) + 600, "grants": ["suppression_lists/manage"],
                **claims}
        return "Bearer " + jwt.encode(body, HS_SECRET, algorithm="HS256")


def echo_headers(resp: httpx.Response) -> dict[str, str]:
    """The headers the echo upstream received (lower-cased names)."""
    assert resp.status_code == 200, resp.text
    return {k.lower(): v for k, v in resp.json()["headers"]}


@pytest.fixture(scope="module")
def edge(world: World) -> Iterator[Edge]:
    stack = world.stack
    port = free_port()
    proc = Proc("echo-attacks", [sys.executable, "-m", "tests.echo_upstream", "--port",
                                 str(port), "--name", "attacks",
                                 f"--context-keys={echo_keys(stack)}"],
                stack.logs / "echo-attacks.log", cwd=ROOT).start()
    admin = RouteAdmin(stack)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
        names = [unique("atk-echo"), unique("atk-fwd"), unique("atk-anon")]
        for name, extra in zip(names, ({}, {"forward_credentials": True}, {"auth": "none"}),
                               strict=True):
            admin.put({"name": name, "paths": [f"/{name}"], "owner": "tests",
                       "resource": "suppression_lists",
                       "upstream": {"targets": [f"127.0.0.1:{port}"]}, **extra})
        admin.wait_gateway_at(admin.table_version())
        issuer_name = unique("tenant-idp")
        iss = f"https://{issuer_name}.example.com/"
        stack.admin("POST", "/admin/issuers", {
            "name": issuer_name, "issuer": iss, "account_id": world.accounts["A"].account_id,
            "audience": "portcullis", "algorithms": ["HS256"], "secret": HS_SECRET})
        made = Edge(world, *names, iss, issuer_name)
        yield made
        for client in made.clients.values():
            client.close()
    finally:
        for name in admin.created:
            admin.delete(name)
        proc.stop()


Row = Callable[[Edge], None]
ROWS: dict[str, Row] = {}


def row(name: str) -> Callable[[Row], Row]:
    def register(fn: Row) -> Row:
        ROWS[name] = fn
        return fn
    return register


# --- 1. The decision cache key holds everything the decision depends on -------------------

@row("cache-ip-allow-leaks-to-another-address")
def _(e: Edge) -> None:
    key = e.key(["suppression_lists/manage"], valid_ips=[f"{ALLOWED_IP}/32"])["key"]
    for _ in range(3):  # cached after the first
        assert e.client(ALLOWED_IP).get(f"/{e.echo}/x", headers=auth(key)).status_code == 200
    refused = e.client(OTHER_IP).get(f"/{e.echo}/x", headers=auth(key))
    assert assert_sparkpost_error(refused, 403)["description"].endswith("from this address")


@row("cache-ip-denial-locks-out-the-right-address")
def _(e: Edge) -> None:
    key = e.key(["suppression_lists/manage"], valid_ips=[f"{ALLOWED_IP}/32"])["key"]
    for _ in range(2):
        assert e.client(OTHER_IP).get(f"/{e.echo}/x", headers=auth(key)).status_code == 403
        assert e.client(ALLOWED_IP).get(f"/{e.echo}/x", headers=auth(key)).status_code == 200


@row("cache-unrestricted-key-is-one-entry")
def _(e: Edge) -> None:
    """A key without networks is served from cache from any address (no vary)."""
    key = e.key(["suppression_lists/manage"])["key"]
    for ip in (OTHER_IP, ALLOWED_IP, OTHER_IP):
        assert e.client(ip).get(f"/{e.echo}/x", headers=auth(key)).status_code == 200


# --- 2. Delegation never widens -----------------------------------------------------------

def restricted_manager(e: Edge, **extra: Any) -> tuple[str, str, dict[str, Any]]:
    """An api_keys/manage key bound to ALLOWED_IP that expires tomorrow."""
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    made = e.key(["api_keys/manage", "suppression_lists/view"],
                 valid_ips=[f"{ALLOWED_IP}/32"], expires_at=expires.isoformat(), **extra)
    return str(made["key"]), expires.isoformat(), made


@row("delegation-creates-a-key-without-networks")
def _(e: Edge) -> None:
    key, _, _ = restricted_manager(e)
    c = e.client(ALLOWED_IP)
    for wider in ([], ["0.0.0.0/0"], ["::/0"], ["127.0.0.0/8"]):
        r = c.post(KEYS_PATH, headers=auth(key), json={
            "label": "wider", "grants": ["suppression_lists/view"], "valid_ips": wider})
        assert_sparkpost_error(r, 403)
    # Left out, the maker's own networks and expiry are inherited.
    r = c.post(KEYS_PATH, headers=auth(key), json={"label": "narrow",
                                                  "grants": ["suppression_lists/view"]})
    assert r.status_code == 200, r.text
    made = r.json()["results"]
    assert made["valid_ips"] == [f"{ALLOWED_IP}/32"] and made["expires_at"] is not None


@row("delegation-creates-a-key-that-outlives-its-maker")
def _(e: Edge) -> None:
    key, expires, _ = restricted_manager(e)
    later = (datetime.fromisoformat(expires) + timedelta(days=30)).isoformat()
    for expiry in (None, later):
        r = e.client(ALLOWED_IP).post(KEYS_PATH, headers=auth(key), json={
            "label": "longer", "grants": ["suppression_lists/view"], "expires_at": expiry})
        assert_sparkpost_error(r, 403)


@row("delegation-grants-what-it-lacks")
def _(e: Edge) -> None:
    key, _, _ = restricted_manager(e)
    r = e.client(ALLOWED_IP).post(KEYS_PATH, headers=auth(key), json={
        "label": "escalate", "grants": ["suppression_lists/manage"]})
    assert "suppression_lists/manage" in assert_sparkpost_error(r, 403)["description"]


@row("delegation-edits-or-revokes-a-stronger-key")
def _(e: Edge) -> None:
    key, _, _ = restricted_manager(e)
    strong = e.key(["suppression_lists/manage"], valid_ips=["10.0.0.0/8"])
    c = e.client(ALLOWED_IP)
    for method, path, body in (("PUT", f"{KEYS_PATH}/{strong['id']}", {"valid_ips": []}),
                               ("POST", f"{KEYS_PATH}/{strong['id']}/rotate", {}),
                               ("DELETE", f"{KEYS_PATH}/{strong['id']}", None)):
        r = c.request(method, path, headers=auth(key), json=body)
        assert_sparkpost_error(r, 403)
    shown = e.stack.admin("GET", f"/admin/keys/{strong['id']}")
    assert shown["valid_ips"] == ["10.0.0.0/8"] and not shown["revoked"]


@row("delegation-reaches-another-subaccount")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    maker = e.key(["api_keys/manage", "suppression_lists/manage"], subaccount=a.sub1)["key"]
    victim = e.key(["suppression_lists/view"], subaccount=a.sub2)["id"]
    for method in ("GET", "PUT", "DELETE"):
        r = e.client().request(method, f"{KEYS_PATH}/{victim}", headers=auth(maker),
                               json={"label": "x"} if method == "PUT" else None)
        assert_sparkpost_error(r, 404)


@row("delegation-children-survive-their-makers-revocation")
def _(e: Edge) -> None:
    maker = e.key(["api_keys/manage", "suppression_lists/manage"])
    r = e.client().post(KEYS_PATH, headers=auth(maker["key"]), json={
        "label": "child", "grants": ["suppression_lists/manage"]})
    child = r.json()["results"]
    assert child["created_by"] == maker["id"]
    assert e.client().get(f"/{e.echo}/x", headers=auth(child["key"])).status_code == 200
    e.stack.admin("DELETE", f"/admin/keys/{maker['id']}")
    deadline = time.monotonic() + 30
    while e.client().get(f"/{e.echo}/x", headers=auth(child["key"])).status_code != 401:
        assert time.monotonic() < deadline, "the child of a revoked key still works"
        time.sleep(0.05)


@row("delegation-mints-unbounded-keys")
def _(e: Edge) -> None:
    account = e.stack.admin("POST", "/admin/accounts", {"name": unique("capped"),
                                                        "max_keys": 2})["id"]
    maker = e.stack.create_key(account, ["api_keys/manage", "suppression_lists/view"])["key"]
    body = {"label": "more", "grants": ["suppression_lists/view"]}
    assert e.client().post(KEYS_PATH, headers=auth(maker), json=body).status_code == 200
    assert_sparkpost_error(e.client().post(KEYS_PATH, headers=auth(maker), json=body), 403)


# --- 3. Credentials stop at the gateway ---------------------------------------------------

@row("credentials-reach-every-upstream")
def _(e: Edge) -> None:
    key = e.world.accounts["A"].keys["manage"]
    basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    for credential in (key, basic, f"Bearer {key}", e.token()):
        got = echo_headers(e.client().get(f"/{e.echo}/x", headers={
            "Authorization": credential, "Proxy-Authorization": credential}))
        assert "authorization" not in got and "proxy-authorization" not in got
        assert key not in json.dumps(got)
        assert got["x-account-id"] == str(e.world.accounts["A"].account_id)


@row("credentials-reach-an-anonymous-upstream")
def _(e: Edge) -> None:
    key = e.world.accounts["A"].keys["manage"]
    got = echo_headers(e.client().get(f"/{e.anonymous}/x", headers=auth(key)))
    assert "authorization" not in got and not RESERVED & set(got)


@row("credentials-forwarded-only-where-the-route-says")
def _(e: Edge) -> None:
    key = e.world.accounts["A"].keys["manage"]
    got = echo_headers(e.client().get(f"/{e.forwarding}/x", headers={
        "Authorization": key, "Proxy-Authorization": key}))
    assert got["authorization"] == key and "proxy-authorization" not in got


# --- 4. A context is for one service ------------------------------------------------------

@row("context-forged-by-another-service")
def _(e: Edge) -> None:
    """The echo service holds its own key (it must, to verify): with it, it forges a
    context for tenant B at the suppression list service and the key-management API."""
    own = ContextKeys.parse("tests", echo_keys(e.stack))
    b = e.world.accounts["B"]
    for url, path, grants in (
            (e.stack.url("list"), f"{BASE}?per_page=10", ["suppression_lists/manage"]),
            (e.stack.url("lookup"), f"{BASE}/{b.scopes['primary'].recipient}",
             ["suppression_lists/manage"]),
            (e.stack.url("auth"), KEYS_PATH, ["api_keys/manage"])):
        for keys in (own, ContextKeys(e.stack.context_keys("suppression").audience, own.keys)):
            forged = signed_headers(keys, "GET", path, account_id=b.account_id,
                                    key_id=b.key_ids["manage"], grants=grants)
            r = httpx.get(url + path, headers=forged)
            assert_sparkpost_error(r, 401)


@row("context-made-for-one-service-replayed-at-another")
def _(e: Edge) -> None:
    """A context the gateway made for the suppression services, replayed by one of them at
    the key-management API (same path shape, same caller): refused there."""
    b = e.world.accounts["B"]
    made = signed_headers(e.stack.context_keys("suppression"), "GET", KEYS_PATH,
                          account_id=b.account_id, key_id=b.key_ids["manage"],
                          grants=["api_keys/manage"])
    r = httpx.get(e.stack.url("auth") + KEYS_PATH,
                  headers={**made, "Authorization": b.keys["manage"]})
    assert_sparkpost_error(r, 401)


@row("context-services-hold-no-root-secret")
def _(e: Edge) -> None:
    root = e.stack.signing_secret
    for name, proc in e.stack.procs.items():
        if name == "gateway" or proc.popen is None:
            continue
        environ = Path(f"/proc/{proc.popen.pid}/environ").read_bytes()
        assert root.encode() not in environ, name


# --- 5. Nothing from a credential reaches a header unchecked ------------------------------

@row("header-injection-through-sub")
def _(e: Edge) -> None:
    for sub in ("user\r\nX-Account-Id: 1", "user\nx", "user\x00x", "user\x7fx", "a,b",
                "u" * 201):
        r = e.client().get(f"/{e.echo}/x", headers={"Authorization": e.token(sub=sub)})
        assert_sparkpost_error(r, 401)
        assert "\r" not in r.text and "X-Account-Id: 1" not in r.text


@row("header-injection-through-grants")
def _(e: Edge) -> None:
    for grant in ("suppression_lists/manage\r\nX-Account-Id: 1", "a/b\x00", "a/b\x7f",
                  "a/b,c/d", "suppression_lists/vïew"):
        token = e.token(grants=["suppression_lists/manage", grant])
        r = e.client().get(f"/{e.echo}/x", headers={"Authorization": token})
        assert_sparkpost_error(r, 401)


@row("header-non-ascii-subject-reaches-upstream-encoded")
def _(e: Edge) -> None:
    got = echo_headers(e.client().get(f"/{e.echo}/x",
                                      headers={"Authorization": e.token(sub="josé smith")}))
    assert got["x-key-id"] == f"jwt:{e.issuer_name}:jos%C3%A9%20smith"
    assert all(v.isascii() and v.isprintable() for v in got.values())


# --- 7. The internal surfaces are internal ------------------------------------------------

INTERNAL_TRICKS = [
    "/api/v1/api-keys/../../v1/authorize", "/api/v1/api-keys/%2e%2e/%2e%2e/v1/authorize",
    "/api/v1/api-keys/..%2f..%2fv1%2fauthorize", "/api/v1/api-keys%2f..%2f..%2fv1/revocations",
    "/api/v1/api-keys/..;/..;/v1/revocations?since=0", "/api/v1/api-keys/../../admin/keys",
    "/api/v1/api-keys/%2e%2e%2f%2e%2e%2fadmin%2fissuers", "//v1/authorize", "/v1//authorize",
    "/api/v1/api-keys/x/../../../v1/revocations?since=0", "/_gw/authorize",
    "/api/v1/api-keys/..%5c..%5cv1/authorize", "/api/v1/api-keys/%252e%252e/v1/authorize",
]


def raw(port: int, method: str, path: str, headers: dict[str, str],
        body: bytes = b"") -> tuple[int, str]:
    """A request with the path exactly as written (no client normalises it)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}", "Content-Type: application/json",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall("\r\n".join(lines).encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, text = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), text.decode("utf-8", "replace")


@row("internal-api-reached-by-path-tricks")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    question = json.dumps({"resource": "suppression_lists", "method": "GET",
                           "token": a.keys["manage"], "subaccount": None,
                           "client_ip": "203.0.113.9", "grants": None}).encode()
    for path in INTERNAL_TRICKS:
        for method in ("GET", "POST"):
            status, text = raw(e.stack.port("gateway"), method, path,
                               {"Authorization": a.keys["manage"]}, question)
            assert status in (400, 401, 403, 404, 405), (path, status, text)
            for leak in ('"reason"', '"entries"', '"plan"', '"key_ids"', '"issuer"', '"key":'):
                assert leak not in text, (path, text)


@row("internal-api-asked-without-the-gateway-token")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    question = {"resource": "suppression_lists", "method": "GET", "token": a.keys["manage"],
                "subaccount": None, "client_ip": ALLOWED_IP, "grants": None}
    for headers in ({}, {"Authorization": f"Bearer {e.stack.admin_token}"},
                    {"Authorization": a.keys["manage"]}):
        r = httpx.post(e.stack.url("auth") + "/v1/authorize", json=question, headers=headers)
        assert_sparkpost_error(r, 401)
        r = httpx.get(e.stack.url("auth") + "/v1/revocations?since=0", headers=headers)
        assert_sparkpost_error(r, 401)


# --- OWASP API Security Top 10 (2023), the items that apply --------------------------------

@row("owasp-api1-object-level-keys-of-another-account")
def _(e: Edge) -> None:
    a, b = e.world.accounts["A"], e.world.accounts["B"]
    for method, suffix in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/rotate")):
        r = e.client().request(method, f"{KEYS_PATH}/{b.key_ids['view']}{suffix}",
                               headers=auth(a.keys["manage"]),
                               json={"label": "mine now"} if method == "PUT" else None)
        assert_sparkpost_error(r, 404)
    listed = e.client().get(KEYS_PATH, headers=auth(a.keys["manage"])).json()["results"]
    assert not {k["id"] for k in listed} & set(b.key_ids.values())


@row("owasp-api1-object-level-data-of-another-account")
def _(e: Edge) -> None:
    a, b = e.world.accounts["A"], e.world.accounts["B"]
    theirs = b.scopes["primary"]
    for path in (f"{BASE}/{theirs.recipient}", f"{BASE}/imports/{theirs.import_id}"):
        assert_sparkpost_error(e.client().get(path, headers=auth(a.keys["manage"])), 404)
    for sub in (b.sub1, 0):
        r = e.client().get(f"{BASE}/{theirs.recipient}", headers=auth(a.keys["manage"], sub))
        assert r.status_code in (403, 404), r.text


@row("owasp-api1-object-level-a-sibling-subaccount")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    sibling = a.scopes["sub2"]
    r = e.client().get(f"{BASE}/{sibling.recipient}", headers=auth(a.keys["sub1"]))
    assert_sparkpost_error(r, 404)
    r = e.client().get(f"{BASE}/{sibling.recipient}", headers=auth(a.keys["sub1"], a.sub2))
    assert_sparkpost_error(r, 403)


@row("owasp-api5-function-level-key-management")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    body = {"label": "x", "grants": ["suppression_lists/view"]}
    for grants in (["suppression_lists/view"], ["suppression_lists/manage"]):
        key = e.key(grants)["key"]  # strong enough for data, not for keys
        assert_sparkpost_error(e.client().post(KEYS_PATH, headers=auth(key), json=body), 403)
        assert_sparkpost_error(e.client().get(KEYS_PATH, headers=auth(key)), 403)
    # a subaccount's key manager cannot see or touch the primary account's keys
    sub_manager = e.key(["api_keys/manage", "suppression_lists/view"],
                        subaccount=a.sub1)["key"]
    r = e.client().delete(f"{KEYS_PATH}/{a.key_ids['view']}", headers=auth(sub_manager))
    assert_sparkpost_error(r, 404)


@row("owasp-api3-excessive-exposure-of-credentials")
def _(e: Edge) -> None:
    a = e.world.accounts["A"]
    listed = e.client().get(KEYS_PATH, headers=auth(a.keys["manage"]))
    assert listed.status_code == 200
    text = listed.text
    for raw_key in a.keys.values():
        assert raw_key not in text
    assert all("key" not in k for k in listed.json()["results"])
    refused = e.client().get(f"/{e.echo}/x", headers=auth(a.keys["manage"][:-1] + "0"))
    assert a.keys["manage"][:-1] not in refused.text


@pytest.mark.parametrize("name", list(ROWS))
def test_attack(edge: Edge, name: str) -> None:
    ROWS[name](edge)


def test_a_stale_decision_made_for_one_address_is_never_served_to_another(edge: Edge) -> None:
    """Stale-if-error keys by what the decision varies on too: while the auth service is
    down, the allowed address keeps its (stale) decision and another address gets a 503."""
    stack = edge.stack
    port = free_port()
    env = {**stack.env("auth"), "AUTHSVC_DECISION_TTL": "1"}
    auth_proc = Proc("auth-stale-vary", [sys.executable, "-m", "authsvc", "--host",
                                         "127.0.0.1", "--port", str(port)],
                     stack.logs / f"auth-{port}.log", env=env).start()
    node = None
    try:
        auth_proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
        node, node_port, metrics_port = stack.start_extra_gateway(
            unique("stale-vary"), None, authsvc_addr=f"127.0.0.1:{port}", auth_stale_ttl=120)
        key = edge.key(["suppression_lists/manage"], valid_ips=[f"{ALLOWED_IP}/32"])["key"]
        url = f"http://127.0.0.1:{node_port}/{edge.echo}/x"
        allowed, other = edge.client(ALLOWED_IP), edge.client(OTHER_IP)
        assert allowed.get(url, headers=auth(key)).status_code == 200
        auth_proc.stop()
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = time.monotonic() + 30
        while 'gateway_decision_cache_total{result="stale"}' not in httpx.get(metrics).text:
            assert time.monotonic() < deadline, "the decision was never served stale"
            assert allowed.get(url, headers=auth(key)).status_code == 200
            time.sleep(0.1)
        refused = other.get(url, headers=auth(key))
        assert_sparkpost_error(refused, 503)
        assert allowed.get(url, headers=auth(key)).status_code == 200
    finally:
        if node is not None:
            node.stop()
        auth_proc.stop()
