"""Path tricks (dot segments plain and encoded, doubled slashes, encoded slashes, `;`
parameters, NUL, unicode, double encoding) never escape a route: the answer is a JSON 4xx or
the route the normalised path names, never another route's upstream the caller may not
reach, never another tenant's data. Requests go on raw sockets: HTTP clients normalise."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from portcullis.procs import Proc, free_port
from tests.security.conftest import BASE, World
from tests.stackfix import ROOT, RouteAdmin, echo_keys, unique


def raw_get(port: int, path: str, headers: dict[str, str],
            method: str = "GET") -> tuple[int, str, Any]:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"{method} {path} HTTP/1.1\r\nHost: api.test\r\n{head}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode("utf-8"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if fields.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(lines[0].split()[1]), fields.get("content-type", ""), json.loads(body)


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


@dataclass
class Routes:
    public: str   # auth none
    inner: str    # auth required, resource the caller holds
    secret: str   # auth required, a resource the caller lacks


@pytest.fixture(scope="module")
def echo_routes(stack: Stack) -> Iterator[Routes]:
    procs: list[Proc] = []
    admin = RouteAdmin(stack)
    names = Routes(unique("pub"), unique("inner"), unique("secret"))
    try:
        for name, extra in ((names.public, {"auth": "none"}),
                            (names.inner, {"resource": "suppression_lists"}),
                            (names.secret, {"resource": "vault_secrets"})):
            port = free_port()
            proc = Proc(f"echo-{name}", [sys.executable, "-m", "tests.echo_upstream", "--port",
                                         str(port), "--name", name,
                                         f"--context-keys={echo_keys(stack)}"],
                        stack.logs / f"echo-{name}.log", cwd=ROOT)
            procs.append(proc.start())
            proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
            admin.put({"name": name, "paths": [f"/{name}"], "owner": "tests",
                       "upstream": {"targets": [f"127.0.0.1:{port}"]}, **extra})
        admin.wait_gateway_at(admin.table_version())
        yield names
    finally:
        for name in admin.created:
            admin.delete(name)
        for proc in procs:
            proc.stop()


# (raw path with {pub}/{inner}/{secret} for the route names, upstreams allowed to answer 200)
TRICKS = [
    ("/{pub}/../{secret}/x", set()),
    ("/{pub}/%2e%2e/{secret}/x", set()),
    ("/{pub}/%2E%2E/{secret}/x", set()),
    ("/{pub}/.%2e/{secret}/x", set()),
    ("/{pub}/..%2f{secret}/x", set()),
    ("/{pub}/..%2F{secret}/x", set()),
    ("/{pub}%2f..%2f{secret}/x", set()),
    ("/{pub}/x%2f..%2f..%2f{secret}", set()),
    ("/{pub}/x/%2e%2e/%2e%2e/{secret}", set()),
    ("/{inner}/x/../../{secret}/y", set()),
    ("//{secret}/x", set()),
    ("/{pub}//../{secret}", set()),
    ("/{secret};/x", set()),
    ("/{secret}%3b/x", set()),
    ("/{pub};/../{secret}", set()),
    ("/{pub}/%00/../{secret}", set()),
    ("/{pub}%00/x", set()),
    ("/{pub}/\u00fc/../../{secret}", set()),
    ("/{pub}/%c0%ae%c0%ae/{secret}", {"pub"}),      # overlong UTF-8 dots stay a segment
    ("/{pub}/x/%252e%252e/{secret}", {"pub"}),      # double encoding decodes once
    ("/{pub}/..\\{secret}", {"pub"}),                # a backslash is not a separator
    ("/{secret}/../{pub}/x", {"pub"}),               # the normalised path is the public route
    ("/{secret}/%2e%2e/{inner}/x", {"inner"}),
    ("/{pub}/../../../../etc/passwd", set()),
    ("/{inner}/%2e%2e%2f%2e%2e%2froutes", set()),
    ("/{pub}/../_gw/authorize", set()),
    ("/{pub}/%2e%2e/_gw/error", set()),
]


@pytest.mark.parametrize("trick", TRICKS, ids=[t[0] for t in TRICKS])
def test_path_tricks_never_reach_an_upstream_the_route_does_not_allow(
        stack: Stack, echo_routes: Routes, world: World,
        trick: tuple[str, set[str]]) -> None:
    template, allowed = trick
    names = {"pub": echo_routes.public, "inner": echo_routes.inner,
             "secret": echo_routes.secret}
    path = template.format(**names)
    key = world.accounts["A"].keys["manage"]
    status, ctype, body = raw_get(stack.port("gateway"), path, {"Authorization": key})
    assert ctype.startswith("application/json"), (path, status, body)
    if status == 200:
        who = body.get("upstream")
        assert who in {names[a] for a in allowed}, (path, body)
        assert who != echo_routes.secret
        if who == echo_routes.inner:
            assert body["signature"] == f"account={world.accounts['A'].account_id}"
    else:
        assert 400 <= status < 500, (path, status, body)
        assert body["errors"][0]["code"]


# Another tenant's recipient, reached by path tricks with tenant A's key: never served.
TENANT_TRICKS = [
    "{base}/{r}",
    "{base}/%2e%2e/suppression-list/{r}",
    "{base}/x/../{r}",
    "{base}%2f{r}",
    "{base}/{r};x=1",
    "{base}/{r}%00",
    "{base}//{r}",
    "{base}/{r}/",
    "{base}/{r_upper}",
    "/api/v1/api-keys/..%2fsuppression-list/{r}",
    "{base}/summary/../{r}",
    "{base}/openapi.json/../{r}",
    "{base}/{r}/../openapi.json",
    "{base}/imports/%2e%2e/{r}",
]


@pytest.mark.parametrize("template", TENANT_TRICKS)
def test_path_tricks_never_serve_another_tenants_recipient(stack: Stack, world: World,
                                                          template: str) -> None:
    victim = world.accounts["B"].scopes["primary"].recipient
    path = template.format(base=BASE, r=victim, r_upper=victim.upper())
    for method in ("GET", "DELETE"):
        status, ctype, body = raw_get(stack.port("gateway"), path,
                                      {"Authorization": world.accounts["A"].keys["manage"]},
                                      method)
        assert ctype.startswith("application/json"), (path, status, body)
        assert 400 <= status < 500, (method, path, status, body)
    owner = httpx.get(stack.gateway_url + f"{BASE}/{victim}",
                      headers={"Authorization": world.accounts["B"].keys["manage"]})
    assert owner.status_code == 200, owner.text
