"""Revocation has a bound that holds under concurrency (docs/auth.md, "How soon a revocation
holds"): through gateway nodes of their own, with and without Redis, and auth instances
whose key caches would re-admit a revoked key if the gateway let them.

- A revocation whose log entry becomes visible after a later one (out of commit order) is
  still applied by a node that only polls the log.
- An auth instance that has not heard of a revocation (no Redis, a long key cache) cannot
  re-admit the key once the gateway has: the gateway asks again for a fresh answer.
- Many keys revoked at once from two auth instances while requests run: once the node has
  applied the revocations, every request with those keys is refused.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.stack import Stack
from portcullis.procs import Proc, free_port
from tests.stackfix import HTTP, Tenant, metrics_text, unique

PATH = "/api/v1/suppression-list/revocation-probe@example.com"
ALLOWED = 404   # the suppression service answered: the key was let through
REFUSED = 401


@dataclass
class Node:
    proc: Proc
    url: str
    metrics: str

    def status(self, key: str) -> int:
        return HTTP.get(self.url + PATH, headers={"Authorization": key}).status_code

    def wait_refused(self, key: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.status(key) != REFUSED:
            assert time.monotonic() < deadline, "a revoked key is still let through"
            time.sleep(0.02)

    def applied(self) -> int:
        text = HTTP.get(self.metrics).text
        for line in text.splitlines():
            if line.startswith("gateway_revocations_applied_total"):
                return int(float(line.split()[-1]))
        return 0


def start_auth(stack: Stack, name: str, redis: bool) -> tuple[Proc, int]:
    """An auth instance that caches keys for five minutes, with or without Redis events."""
    port = free_port()
    env = {**stack.env("auth"), "AUTHSVC_KEY_CACHE_TTL": "300"}
    if not redis:
        env.pop("REDIS_URL", None)
    proc = Proc(name, [sys.executable, "-m", "authsvc", "--host", "127.0.0.1", "--port",
                       str(port)], stack.logs / f"{name}-{port}.log", env=env).start()
    proc.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    return proc, port


def start_node(stack: Stack, name: str, redis: bool, auth_ports: list[int]) -> Node:
    proc, port, metrics = stack.start_extra_gateway(
        name, stack.redis_url if redis else None,
        authsvc_addr=",".join(f"127.0.0.1:{p}" for p in auth_ports))
    return Node(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics}/metrics")


@pytest.fixture(scope="module")
def polling(stack: Stack) -> Iterator[Node]:
    """A node without Redis whose only auth instance has no Redis either and caches keys
    for five minutes: it hears of revocations only from the log, once a second."""
    auth, auth_port = start_auth(stack, "auth-noredis", redis=False)
    node = start_node(stack, unique("poll"), False, [auth_port])
    yield node
    node.proc.stop()
    auth.stop()


def revoke(stack: Stack, key_id: str, auth_port: int | None = None) -> None:
    url = f"http://127.0.0.1:{auth_port}" if auth_port else stack.url("auth")
    r = HTTP.delete(f"{url}/admin/keys/{key_id}",
                    headers={"Authorization": f"Bearer {stack.admin_token}"})
    assert r.status_code == 204, r.text


def new_key(stack: Stack, tenant: Tenant) -> dict[str, Any]:
    return stack.create_key(tenant.account_id, ["suppression_lists/manage"])


def test_a_revocation_that_commits_after_a_later_one_is_still_applied(
        stack: Stack, tenant: Tenant, polling: Node) -> None:
    first, second, third = (new_key(stack, tenant) for _ in range(3))
    for key in (first, second, third):
        assert polling.status(key["key"]) == ALLOWED  # cached on the node
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(stack.dsn))
    try:
        # The first revocation takes its seq, then waits to commit (as a slow transaction
        # of the auth service would) ...
        tx = conn.transaction()
        loop.run_until_complete(tx.start())
        seq = loop.run_until_complete(conn.fetchval(
            "WITH k AS (UPDATE auth.api_keys SET revoked_at = now() WHERE id = $1 RETURNING id)"
            " INSERT INTO auth.revocations (key_id, reason) SELECT id, 'revoked' FROM k"
            " RETURNING seq", first["id"]))
        # ... while a later one commits and the node applies it.
        revoke(stack, second["id"])
        polling.wait_refused(second["key"])
        loop.run_until_complete(tx.commit())
        # One more, after the commit: once the node has applied it, it has polled past the
        # first one's seq too.
        revoke(stack, third["id"])
        polling.wait_refused(third["key"])
        assert seq < loop.run_until_complete(conn.fetchval(
            "SELECT seq FROM auth.revocations WHERE key_id = $1", second["id"]))
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    assert polling.status(first["key"]) == REFUSED


def test_an_auth_instance_that_missed_a_revocation_cannot_readmit_the_key(
        stack: Stack, tenant: Tenant, polling: Node) -> None:
    key = new_key(stack, tenant)
    assert polling.status(key["key"]) == ALLOWED  # the node's auth instance caches the key
    revoke(stack, key["id"])  # through the main auth instance; no event reaches the other
    polling.wait_refused(key["key"])
    for _ in range(20):
        assert polling.status(key["key"]) == REFUSED
    reasks = metrics_text(polling.metrics, "gateway_decision_reasks_total")
    assert "gateway_decision_reasks_total" in reasks


class Load:
    """Threads sending requests with every key in turn through one node, recording when
    each request started and what it got."""

    def __init__(self, node: Node, keys: list[str], threads: int = 6) -> None:
        self.node, self.keys = node, keys
        self.seen: list[tuple[str, float, int]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, offset: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = offset
            while not self.stop.is_set():
                key = self.keys[i % len(self.keys)]
                i += 1
                started = time.monotonic()
                status = client.get(self.node.url + PATH,
                                    headers={"Authorization": key}).status_code
                with self.lock:
                    self.seen.append((key, started, status))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def since(self, t: float) -> list[tuple[str, float, int]]:
        with self.lock:
            return [s for s in self.seen if s[1] >= t]


def test_many_keys_revoked_at_once_from_two_auth_instances_while_requests_run(
        stack: Stack, tenant: Tenant) -> None:
    other, other_port = start_auth(stack, "auth-second", redis=False)
    node = start_node(stack, unique("concurrent"), True, [stack.port("auth"), other_port])
    try:
        made = [new_key(stack, tenant) for _ in range(40)]
        keys = [str(m["key"]) for m in made]
        for key in keys:
            # Each key answered by both instances (each now caches it), and cached by the node.
            for _ in range(4):
                assert node.status(key) == ALLOWED
        before = node.applied()
        revoked_at: dict[str, float] = {}
        with Load(node, keys) as load:
            deadline = time.monotonic() + 10
            while len(load.since(0)) < 200:
                assert time.monotonic() < deadline, "the load never started"
                time.sleep(0.01)

            def revoke_half(half: list[dict[str, Any]], port: int) -> None:
                for m in half:
                    revoke(stack, m["id"], port)
                    revoked_at[str(m["key"])] = time.monotonic()

            halves = [threading.Thread(target=revoke_half, args=(made[0::2], stack.port("auth"))),
                      threading.Thread(target=revoke_half, args=(made[1::2], other_port))]
            for t in halves:
                t.start()
            for t in halves:
                t.join()
            # Once the node has applied every one of them (by Redis or from the log) ...
            deadline = time.monotonic() + 30
            while node.applied() < before + len(made):
                assert time.monotonic() < deadline, "the node never applied the revocations"
                time.sleep(0.05)
            applied = time.monotonic()
            deadline = applied + 30
            while min(sum(1 for k, _, _ in load.since(applied) if k == key) for key in keys) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        after = load.since(applied)
        # ... every request with a revoked key is refused, whichever instance is asked.
        let_through = [(k[:8], round(t - applied, 3), s) for k, t, s in after if s != REFUSED]
        assert not let_through, let_through
        lag = max(max((t for k, t, s in load.seen if k == key and s == ALLOWED), default=0)
                  - revoked_at[key] for key in keys)
        print(f"{len(load.seen)} requests; the last let through started {lag * 1000:.0f} ms "
              f"after its key's revocation returned (at worst); {len(after)} after the node "
              "had applied every revocation, all refused")
    finally:
        node.proc.stop()
        other.stop()
