"""Every body is bounded before it costs, through the real stack: the gateway's per-route
limit (413 from the declared length, 411 for a body that declares none), the suppression
service's bounds in bytes and in objects (48 MB of `{}` is refused before it becomes a
gigabyte of Python objects), and the auth service's, which reads at most its limit."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.stack import Stack
from portcullis.context import signed_headers
from portcullis.procs import Proc, free_port
from tests.security.conftest import BASE, assert_sparkpost_error
from tests.stackfix import ROOT, RouteAdmin, Tenant, echo_keys, unique

FLOOD = b'{"recipients": [' + b",".join([b"{}"] * 16_000_000) + b"]}"  # 48 MB


@pytest.fixture(scope="module")
def echo(stack: Stack) -> Iterator[str]:
    port = free_port()
    proc = Proc("echo-bounds", [sys.executable, "-m", "tests.echo_upstream", "--port",
                                str(port), f"--context-keys={echo_keys(stack)}"],
                stack.logs / "echo-bounds.log", cwd=ROOT).start()
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 30)
    yield f"127.0.0.1:{port}"
    proc.stop()


def peak_rss_mb(proc: Proc) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    assert proc.popen is not None
    status = Path(f"/proc/{proc.popen.pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines()
              if line.startswith("VmHWM:"))
    return kb / 1024


def chunked(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    """A request whose body is sent chunked (no Content-Length), on a raw socket. The body
    goes out from a thread while the answer is read: a server that refuses early answers
    and closes with the rest unread, and the reset that follows must not lose the answer."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            "Transfer-Encoding: chunked", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items()), "", ""]

    def send(s: socket.socket) -> None:
        try:
            for start in range(0, len(body), 8192):
                piece = body[start:start + 8192]
                s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # refused before the end: the answer is on its way

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall("\r\n".join(head).encode())
        sender = threading.Thread(target=send, args=(s,))
        sender.start()
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            assert data, "the connection was reset before any answer"
        sender.join()
    head_text, _, rest = data.partition(b"\r\n\r\n")
    status = int(head_text.split()[1])
    if b"transfer-encoding: chunked" in head_text.lower():
        rest = rest.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(rest)


def test_a_routes_body_limit_is_held_before_the_body_is_read(
        stack: Stack, tenant: Tenant, routes: RouteAdmin, echo: str) -> None:
    limited, unlimited, default = unique("lim"), unique("unlim"), unique("deflim")
    for name, extra in ((limited, {"max_request_body": 1000}),
                        (unlimited, {"max_request_body": None}), (default, {})):
        routes.put({"name": name, "paths": [f"/{name}"], "owner": "tests",
                    "resource": "suppression_lists", "upstream": {"targets": [echo]},
                    **extra})
    routes.wait_gateway_at(routes.table_version())
    key = {"Authorization": tenant.key}
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as gw:
        ok = gw.post(f"/{limited}/x", content=b"x" * 1000, headers=key)
        assert ok.status_code == 200 and ok.json()["body_length"] == 1000
        refused = gw.post(f"/{limited}/x", content=b"x" * 1001, headers=key)
        assert "1,000 bytes" in assert_sparkpost_error(refused, 413)["description"]
        # the route's limit holds for anonymous and authenticated callers alike, and before
        # the credential is even looked at
        assert_sparkpost_error(gw.post(f"/{limited}/x", content=b"x" * 1001), 413)
        too_big = gw.post(f"/{default}/x", content=b"x" * (1024 * 1024 + 1), headers=key)
        assert_sparkpost_error(too_big, 413)
    status, body = chunked(stack.port("gateway"), f"/{limited}/x", key, b"x" * 10)
    assert status == 411 and body["errors"][0]["code"] == "1411"
    status, body = chunked(stack.port("gateway"), f"/{unlimited}/x", key, b"x" * 3_000_000)
    assert status == 200 and body["body_length"] == 3_000_000


