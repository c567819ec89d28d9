"""Route targets given by host name: the gateway resolves them (the C library's resolver, in
nginx's thread pool), balances over every address, follows address changes, and keeps the
last addresses while a name does not resolve."""

from __future__ import annotations

import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from portcullis.procs import free_port
from tests.stackfix import RouteAdmin, Tenant, echo_route, metrics_text, unique
from tests.test_gateway_routes import CONNECT_REFUSED, serve_health_checked, wait_status

UNRESOLVABLE = r"target name nowhere\.invalid does not resolve"


def upstream_of(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return str(resp.json()["upstream"])


def test_a_target_given_by_name_is_resolved_and_served(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    _, target = upstream_factory("named")
    port = target.rsplit(":", 1)[1]
    name = unique("named")
    routes.put(echo_route(name, [f"localhost:{port}"]))
    key = {"Authorization": tenant.key}
    wait_status(gw, f"/{name}/x", 200, key)
    assert upstream_of(gw.get(f"/{name}/x", headers=key)) == "named"


@pytest.mark.gateway_errors(UNRESOLVABLE)
def test_a_name_that_does_not_resolve_is_a_503_and_its_neighbours_still_serve(
        gw: httpx.Client, stack: Stack, tenant: Tenant, routes: RouteAdmin,
        upstream_factory: Any) -> None:
    _, target = upstream_factory("neighbour")
    key = {"Authorization": tenant.key}
    lost, mixed = unique("lost"), unique("mixed")
    routes.put(echo_route(lost, ["nowhere.invalid:80"]))
    routes.put(echo_route(mixed, ["nowhere.invalid:80", target]))
    routes.wait_gateway_at(routes.table_version())

    refused = gw.get(f"/{lost}/x", headers=key)
    assert refused.status_code == 503
    error = refused.json()["errors"][0]
    assert error["message"] == "Service unavailable"
    assert "nowhere.invalid" not in refused.text  # internal names stay internal
    # A route with one name that resolves and one that does not serves from the first.
    assert Counter(upstream_of(gw.get(f"/{mixed}/x", headers=key))
                   for _ in range(6)) == Counter({"neighbour": 6})
    metrics_text(stack.url("metrics") + "/metrics",
                 'gateway_dns_failures_total{name="nowhere.invalid"}')
    # The route fixed: served without a restart.
    routes.put(echo_route(lost, [target]))
    wait_status(gw, f"/{lost}/x", 200, key)


def can_unshare_mounts() -> bool:
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True,
                              check=False).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture
def private_hosts(stack: Stack, tmp_path: Path) -> Iterator[tuple[Path, int, int]]:
    """A gateway node whose /etc/hosts is a file of the test's (its own mount namespace:
    the machine's file is untouched); it resolves names every 0.2 s."""
    if not can_unshare_mounts():
        pytest.skip("needs a private mount namespace (root and unshare) to give one "
                    "gateway its own /etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    hosts.chmod(0o644)
    prefix = ("unshare", "--mount", "--", "sh", "-c",
              'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts))
    node, port, metrics_port = stack.start_extra_gateway(unique("hosts"), None, prefix,
                                                         dns_refresh=0.2)
    yield hosts, port, metrics_port
    node.stop()


def seen_until(client: httpx.Client, url: str, key: dict[str, str],
               done: Callable[[Counter[str]], bool], timeout: float = 10) -> Counter[str]:
    """Upstreams answering `url`, counted over the last 20 answers, once `done` holds."""
    deadline = time.monotonic() + timeout
    recent: list[str] = []
    while True:
        recent = [*recent, upstream_of(client.get(url, headers=key))][-20:]
        counts = Counter(recent)
        if len(recent) == 20 and done(counts):
            return counts
        assert time.monotonic() < deadline, f"never settled: {counts}"


# The stack's own gateway serves the same table without the private hosts file.
@pytest.mark.gateway_errors(r"target name svc\.portcullis\.test does not resolve")
def test_a_name_is_followed_as_its_addresses_change_and_kept_while_it_fails(
        stack: Stack, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any,
        private_hosts: tuple[Path, int, int]) -> None:
    hosts, port, metrics_port = private_hosts
    service_port = free_port()
    upstream_factory("first", host="127.0.0.2", port=service_port)
    upstream_factory("second", host="127.0.0.3", port=service_port)
    hosts.write_text("127.0.0.1 localhost\n127.0.0.2 svc.portcullis.test\n")
    name = unique("moving")
    routes.put(echo_route(name, [f"svc.portcullis.test:{service_port}"]))
    url = f"http://127.0.0.1:{port}/{name}/x"
    key = {"Authorization": tenant.key}
    with httpx.Client(timeout=10) as c:
        wait_status(c, url, 200, key)
        assert seen_until(c, url, key, lambda n: True) == Counter({"first": 20})
        # The name moves: traffic follows without a reload or a table change.
        hosts.write_text("127.0.0.1 localhost\n127.0.0.3 svc.portcullis.test\n")
        seen_until(c, url, key, lambda n: n == Counter({"second": 20}))
        # Two addresses: both take traffic.
        hosts.write_text("127.0.0.1 localhost\n127.0.0.2 svc.portcullis.test\n"
                         "127.0.0.3 svc.portcullis.test\n")
        both = seen_until(c, url, key, lambda n: len(n) == 2)
        assert set(both) == {"first", "second"}
        # The name stops resolving: its last addresses keep serving.
        hosts.write_text("127.0.0.1 localhost\n")
        metrics_text(f"http://127.0.0.1:{metrics_port}/metrics",
                     'gateway_dns_failures_total{name="svc.portcullis.test"}')
        kept = seen_until(c, url, key, lambda n: True)
        assert set(kept) == {"first", "second"}


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.gateway_errors(CONNECT_REFUSED, r"failed its health check")
def test_an_ipv6_target_is_served_and_its_health_check_brings_it_back(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, upstream_factory: Any) -> None:
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address to serve a target on")
    six_proc, six = upstream_factory("six", host="::1")
    _, four = upstream_factory("four")
    # One failure takes a target out for ten minutes: only a passing probe brings it back.
    name, key = serve_health_checked(gw, tenant, routes, "six", [six, four], {
        "path": "/healthz", "interval": 1, "failures": 1, "cooldown": 600})
    url = f"{gw.base_url}/{name}/x"
    seen_until(gw, url, key, lambda n: len(n) == 2)
    six_proc.stop()
    seen_until(gw, url, key, lambda n: n == Counter({"four": 20}))
    upstream_factory("six", host="::1", port=int(six.rsplit(":", 1)[1]))
    seen_until(gw, url, key, lambda n: "six" in n, timeout=15)
