"""Scale-out: two instances of each Python service behind their routes, with one of each
stopped under load; two gateway nodes seeing a route change."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.stack import ROOT, Stack
from portcullis.procs import Proc, free_port
from tests.faults.conftest import Load, fault_key, report

BASE = "/api/v1/suppression-list"
ROUTE_FIELDS_DROPPED = ("created", "updated", "version")


def start_instance(stack: Stack, name: str, argv: list[str]) -> tuple[Proc, str]:
    port = free_port()
    service = name.rsplit("-", 1)[0]  # "lookup-2" is another lookup service
    proc = Proc(name, [sys.executable, *argv, "--host", "127.0.0.1", "--port", str(port)],
                stack.logs / f"{name}-{port}.log", env=stack.env(service), cwd=ROOT).start()
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    return proc, f"127.0.0.1:{port}"


def set_targets(stack: Stack, name: str, extra: list[str]) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {stack.admin_token}"}
    url = f"{stack.url('control')}/routes/{name}"
    route = httpx.get(url, headers=admin).json()["results"]
    original = {k: v for k, v in route.items() if k not in ROUTE_FIELDS_DROPPED}
    # two targets and two retries: a refused connect to the stopped one, then a kept-alive
    # connection the survivor closed at that moment, still leave a try
    changed = {**original, "retries": 2,
               "upstream": {**original["upstream"],
                            "targets": [*original["upstream"]["targets"], *extra]}}
    assert httpx.put(url, json=changed, headers=admin).status_code == 200
    return original


@pytest.fixture
def doubled(fstack: Stack) -> Iterator[dict[str, Any]]:
    """A second auth, lookup and list instance; the routes and a gateway node use both."""
    auth2, auth_addr = start_instance(fstack, "auth-2", ["-m", "authsvc"])
    lookup2, lookup_addr = start_instance(fstack, "lookup-2",
                                          ["-m", "services.suppression", "lookup"])
    list2, list_addr = start_instance(fstack, "list-2", ["-m", "services.suppression", "list"])
    originals = {name: set_targets(fstack, name, [addr]) for name, addr in
                 (("suppression-lookup", lookup_addr),
                  ("suppression-recipient-edit", list_addr))}
    node, port, metrics = fstack.start_extra_gateway(
        "scaled", fstack.redis_url,
        authsvc_addr=f"127.0.0.1:{fstack.port('auth')},{auth_addr}")
    version = int(httpx.get(fstack.url("metrics") + "/healthz").json()["routes_version"])
    deadline = time.monotonic() + 10
    while httpx.get(f"http://127.0.0.1:{metrics}/healthz").json()["routes_version"] < version:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield {"url": f"http://127.0.0.1:{port}", "extra": [auth2, lookup2, list2]}
    node.stop()
    admin = {"Authorization": f"Bearer {fstack.admin_token}"}
    for name, route in originals.items():
        httpx.put(f"{fstack.url('control')}/routes/{name}", json=route, headers=admin)
    for proc in (auth2, lookup2, list2):
        proc.stop()
    for name in ("auth", "lookup", "list"):
        if not fstack.procs[name].alive():
            fstack.restart(name)


@pytest.mark.gateway_errors(r"connect\(\) failed")
def test_one_instance_of_each_service_stopped_under_load_loses_nothing(
        fstack: Stack, doubled: dict[str, Any]) -> None:
    url = doubled["url"]
    keys = [fault_key(fstack) for _ in range(40)]  # new credentials keep asking the auth service

    def make(client: httpx.Client, i: int) -> httpx.Response:
        key = keys[i % len(keys)]
        if i % 3 == 0:
            return client.put(f"{url}{BASE}/scale-{i}@example.com",
                              headers={"Authorization": key}, json={"type": "transactional"})
        return client.get(f"{url}{BASE}/scale@example.com", headers={"Authorization": key})

    fresh = [fault_key(fstack) for _ in range(5)]  # made while the admin API is up
    with httpx.Client(timeout=30) as client:  # every (key, method) decided before the stops
        for i in range(len(keys) * 3):
            assert make(client, i).status_code in (200, 404)
    with Load(make) as load:
        load.wait_for(100)
        for name in ("auth", "lookup", "list"):
            fstack.procs[name].stop()
            load.wait_for(150)
        # keys the gateway never saw are decided by the remaining auth instance (polling:
        # right after the stop, a worker that saw a failed call waits out its short circuit)
        for key in fresh:
            deadline = time.monotonic() + 15
            while True:
                got = httpx.get(f"{url}{BASE}/new@example.com",
                                headers={"Authorization": key})
                if got.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got.status_code == 404, got.text
    report("one of two auth, lookup and list instances stopped", load)
    assert set(load.statuses) <= {200, 404}, load.bodies[:5]


def test_a_route_change_reaches_both_gateway_nodes(fstack: Stack) -> None:
    node, port, metrics = fstack.start_extra_gateway("second", fstack.redis_url)
    try:
        admin = {"Authorization": f"Bearer {fstack.admin_token}"}
        route = {"name": "scale-probe", "paths": ["/scale-probe"], "auth": "none",
                 "upstream": {"targets": [f"127.0.0.1:{fstack.port('list')}"]},
                 "owner": "tests"}
        resp = httpx.post(fstack.url("control") + "/routes", json=route, headers=admin)
        assert resp.status_code == 201, resp.text
        version = int(resp.headers["x-table-version"])
        start = time.monotonic()
        took = []
        for m in (fstack.url("metrics"), f"http://127.0.0.1:{metrics}"):
            while httpx.get(m + "/healthz").json()["routes_version"] < version:
                assert time.monotonic() - start < 10
                time.sleep(0.01)
            took.append(time.monotonic() - start)
        print(f"route change on both nodes after {[f'{t:.3f}s' for t in took]}")
        for base in (fstack.gateway_url, f"http://127.0.0.1:{port}"):
            served = httpx.get(f"{base}/scale-probe")
            assert "No route matches" not in served.text  # the service answered
        httpx.delete(fstack.url("control") + "/routes/scale-probe", headers=admin)
    finally:
        node.stop()