def test_48_mb_of_empty_objects_to_the_bulk_put_is_refused_before_it_is_parsed(
        stack: Stack, tenant: Tenant, make_tenant: object) -> None:
    service = stack.procs["list"]
    before = peak_rss_mb(service)
    with httpx.Client(base_url=stack.gateway_url, timeout=120) as gw:
        r = gw.put(BASE, content=FLOOD, headers={"Authorization": tenant.key,
                                                "Content-Type": "application/json"})
        first = assert_sparkpost_error(r, 400)
        assert first["message"] == "Too many recipients: at most 10,000 per request"
        # the service is still there for everyone
        other = make_tenant()  # type: ignore[operator]
        assert gw.get(f"{BASE}/x@example.com",
                      headers={"Authorization": other.key}).status_code == 404
    grew = peak_rss_mb(service) - before
    print(f"list service peak RSS grew {grew:.0f} MB for a refused 48 MB body")


def test_48_mb_to_the_sending_paths_batch_lookup_is_refused_unread(
        stack: Stack, tenant: Tenant) -> None:
    service = stack.procs["lookup"]
    before = peak_rss_mb(service)
    view = tenant.new_key(["suppression_lists/view"])  # a read-only key is enough to try
    with httpx.Client(timeout=120) as client:
        r = client.post(stack.gateway_url + f"{BASE}/lookup", content=FLOOD,
                        headers={"Authorization": view, "Content-Type": "application/json"})
        assert "limit of 4 MB" in assert_sparkpost_error(r, 413)["description"]
        # straight to the service (as if the gateway had no limit): its own bound
        signed = signed_headers(stack.context_keys("suppression"), "POST", f"{BASE}/lookup",
                                account_id=tenant.account_id,
                                grants=["suppression_lists/view"])
        r = client.post(stack.url("lookup") + f"{BASE}/lookup", content=FLOOD,
                        headers={**signed, "Content-Type": "application/json"})
        assert "4 MB" in assert_sparkpost_error(r, 413)["description"]
        status, body = chunked(stack.port("lookup"), f"{BASE}/lookup", signed,
                               FLOOD[:5_000_000])
        assert status == 413 and body["errors"][0]["code"] == "1413"
    grew = peak_rss_mb(service) - before
    print(f"lookup service peak RSS grew {grew:.0f} MB for three refused 48 MB bodies")
    assert stack.procs["lookup"].alive()


def test_the_auth_service_refuses_an_oversized_body_without_buffering_it(
        stack: Stack, tenant: Tenant) -> None:
    gateway = {"Authorization": f"Bearer {stack.gateway_token}"}
    # declared: refused before a byte of the body is read (none is sent)
    with socket.create_connection(("127.0.0.1", stack.port("auth")), timeout=30) as s:
        s.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n"
                  b"Content-Type: application/json\r\nAuthorization: "
                  + gateway["Authorization"].encode() + b"\r\n\r\n")
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # streamed: refused as it passes 16 KB
    status, body = chunked(stack.port("auth"), "/v1/authorize", gateway, b" " * 20_000)
    assert status == 413 and body["errors"][0]["code"] == "1413"
    # key management: the gateway's route limit, and the service's own behind it
    grants = ["api_keys/manage", "suppression_lists/manage"]
    made = stack.create_key(tenant.account_id, grants)
    manager = str(made["key"])
    big = {"label": "x" * 70_000, "grants": ["suppression_lists/view"]}
    r = httpx.post(stack.gateway_url + "/api/v1/api-keys", json=big,
                   headers={"Authorization": manager})
    assert_sparkpost_error(r, 413)
    signed = signed_headers(stack.context_keys("auth"), "POST", "/api/v1/api-keys",
                            account_id=tenant.account_id, key_id=str(made["id"]),
                            grants=grants)
    status, body = chunked(stack.port("auth"), "/api/v1/api-keys",
                           {**signed, "Authorization": manager}, json.dumps(big).encode())
    assert status == 413 and body["errors"][0]["code"] == "1413"
