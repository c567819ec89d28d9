"""Rate limits, decision cache and response cache at the gateway (issue: decision cache,
rate limits and response cache)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from portcullis.procs import Proc
from tests.load import drive, drive_many
from tests.stackfix import HTTP, RouteAdmin, Tenant, echo_route, metrics_text, unique


def wait_served(url: str, headers: dict[str, str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while HTTP.get(url, headers=headers).status_code == 404:
        assert time.monotonic() < deadline, f"{url} never served"
        time.sleep(0.02)


@pytest.fixture
def echo_target(upstream_factory: Any) -> str:
    return str(upstream_factory("limited")[1])


@pytest.fixture
def local_node(stack: Stack) -> Iterator[tuple[Proc, int, int]]:
    """A second gateway node without Redis: the `local` policy."""
    node = stack.start_extra_gateway(unique("local"), None)
    yield node
    node[0].stop()


@pytest.fixture
def redis_node(stack: Stack) -> Iterator[tuple[Proc, int, int]]:
    """A second gateway node sharing the stack's Redis."""
    node = stack.start_extra_gateway(unique("peer"), stack.redis_url)
    yield node
    node[0].stop()


# The accuracy tests count 10 s of answers after a warm-up second that empties the bucket,
# so the burst adds nothing to what is counted (exactly limit x seconds when the key is
# saturated throughout) and only rides out stalls: with half a second of burst, a client or
# gateway starved of CPU for up to 0.5 s on a busy machine loses no slot.
LIMIT_BURST = 20
WARMUP = 1.5


def limited_route(name: str, target: str, limit: int, burst: int = 5) -> dict[str, Any]:
    return echo_route(name, [target], rate_limits=[
        {"dimension": "key", "limit": limit, "window": 1, "burst": burst}])


def serve_limited_route(prefix: str, routes: RouteAdmin, echo_target: str, stack: Stack,
                        tenant: Tenant, limit: int, burst: int) -> tuple[str, dict[str, str]]:
    """A new route to the echo upstream with a per-key limit, served by the gateway; its
    name and the tenant's Authorization header."""
    name = unique(prefix)
    routes.put(limited_route(name, echo_target, limit=limit, burst=burst))
    key = {"Authorization": tenant.key}
    wait_served(f"{stack.gateway_url}/{name}/x", key)
    return name, key


def test_rate_limit_headers_and_a_429_in_sparkpost_shape(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, echo_target: str,
        stack: Stack) -> None:
    name, key = serve_limited_route("rl", routes, echo_target, stack, tenant, limit=1, burst=3)
    seen = [gw.get(f"/{name}/x", headers=key) for _ in range(6)]
    ok = [r for r in seen if r.status_code == 200]
    limited = [r for r in seen if r.status_code == 429]
    assert ok and limited
    assert ok[0].headers["ratelimit-limit"] == "1"
    assert int(ok[0].headers["ratelimit-remaining"]) >= 0
    assert "ratelimit-reset" in ok[0].headers
    assert int(limited[0].headers["retry-after"]) >= 1
    err = limited[0].json()["errors"][0]
    assert err["code"] == "1429" and "Rate limit" in err["description"]
    # one of each header, on the upstream's answers and on the gateway's own 429 alike
    for r in (ok[0], limited[0]):
        for header in ("x-request-id", "ratelimit-limit", "ratelimit-remaining",
                       "ratelimit-reset"):
            assert len(r.headers.get_list(header)) == 1, (r.status_code, header, r.headers)
    assert limited[0].headers["ratelimit-remaining"] == "0"


def test_an_upstream_cannot_set_the_request_id_or_the_rate_limit_headers(
        gw: httpx.Client, tenant: Tenant, routes: RouteAdmin, echo_target: str,
        stack: Stack) -> None:
    name, key = serve_limited_route("claims", routes, echo_target, stack, tenant, limit=100,
                                    burst=100)
    r = gw.get(f"/{name}/claims/x", headers={**key, "X-Request-Id": "client-chosen-id-42"})
    assert r.status_code == 200
    assert r.headers.get_list("x-request-id") == ["client-chosen-id-42"]
    assert r.headers.get_list("ratelimit-limit") == ["100"]


@pytest.mark.slow
def test_local_limit_holds_within_5_percent_under_200_concurrent_clients(
        tenant: Tenant, routes: RouteAdmin, echo_target: str,
        local_node: tuple[Proc, int, int]) -> None:
    limit, seconds, burst = 40, 10, LIMIT_BURST
    name = unique("acc")
    routes.put(limited_route(name, echo_target, limit=limit, burst=burst))
    url = f"http://127.0.0.1:{local_node[1]}/{name}/x"
    key = {"Authorization": tenant.key}
    wait_served(url, key)
    statuses = drive(url, key, clients=200, seconds=seconds, warmup=WARMUP, upstream_clock=True)
    assert set(statuses) <= {200, 429}, statuses
    expected = limit * seconds
    assert abs(statuses[200] - expected) <= 0.05 * expected, statuses
    print(f"local: {dict(statuses)} (expected {expected})")


