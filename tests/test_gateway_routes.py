"""Service teams register routes; the gateway serves them without a reload, balances over
targets, survives a control-plane outage, and answers every error in one JSON shape."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from tests.stackfix import RouteAdmin, Tenant, echo_route, unique

CONNECT_REFUSED = r"connect\(\) failed \(111: Connection refused\)"


def master_pid(stack: Stack) -> int:
    return int((stack.gateway_prefix / "nginx.pid").read_text())


def wait_status(gw: httpx.Client, path: str, status: int, headers: dict[str, str],
                timeout: float = 10) -> float:
    start = time.monotonic()
    while True:
        resp = gw.get(path, headers=headers)
        if resp.status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{path}: still {resp.status_code}"
        time.sleep(0.02)


class Stream:
    """A concurrent stream of requests (several threads) recording every status."""

    def __init__(self, url: str, headers: dict[str, str], threads: int = 4) -> None:
        self.url, self.headers = url, headers
        self.statuses: Counter[int] = Counter()
        self.upstreams: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]
        self.lock = threading.Lock()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    resp = client.get(self.url, headers=self.headers)
                    status, who = resp.status_code, resp.json().get("upstream", "")
                except httpx.HTTPError:
                    status, who = 0, ""
                with self.lock:
                    self.statuses[status] += 1
                    self.upstreams.append(who)

    def __enter__(self) -> Stream:
        for t in self.threads:
            t.start()
        # Running before the caller changes anything: each thread has been answered once
        # (making a client takes long enough for a quick test to finish first).
        deadline = time.monotonic() + 10
        while sum(self.statuses.values()) < len(self.threads):
            assert time.monotonic() < deadline, "the request stream never started"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_a_registered_route_is_served_changed_and_removed_without_reload_or_failures(
        gw: httpx.Client, stack: Stack, tenant: Tenant, routes: RouteAdmin,
        upstream_factory: Any) -> None:
    _, a = upstream_factory("alpha")
    _, b = upstream_factory("beta")
    steady = unique("steady")
    routes.put(echo_route(steady, [a]))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{steady}/x", 200, key)
    pid = master_pid(stack)
    name = unique("fresh")
    with Stream(f"{stack.gateway_url}/{steady}/x", key) as stream:
        routes.put(echo_route(name, [a]))
        took = wait_status(gw, f"/{name}/x", 200, key)
        assert gw.get(f"/{name}/x", headers=key).json()["upstream"] == "alpha"
        routes.put(echo_route(name, [b]))
        deadline = time.monotonic() + 10
        while gw.get(f"/{name}/x", headers=key).json()["upstream"] != "beta":
            assert time.monotonic() < deadline
        # once moved, it stays moved: every request now goes to beta
        assert {gw.get(f"/{name}/x", headers=key).json()["upstream"] for _ in range(20)} == {
            "beta"}
        routes.delete(name)
        wait_status(gw, f"/{name}/x", 404, key)
    assert master_pid(stack) == pid
    assert set(stream.statuses) == {200}, stream.statuses
    assert sum(stream.statuses.values()) > 20
    print(f"route served {took:.3f}s after registration; stream {dict(stream.statuses)}")


@pytest.mark.gateway_errors(r"route table poll", r"connect\(\) failed")
def test_gateway_serves_the_last_table_while_the_control_plane_is_down_even_after_restart(
        gw: httpx.Client, stack: Stack, tenant: Tenant, routes: RouteAdmin,
        upstream_factory: Any) -> None:
    _, a = upstream_factory("kept")
    name = unique("kept")
    routes.put(echo_route(name, [a]))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    stack.procs["control"].stop()
    try:
        assert gw.get(f"/{name}/x", headers=key).status_code == 200
        gateway = stack.procs["gateway"]
        gateway.stop()
        assert not gateway.alive()
        stack.start_gateway()
        assert gw.get(f"/{name}/x", headers=key).status_code == 200
        assert gw.get("/api/v1/suppression-list/x@example.com",
                      headers=key).status_code == 404  # the built-in routes too
    finally:
        stack.restart("control")


def pair_with_one_stopped(gw: httpx.Client, tenant: Tenant, routes: RouteAdmin,
                          upstream_factory: Any, label: str, retries: int
                          ) -> tuple[str, dict[str, str]]:
    """A route over two echo targets, served, then its first target stopped."""
    down, a = upstream_factory(f"down-{label}")
    _, b = upstream_factory(f"up-{label}")
    name = unique(label)
    routes.put(echo_route(name, [a, b], retries=retries))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    down.stop()
    return name, key


@pytest.mark.gateway_errors(CONNECT_REFUSED, r"upstream prematurely closed",
                            r"no live upstreams")
def test_with_one_of_two_targets_stopped_every_idempotent_request_succeeds(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    name, key = pair_with_one_stopped(gw, tenant, routes, upstream_factory, "pair", 1)
    statuses = Counter(gw.get(f"/{name}/x", headers=key).status_code for _ in range(40))
    statuses.update(gw.delete(f"/{name}/x", headers=key).status_code for _ in range(10))
    assert statuses == Counter({200: 50})


@pytest.mark.gateway_errors(CONNECT_REFUSED)
def test_a_post_is_never_retried_on_another_target(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    name, key = pair_with_one_stopped(gw, tenant, routes, upstream_factory, "post", 2)
    # A fresh connection each: after a failed streamed upload nginx may close the client
    # connection, and a reused one would race that close.
    statuses = Counter(httpx.post(f"{gw.base_url}/{name}/x", headers=key,
                                  content=b"x").status_code for _ in range(6))
    assert statuses[502] >= 1
    assert set(statuses) <= {200, 502}


def test_least_conn_sends_new_requests_away_from_a_busy_target(
        gw: httpx.Client, stack: Stack, tenant: Tenant, routes: RouteAdmin,
        upstream_factory: Any) -> None:
    _, a = upstream_factory("lc-a")
    _, b = upstream_factory("lc-b")
    name = unique("lc")
    route = echo_route(name, [a, b])
    route["upstream"]["balance"] = "least_conn"
    routes.put(route)
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    slow: dict[str, Any] = {}

    def hold() -> None:
        slow["who"] = httpx.get(f"{stack.gateway_url}/{name}/sleep/1500", headers=key,
                                timeout=10).json()["upstream"]

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.3)  # let the slow request reach its target (no event to poll for)
    fast = {gw.get(f"/{name}/x", headers=key).json()["upstream"] for _ in range(6)}
    t.join()
    assert len(fast) == 1
    assert slow["who"] not in fast


@pytest.mark.gateway_errors(r"failed its health check")
def serve_health_checked(gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, prefix: str,
                         targets: list[str], health: dict[str, Any]
                         ) -> tuple[str, dict[str, str]]:
    """A new route over `targets` with an active health check, served; its name and the
    tenant's Authorization header."""
    name = unique(prefix)
    route = echo_route(name, targets)
    route["upstream"]["health"] = health
    routes.put(route)
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    return name, key


