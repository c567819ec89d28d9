"""Rate limits on a Redis Cluster of three masters started here from redis-server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from gateway.stack import Stack
from portcullis.procs import Proc, free_port
from portcullis.redisserver import start_redis
from tests.load import drive


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free and valid too."""
    from portcullis.procs import port_in_use

    while True:
        port = free_port()
        if port + 10000 < 65536 and not port_in_use(port + 10000):
            return port


@pytest.fixture(scope="module")
def redis_cluster(fstack: Stack) -> Iterator[list[int]]:
    ports = [cluster_port() for _ in range(3)]
    procs: list[Proc] = []
    try:
        for port in ports:
            procs.append(start_redis(fstack.var / f"cluster-{port}", port, [
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "5000"]))
        cli = shutil.which("redis-cli") or "redis-cli"
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while not all(redis.Redis(port=p).cluster("info").get("cluster_state") == "ok"
                      for p in ports):
            assert time.monotonic() < deadline, "cluster never became ok"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.stop()


def scripts_run(port: int) -> int:
    stats = redis.Redis(port=port).info("commandstats")
    return sum(int(stats.get(k, {}).get("calls", 0)) for k in ("cmdstat_evalsha",
                                                               "cmdstat_eval"))


def test_a_key_limit_holds_on_a_redis_cluster_and_spreads_over_its_masters(
        fstack: Stack, redis_cluster: list[int]) -> None:
    limit, seconds = 30, 6
    plan = [{"dimension": "key", "limit": limit, "window": 1, "burst": 2}]
    # Keys until every master owns the slot of at least one key's limit (the gateway's limit
    # key is "rl:key:<key id>:<limit>/<window>/<burst>"), so the spread is certain.
    probe = redis.Redis(port=redis_cluster[0])
    owner = {}
    for start, end, master, *_ in probe.execute_command("CLUSTER", "SLOTS"):
        for slot in range(int(start), int(end) + 1):
            owner[slot] = int(master[1])
    keys: list[str] = []
    covered: set[int] = set()
    while covered != set(redis_cluster):
        assert len(keys) < 200
        account = int(fstack.admin("POST", "/admin/accounts",
                                   {"name": f"cluster-{time.time_ns()}", "rate_limits": plan})
                      ["id"])
        created = fstack.create_key(account, ["suppression_lists/manage"])
        slot = int(probe.execute_command("CLUSTER", "KEYSLOT",
                                         f"rl:key:{created['id']}:{limit}/1/2"))
        if owner[slot] not in covered or not keys:
            covered.add(owner[slot])
            keys.append(str(created["key"]))
    node, port, _ = fstack.start_extra_gateway(
        f"cluster-{time.time_ns()}", None,
        redis_cluster=[f"127.0.0.1:{p}" for p in redis_cluster])
    try:
        url = f"http://127.0.0.1:{port}/api/v1/suppression-list/cluster@example.com"
        before = [scripts_run(p) for p in redis_cluster]
        got = drive(url, {"Authorization": keys[0]}, clients=50, seconds=seconds)
        assert set(got) <= {404, 429}, got
        expected = limit * seconds
        assert abs(got[404] - expected) <= 0.05 * expected + 2, got
        # other keys land on other slots and masters: every master runs limit scripts
        for key in keys[1:]:
            drive(url, {"Authorization": key}, clients=4, seconds=0.5)
        after = [scripts_run(p) for p in redis_cluster]
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
        log = (fstack.var / f"gateway-{node.name.removeprefix('gateway-')}" / "logs"
               / "error.log").read_text()
        assert "redis limits unavailable" not in log
        print(f"redis cluster key limit: {dict(got)} (expected {expected} accepted)")
    finally:
        node.stop()