@pytest.mark.slow
def test_redis_limit_holds_across_two_gateway_nodes(
        stack: Stack, tenant: Tenant, routes: RouteAdmin, echo_target: str,
        redis_node: tuple[Proc, int, int]) -> None:
    limit, seconds, burst = 40, 10, LIMIT_BURST
    name = unique("acc2")
    routes.put(limited_route(name, echo_target, limit=limit, burst=burst))
    key = {"Authorization": tenant.key}
    urls = [f"{stack.gateway_url}/{name}/x", f"http://127.0.0.1:{redis_node[1]}/{name}/x"]
    for url in urls:
        wait_served(url, key)
    results = asyncio.run(drive_many([(u, key) for u in urls], clients=100, seconds=seconds,
                                     warmup=WARMUP, upstream_clock=True))
    total: Counter[int] = sum(results, Counter())
    assert set(total) <= {200, 429}, total
    expected = limit * seconds
    assert abs(total[200] - expected) <= 0.05 * expected, results
    assert all(r[200] > 0 for r in results)  # both nodes served some
    print(f"redis, two nodes: {[dict(r) for r in results]} (expected {expected})")


@pytest.mark.slow
@pytest.mark.gateway_errors(r"redis")
def test_redis_down_falls_back_to_local_limits_and_back(
        stack: Stack, tenant: Tenant, routes: RouteAdmin, echo_target: str,
        redis_proc: Proc) -> None:
    limit, seconds = 20, 3
    name = unique("fallback")
    routes.put(limited_route(name, echo_target, limit=limit, burst=2))
    url = f"{stack.gateway_url}/{name}/x"
    key = {"Authorization": tenant.key}
    wait_served(url, key)
    expected = limit * seconds

    def phase() -> Counter[int]:
        time.sleep(1)
        got = drive(url, key, clients=30, seconds=seconds)
        assert set(got) <= {200, 429}, got  # never a 5xx
        assert 0.8 * expected <= got[200] <= 1.2 * expected + 2, got  # never unlimited
        return got

    up = phase()
    redis_proc.stop()
    try:
        down = phase()
    finally:
        redis_proc.start()
        redis_proc.wait_until(lambda: _redis_ok(stack), 15)
    back = phase()
    metrics_text(stack.url("metrics") + "/metrics", "gateway_redis_fallback_total")
    assert _redis_limit_scripts_run(stack) > 0  # global limits resumed in Redis
    print(f"redis up {dict(up)}, down {dict(down)}, back {dict(back)}")


def _redis_ok(stack: Stack) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(str(stack.redis_url)).ping())
    except redis.RedisError:
        return False


def _redis_limit_scripts_run(stack: Stack) -> int:
    """Limit scripts Redis ran since it (re)started (its command stats start at zero)."""
    import redis

    stats = redis.Redis.from_url(str(stack.redis_url)).info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0))
               for name in ("cmdstat_evalsha", "cmdstat_eval"))


def test_a_key_far_from_its_redis_limit_costs_one_script_per_lease_not_per_request(
        stack: Stack, tenant: Tenant, routes: RouteAdmin, echo_target: str) -> None:
    # Leases (lua/gw/limit/lease.lua): a worker charges Redis for up to 64 requests at once
    # while the tightest limit has plenty left, and admits them without a round trip.
    name = unique("lease")
    routes.put(limited_route(name, echo_target, limit=100_000, burst=100_000))
    url = f"{stack.gateway_url}/{name}/x"
    key = {"Authorization": tenant.key}
    wait_served(url, key)
    before = _redis_limit_scripts_run(stack)
    sent = 320
    with httpx.Client(timeout=10) as c:
        seen = [c.get(url, headers=key) for _ in range(sent)]
    scripts = _redis_limit_scripts_run(stack) - before
    assert {r.status_code for r in seen} == {200}
    for r in seen:  # the headers still describe the tightest limit
        assert 0 <= int(r.headers["ratelimit-remaining"]) <= int(r.headers["ratelimit-limit"])
    assert 0 < scripts <= sent // 8, scripts
    print(f"{sent} requests, {scripts} limit scripts in Redis")