def test_active_health_check_takes_a_failing_target_out(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    _, sick = upstream_factory("sick", html_errors=True)  # its /status/503 answers 503
    _, well = upstream_factory("well")                     # its /status/503 answers 200
    name, key = serve_health_checked(gw, tenant, routes, "hc", [sick, well], {
        "path": "/status/503", "interval": 1, "failures": 3, "cooldown": 30})
    deadline = time.monotonic() + 15
    while True:
        seen = {gw.get(f"/{name}/x", headers=key).json()["upstream"] for _ in range(10)}
        if seen == {"well"}:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)


def test_a_path_with_no_route_for_the_method_is_a_405_naming_the_allowed_ones(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    _, a = upstream_factory("getonly")
    name = unique("getonly")
    routes.put(echo_route(name, [a], methods=["GET"]))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    resp = gw.post(f"/{name}/x", headers=key)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"
    assert resp.json()["errors"][0]["code"] == "1405"


@pytest.mark.parametrize("status", [404, 500, 503])
def test_an_upstream_html_error_page_becomes_json(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any,
        status: int) -> None:
    _, a = upstream_factory("html", html_errors=True)
    name = unique("html")
    routes.put(echo_route(name, [a], retries=0))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    resp = gw.get(f"/{name}/status/{status}", headers=key)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    assert "<html>" not in resp.text
    assert resp.json()["errors"][0]["code"] == f"1{status}"


def raw_request(stack: Stack, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", stack.port("gateway")), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"BROKEN\r\n\r\n", 400),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\nConnection: close\r\n\r\n",
     431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\n0\r\n\r\n", 400),
])
def test_nginx_own_errors_are_json(stack: Stack, request_bytes: bytes, status: int) -> None:
    got, headers, body = raw_request(stack, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    import json

    assert json.loads(body)["errors"][0]["code"] == f"1{status}"


def test_cors_preflight_is_answered_for_allowed_origins_only(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    _, a = upstream_factory("cors")
    name = unique("cors")
    routes.put(echo_route(name, [a], cors={"origins": ["https://app.example.com"],
                                           "methods": ["GET", "PUT"], "max_age": 60}))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    pre = gw.options(f"/{name}/x", headers={"Origin": "https://app.example.com",
                                            "Access-Control-Request-Method": "PUT"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
    assert pre.headers["access-control-allow-methods"] == "GET, PUT"
    actual = gw.get(f"/{name}/x", headers={**key, "Origin": "https://app.example.com"})
    assert actual.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "X-Request-Id" in actual.headers["access-control-expose-headers"]
    denied = gw.options(f"/{name}/x", headers={"Origin": "https://evil.example.com",
                                               "Access-Control-Request-Method": "PUT"})
    assert denied.status_code == 403
    other = gw.get(f"/{name}/x", headers={**key, "Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("service", ["list", "lookup"])
@pytest.mark.parametrize("forge", ["missing", "forged", "stale", "other-path"])
def test_services_refuse_a_forged_missing_or_stale_signature(stack: Stack, service: str,
                                                            forge: str) -> None:
    from portcullis.context import ContextKeys, signed_headers

    path = "/api/v1/suppression-list/jane@example.com"
    secret = stack.context_keys("suppression")
    headers: dict[str, str] = {}
    if forge == "forged":
        headers = signed_headers(ContextKeys.for_roots("not-the-secret", "suppression"), "GET",
                                 path, account_id=1)
    elif forge == "stale":
        headers = signed_headers(secret, "GET", path, account_id=1,
                                 timestamp=int(time.time()) - 3600)
    elif forge == "other-path":
        headers = signed_headers(secret, "GET", "/api/v1/suppression-list/x@y.z",
                                 account_id=1)
    resp = httpx.get(stack.url(service) + path, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == "1401"


def test_the_request_id_is_logged_in_the_json_access_log(gw: httpx.Client,
                                                         stack: Stack) -> None:
    import json

    rid = unique("trace-id")
    gw.get("/no/such/path", headers={"X-Request-Id": rid, "Authorization": "secret-key-x"})
    log = stack.gateway_prefix / "logs" / "access.log"
    deadline = time.monotonic() + 5
    while True:
        # Clients choose the path, bytes that are not UTF-8 included (nginx's escape=json
        # passes them through): read the log as bytes that may not decode.
        text = log.read_text(errors="replace")
        lines = [json.loads(ln) for ln in text.splitlines() if rid in ln]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert lines[0]["request_id"] == rid
    assert lines[0]["status"] == 404
    assert "secret-key-x" not in log.read_text(errors="replace")


def test_access_log_lines_stay_valid_utf8_json_whatever_bytes_the_path_holds(
        gw: httpx.Client, stack: Stack) -> None:
    import json

    rid = unique("bytes-id")
    # nginx decodes %FF into a byte that is not UTF-8; "é" arrives as two UTF-8 bytes.
    gw.get("/no/%FF/caf%C3%A9", headers={"X-Request-Id": rid})
    log = stack.gateway_prefix / "logs" / "access.log"
    deadline = time.monotonic() + 5
    while True:
        mine = [ln for ln in log.read_bytes().splitlines() if rid.encode() in ln]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    line = json.loads(mine[0].decode("utf-8"))  # strict: raises on a stray byte
    assert line["path"] == "/no/%FF/caf%C3%A9"
    assert line["status"] == 404
