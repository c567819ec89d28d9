"""Request smuggling and oversized input: conflicting Content-Length / Transfer-Encoding are
refused on raw sockets; oversized headers, URIs, bodies and credentials get a 4xx in
SparkPost's JSON shape, never an HTML page."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from gateway.stack import Stack
from tests.security.conftest import BASE, assert_sparkpost_error, auth
from tests.stackfix import Tenant


def raw_exchange(port: int, request: bytes, body_chunks: int = 0) -> tuple[int, dict[str, str],
                                                                           bytes]:
    """Send raw bytes, read until the server closes; return (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        try:
            for _ in range(body_chunks):
                sock.sendall(b"x" * 1024 * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: read what it said
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes,
                      *expected: int) -> None:
    assert status in expected, (status, body[:300])
    assert headers["content-type"].startswith("application/json"), (headers, body[:300])
    errors = json.loads(body)["errors"]
    assert errors and {"message", "code"} <= set(errors[0])


FRAMING = [
    # (case, framing headers, body, expected status)
    ("content-length and chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
     "0\r\n\r\n", 400),
    ("chunked and content-length", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
     "0\r\n\r\n", 400),
    ("two different content-lengths", "Content-Length: 4\r\nContent-Length: 5\r\n",
     "{}   ", 400),
    ("the same content-length twice", "Content-Length: 2\r\nContent-Length: 2\r\n", "{}", 400),
    ("chunked twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
     "0\r\n\r\n", 400),
    ("space before the colon", "Transfer-Encoding : chunked\r\n", "0\r\n\r\n", 400),
    ("negative content-length", "Content-Length: -1\r\n", "", 400),
    ("signed content-length", "Content-Length: +2\r\n", "{}", 400),
    ("hex content-length", "Content-Length: 0x2\r\n", "{}", 400),
    ("a bad chunk size", "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n", 400),
    ("an unknown transfer coding", "Transfer-Encoding: xchunked\r\n", "0\r\n\r\n", 501),
    ("chunked then identity", "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n", 501),
]


@pytest.mark.gateway_errors(r"client sent invalid chunked body")
@pytest.mark.parametrize("case", FRAMING, ids=[c[0] for c in FRAMING])
def test_ambiguous_body_framing_is_refused_with_json(stack: Stack, tenant: Tenant,
                                                    case: tuple[str, str, str, int]) -> None:
    _, framing, body, expected = case
    # The import upload: a route without a body limit at the gateway, so nginx itself reads
    # a chunked body as it streams it (a route with a limit refuses one unread: 411,
    # tests/security/test_bounds.py).
    request = (f"POST {BASE}/imports HTTP/1.1\r\nHost: api.test\r\n"
               f"Authorization: {tenant.key}\r\nContent-Type: text/csv\r\n{framing}"
               f"Connection: close\r\n\r\n{body}")
    status, headers, answer = raw_exchange(stack.port("gateway"), request.encode())
    assert_json_error(status, headers, answer, expected)


def test_a_smuggled_second_request_never_reaches_a_service(stack: Stack,
                                                          tenant: Tenant) -> None:
    # The classic CL.TE probe: if anything read the body by Content-Length, the "GET /table"
    # would be served as a second request on the same connection.
    smuggled = "GET /api/v1/suppression-list/summary HTTP/1.1\r\nHost: api.test\r\n\r\n"
    chunked = f"0\r\n\r\n{smuggled}"
    request = (f"POST {BASE}/lookup HTTP/1.1\r\nHost: api.test\r\nAuthorization: {tenant.key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(chunked)}\r\n"
               f"Transfer-Encoding: chunked\r\n\r\n{chunked}")
    status, headers, answer = raw_exchange(stack.port("gateway"), request.encode())
    assert_json_error(status, headers, answer, 400)
    assert answer.count(b"HTTP/1.1") == 0, "a second response came back"


OVERSIZED = [
    # (case, headers, expected status)
    ("one header over the buffer", {"X-Big": "a" * 20000}, 431),
    ("more headers than the buffers hold", {f"X-Pad-{i}": "a" * 10000 for i in range(8)}, 431),
    ("an API key over 8 KB", {"Authorization": "k" * 9000}, 401),
    ("a JWT over 8 KB", {"Authorization": "Bearer " + ".".join(["eyJ" + "a" * 3000] * 3)}, 401),
    ("a JWT over the header buffer", {"Authorization": "Bearer " + "a" * 17000}, 431),
]


@pytest.mark.parametrize("case", OVERSIZED, ids=[c[0] for c in OVERSIZED])
def test_oversized_headers_and_credentials_are_a_json_4xx(
        gw: httpx.Client, case: tuple[str, dict[str, str], int]) -> None:
    _, headers, expected = case
    first = assert_sparkpost_error(gw.get(BASE, headers=headers), expected)
    if expected == 401:
        assert "8 KB" in first["description"]


def test_an_oversized_uri_is_a_json_414(gw: httpx.Client, tenant: Tenant) -> None:
    assert_sparkpost_error(gw.get(f"{BASE}/{'a' * 20000}@example.com",
                                  headers=auth(tenant.key)), 414)


FIFTY_MB = 50 * 1024 * 1024


def test_a_bulk_put_over_50_mb_by_its_length_is_413_before_it_is_read(
        stack: Stack, tenant: Tenant) -> None:
    request = (f"PUT {BASE} HTTP/1.1\r\nHost: api.test\r\nAuthorization: {tenant.key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {FIFTY_MB + 1}\r\n"
               "Connection: close\r\n\r\n")
    status, headers, answer = raw_exchange(stack.port("gateway"), request.encode(),
                                           body_chunks=2)
    assert_json_error(status, headers, answer, 413)
    assert b"50 MB" in answer


def test_a_chunked_bulk_put_is_refused_unread_as_it_declares_no_length(
        stack: Stack, tenant: Tenant) -> None:
    def body() -> bytes:
        piece = b"x" * (1024 * 1024)
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        return chunk * 51 + b"0\r\n\r\n"

    request = (f"PUT {BASE} HTTP/1.1\r\nHost: api.test\r\nAuthorization: {tenant.key}\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
               "Connection: close\r\n\r\n").encode() + body()
    status, headers, answer = raw_exchange(stack.port("gateway"), request)
    assert_json_error(status, headers, answer, 411)