def test_response_cache_isolates_accounts_and_a_write_is_read_back(
        stack: Stack, make_tenant: Any, routes: RouteAdmin, echo_target: str) -> None:
    name = unique("cached")
    routes.put(echo_route(name, [echo_target], cache={"ttl": 60}))
    a, b = make_tenant(), make_tenant()
    ka, kb = {"Authorization": a.key}, {"Authorization": b.key}
    url = f"{stack.gateway_url}/{name}/kv/item"
    wait_served(f"{stack.gateway_url}/{name}/x", ka)
    with httpx.Client() as c:
        assert c.put(url, headers=ka, content=b'{"v": "a1"}').status_code == 200
        first = c.get(url, headers=ka)
        assert first.json() == {"v": "a1"}
        assert first.headers["x-cache-status"] == "MISS"
        again = c.get(url, headers=ka)
        assert again.headers["x-cache-status"] == "HIT"
        assert again.json() == {"v": "a1"}
        # B asks for the same URL: never A's cached body
        other = c.get(url, headers=kb)
        assert other.status_code == 404
        assert other.headers["x-cache-status"] == "MISS"
        # A writes; A's next read sees the write at once
        assert c.put(url, headers=ka, content=b'{"v": "a2"}').status_code == 200
        after = c.get(url, headers=ka)
        assert after.json() == {"v": "a2"}
        assert after.headers["x-cache-status"] == "MISS"
        # a client's no-cache bypasses
        bypass = c.get(url, headers={**ka, "Cache-Control": "no-cache"})
        assert bypass.headers["x-cache-status"] == "BYPASS"
        # non-200 and no-store answers are never stored
        for _ in range(2):
            assert c.get(url + "-missing", headers=ka).headers["x-cache-status"] == "MISS"
            nostore = url.replace("/item", "/nostore")
            c.put(nostore, headers=ka, content=b"{}")
            assert c.get(nostore, headers=ka).headers["x-cache-status"] == "MISS"
    metrics_text(stack.url("metrics") + "/metrics", 'gateway_response_cache_total{result="hit"}')


def test_metrics_expose_requests_latency_decisions_and_limits(
        gw: httpx.Client, stack: Stack, tenant: Tenant) -> None:
    gw.get("/api/v1/suppression-list/m@example.com", headers={"Authorization": tenant.key})
    metrics_text(stack.url("metrics") + "/metrics",
                 "gateway_requests_total", "gateway_request_duration_seconds_bucket",
                 "gateway_upstream_duration_seconds_bucket",
                 "gateway_own_duration_seconds_bucket", "gateway_decision_cache_total",
                 "gateway_rate_limit_total", "gateway_route_table_version",
                 'route="suppression-lookup",status="404"')


def test_metrics_listen_on_loopback_only(stack: Stack) -> None:
    conf = (stack.gateway_prefix / "nginx.conf").read_text()
    assert f"listen 127.0.0.1:{stack.port('metrics')};" in conf


@pytest.fixture
def private_auth(stack: Stack) -> Iterator[tuple[Proc, int]]:
    """An auth service of this test's own (decisions live 1 s), so stopping it leaves the
    session's stack alone."""
    import sys

    from portcullis.procs import free_port

    port = free_port()
    env = {**stack.env("auth"), "AUTHSVC_DECISION_TTL": "1"}
    proc = Proc("private-auth", [sys.executable, "-m", "authsvc", "--host", "127.0.0.1",
                                 "--port", str(port)], stack.logs / f"auth-{port}.log",
                env=env)
    proc.start()
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    yield proc, port
    proc.stop()


def test_auth_outage_serves_stale_decisions_in_the_window_then_503_and_recovers(
        stack: Stack, make_tenant: Any, private_auth: tuple[Proc, int]) -> None:
    auth_proc, auth_port = private_auth
    node, port, metrics_port = stack.start_extra_gateway(unique("stale"), None,
                                              authsvc_addr=f"127.0.0.1:{auth_port}",
                                              auth_stale_ttl=4)
    try:
        known, newcomer = make_tenant(), make_tenant()
        url = f"http://127.0.0.1:{port}/api/v1/suppression-list/stale@example.com"
        with httpx.Client(timeout=10) as c:
            assert c.get(url, headers={"Authorization": known.key}).status_code == 404
            auth_proc.stop()
            # the known caller keeps its (fresh, then stale) decision; a newcomer is refused
            assert c.get(url, headers={"Authorization": known.key}).status_code == 404
            refused = c.get(url, headers={"Authorization": newcomer.key})
            assert refused.status_code == 503
            assert refused.json()["errors"][0]["code"] == "1503"
            # past the stale window everyone is refused, never allowed
            deadline = time.monotonic() + 30
            while c.get(url, headers={"Authorization": known.key}).status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            metrics_text(f"http://127.0.0.1:{metrics_port}/metrics",
                         'gateway_decision_cache_total{result="stale"}',
                         "gateway_auth_errors_total")
            auth_proc.start()
            auth_proc.wait_http(f"http://127.0.0.1:{auth_port}/healthz", 60)
            for who in (known, newcomer):
                assert c.get(url, headers={"Authorization": who.key}).status_code == 404
    finally:
        node.stop()


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis-event", "revocation-poll"])
def test_a_revoked_key_is_refused_through_both_gateway_nodes_long_before_its_ttl(
        stack: Stack, tenant: Tenant, with_redis: bool) -> None:
    node, port, _ = stack.start_extra_gateway(unique("rev"),
                                              stack.redis_url if with_redis else None)
    try:
        created = stack.create_key(tenant.account_id, ["suppression_lists/manage"])
        key = {"Authorization": str(created["key"])}
        path = "/api/v1/suppression-list/rev@example.com"
        urls = [stack.gateway_url + path, f"http://127.0.0.1:{port}{path}"]
        with httpx.Client(timeout=10) as c:
            for url in urls:  # cache an allow on both nodes (decision TTL: 30 s)
                assert c.get(url, headers=key).status_code == 404
                assert c.get(url, headers=key).status_code == 404
            stack.admin("DELETE", f"/admin/keys/{created['id']}")
            start = time.monotonic()
            took = []
            for url in urls:
                while c.get(url, headers=key).status_code != 401:
                    assert time.monotonic() - start < 20, "revocation never arrived"
                    time.sleep(0.01)
                took.append(time.monotonic() - start)
        # well inside the 30 s decision TTL: the event (or the poll) evicted it
        assert max(took) < 10
        print(f"revocation seen after {[f'{t:.3f}s' for t in took]}")
    finally:
        node.stop()


@pytest.mark.slow
def test_under_load_the_auth_service_sees_one_call_per_credential_and_question(
        stack: Stack, make_tenant: Any) -> None:
    from tests.countproxy import CountingRelay

    # A plan far above what the test can send: the default (1,000/s a key) refused requests
    # once the machine was fast enough, and this test is about auth calls, not limits.
    plan = [{"dimension": "key", "limit": 1_000_000, "window": 1}]
    tenants = [make_tenant(rate_limits=plan) for _ in range(3)]
    with CountingRelay(stack.port("auth"), b"POST /v1/authorize ") as relay:
        node, port, _ = stack.start_extra_gateway(unique("count"), None,
                                                  authsvc_addr=f"127.0.0.1:{relay.port}")
        try:
            base = f"http://127.0.0.1:{port}/api/v1/suppression-list"
            targets: list[tuple[str, dict[str, str]]] = []
            for t in tenants:
                for sub in (None, "0"):
                    headers = {"Authorization": t.key}
                    if sub is not None:
                        headers["X-MSYS-SUBACCOUNT"] = sub
                    targets.append((f"{base}/load@example.com", headers))
            results = asyncio.run(drive_many(targets, clients=20, seconds=3))
        finally:
            node.stop()
    total: Counter[int] = sum(results, Counter())
    assert set(total) == {404}, total  # every request reached the service, none refused
    assert sum(total.values()) > 500
    # 3 credentials x 2 subaccount headers, one resource and method, TTL 30 s: 6 questions
    assert relay.count == len(targets), (relay.count, total)
    print(f"{sum(total.values())} requests, {relay.count} auth calls")


def test_failed_authentication_is_limited_per_address_without_locking_out_known_keys(
        stack: Stack, tenant: Tenant) -> None:
    node, port, _ = stack.start_extra_gateway(
        unique("brute"), None, failed_auth_limit={"limit": 5, "window": 60, "burst": 5})
    try:
        url = f"http://127.0.0.1:{port}/api/v1/suppression-list/brute@example.com"
        with httpx.Client(timeout=10) as c:
            assert c.get(url, headers={"Authorization": tenant.key}).status_code == 404
            statuses = [c.get(url, headers={"Authorization": f"guess-{i:036d}"}).status_code
                        for i in range(12)]
            assert statuses[:5] == [401] * 5
            assert set(statuses[6:]) == {429}
            # a key whose decision is cached still works from that address
            assert c.get(url, headers={"Authorization": tenant.key}).status_code == 404
    finally:
        node.stop()


def test_routes_without_auth_are_limited_per_client_address(stack: Stack) -> None:
    node, port, _ = stack.start_extra_gateway(
        unique("anon"), None, anonymous_limit={"limit": 1, "window": 60, "burst": 3})
    try:
        url = f"http://127.0.0.1:{port}/api/v1/suppression-list/openapi.json"
        with httpx.Client(timeout=10) as c:
            statuses = [c.get(url).status_code for _ in range(6)]
        assert statuses[:3] == [200] * 3
        assert set(statuses[3:]) == {429}
    finally:
        node.stop()
