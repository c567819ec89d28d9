"""Faults under load, each process stopped and started by its own pid: the guarantees hold
and every acknowledged write survives. Each test prints the counts of statuses it saw."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.stack import ROOT, Stack
from portcullis.procs import Proc, free_port
from tests.faults.conftest import Load, fault_key, report

BASE = "/api/v1/suppression-list"


def getter(stack: Stack, key: str, path: str = f"{BASE}/fault@example.com") -> Any:
    """A GET of one recipient with one key, whose decision is made (and cached) before the
    fault starts: the load then shows what the fault does to callers the gateway knows."""
    url = stack.gateway_url + path

    def make(client: httpx.Client, i: int) -> httpx.Response:
        return client.get(url, headers={"Authorization": key})

    with httpx.Client() as client:
        deadline = time.monotonic() + 10
        while make(client, 0).status_code != 404:
            assert time.monotonic() < deadline, "the key was never decided"
            time.sleep(0.05)
    return make


def test_auth_service_stopped_and_restarted_under_load(fstack: Stack) -> None:
    known, newcomer = fault_key(fstack), fault_key(fstack)
    with Load(getter(fstack, known)) as load:
        load.wait_for(50)
        fstack.procs["auth"].stop()
        load.wait_for(200)
        refused = httpx.get(fstack.gateway_url + f"{BASE}/x@example.com",
                            headers={"Authorization": newcomer})
        fstack.restart("auth")
        load.wait_for(50)
    report("auth stopped and restarted", load)
    # callers with a cached decision never notice; a newcomer gets a 503 in our shape
    assert set(load.statuses) == {404}, load.bodies[:5]
    assert refused.status_code == 503
    assert refused.json()["errors"][0]["code"] == "1503"
    # recovery without any restart of the gateway (a worker that just saw a failure waits
    # out its quarter-second circuit, so poll)
    deadline = time.monotonic() + 10
    while True:
        after = httpx.get(fstack.gateway_url + f"{BASE}/x@example.com",
                          headers={"Authorization": newcomer})
        if after.status_code == 404 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after.status_code == 404, after.text


def test_redis_stopped_and_restarted_under_load(fstack: Stack) -> None:
    key = fault_key(fstack)
    assert fstack.redis is not None
    make = getter(fstack, key)
    with Load(make) as load:
        load.wait_for(50)
        fstack.redis.stop()
        load.wait_for(300)
        fstack.redis.start()
        from portcullis.redisserver import redis_ping

        fstack.redis.wait_until(lambda: redis_ping(fstack.port("redis")), 15)
        load.wait_for(300)
    report("redis stopped and restarted", load)
    assert set(load.statuses) == {404}, load.bodies[:5]


@pytest.mark.gateway_errors(r"connect\(\) failed")
def test_one_of_two_suppression_instances_stopped_under_load(fstack: Stack) -> None:
    key = fault_key(fstack)
    admin = {"Authorization": f"Bearer {fstack.admin_token}"}
    control = fstack.url("control")
    route = httpx.get(f"{control}/routes/suppression-lookup", headers=admin).json()["results"]
    port = free_port()
    second = Proc("lookup-2", [sys.executable, "-m", "services.suppression", "lookup",
                               "--host", "127.0.0.1", "--port", str(port)],
                  fstack.logs / "lookup-2.log", env=fstack.env("lookup"), cwd=ROOT).start()
    second.wait_http(f"http://127.0.0.1:{port}/healthz", 60)
    both = {**route, "upstream": {**route["upstream"],
                                  "targets": [*route["upstream"]["targets"],
                                              f"127.0.0.1:{port}"]}}
    both = {k: v for k, v in both.items() if k not in ("created", "updated", "version")}
    resp = httpx.put(f"{control}/routes/suppression-lookup", json=both, headers=admin)
    assert resp.status_code == 200, resp.text
    version = int(resp.headers["x-table-version"])
    deadline = time.monotonic() + 10
    while httpx.get(fstack.url("metrics") + "/healthz").json()["routes_version"] < version:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    try:
        with Load(getter(fstack, key)) as load:
            load.wait_for(100)
            fstack.procs["lookup"].stop()
            load.wait_for(500)
        report("one of two lookup instances stopped", load)
        assert set(load.statuses) == {404}, load.bodies[:5]
    finally:
        fstack.restart("lookup")
        httpx.put(f"{control}/routes/suppression-lookup",
                  json={k: v for k, v in route.items()
                        if k not in ("created", "updated", "version")}, headers=admin)
        second.stop()


def test_postgres_restart_gives_503s_and_keeps_every_acknowledged_write(fstack: Stack) -> None:
    key = fault_key(fstack)
    acknowledged: list[str] = []

    def make(client: httpx.Client, i: int) -> httpx.Response:
        recipient = f"pg-{i}@example.com"
        resp = client.put(f"{fstack.gateway_url}{BASE}/{recipient}",
                          headers={"Authorization": key},
                          json={"type": "transactional", "description": "fault"})
        if resp.status_code == 200:
            acknowledged.append(recipient)
        return resp

    # warm the decision so the outage is the database's, not the auth service's
    assert httpx.get(fstack.gateway_url + f"{BASE}/w@example.com",
                     headers={"Authorization": key}).status_code == 404
    assert fstack.cluster is not None
    with Load(make) as load:
        load.wait_for(50)
        fstack.cluster.stop("fast")
        load.wait_for(100)
        fstack.cluster.start()
        deadline = time.monotonic() + 60
        before = load.statuses[200]
        while load.statuses[200] <= before + 50:  # writes flow again
            assert time.monotonic() < deadline, load.statuses
            time.sleep(0.05)
    report("postgres restarted (writes)", load)
    assert set(load.statuses) <= {200, 503}, load.bodies[:5]
    assert load.statuses[503] > 0
    for status, body in load.bodies:
        assert status == 503 and '"code":"1503"' in body.replace(" ", ""), body
    with httpx.Client(timeout=30) as client:
        lost = [r for r in acknowledged
                if client.get(f"{fstack.gateway_url}{BASE}/{r}",
                              headers={"Authorization": key}).status_code != 200]
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    print(f"{len(acknowledged)} acknowledged writes all read back")


@pytest.mark.gateway_errors(r"route table poll")
def test_control_plane_stopped_under_load(fstack: Stack) -> None:
    key = fault_key(fstack)
    with Load(getter(fstack, key)) as load:
        load.wait_for(50)
        fstack.procs["control"].stop()
        load.wait_for(300)
        fstack.restart("control")
        load.wait_for(50)
    report("control plane stopped and restarted", load)
    assert set(load.statuses) == {404}, load.bodies[:5]


def retrying(make: Any) -> Any:
    """A client as RFC 9112 9.3.1 expects: an idempotent request whose idle keep-alive
    connection was closed under it (a reload closes idle connections) is sent again once.
    Such a request never reached nginx, so nothing was dropped after being accepted."""
    def again(client: httpx.Client, i: int) -> httpx.Response:
        try:
            return make(client, i)  # type: ignore[no-any-return]
        except (httpx.ReadError, httpx.RemoteProtocolError):
            return make(client, i)  # type: ignore[no-any-return]
    return again


@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connections", "keep-alive"])
def test_nginx_reload_under_load_drops_no_request(fstack: Stack, keepalive: bool) -> None:
    key = fault_key(fstack)
    master = int((fstack.gateway_prefix / "nginx.pid").read_text())
    make = retrying(getter(fstack, key)) if keepalive else getter(fstack, key)
    with Load(make, keepalive=keepalive) as load:
        load.wait_for(50)
        for _ in range(3):
            subprocess.run([fstack.flavor.binary, "-p", str(fstack.gateway_prefix), "-c",
                            str(fstack.gateway_prefix / "nginx.conf"), "-s", "reload"],
                           check=True, capture_output=True)
            load.wait_for(200)
    report(f"nginx -s reload x3 ({'keep-alive' if keepalive else 'new connections'})", load)
    assert set(load.statuses) == {404}, load.bodies[:5]
    assert int((fstack.gateway_prefix / "nginx.pid").read_text()) == master
    os.kill(master, 0)



def test_an_import_worker_killed_half_way_is_resumed_and_a_rerun_converges(
        fstack: Stack) -> None:
    import asyncio

    import asyncpg

    key = fault_key(fstack)
    rows = 120_000
    body = "recipient,type,description\n" + "".join(
        f"kill-{i}@example.com,{'transactional' if i % 2 else 'non_transactional'},k\n"
        for i in range(rows))
    headers = {"Authorization": key, "Content-Type": "text/csv"}

    def run_import() -> str:
        resp = httpx.post(f"{fstack.gateway_url}{BASE}/imports", headers=headers,
                          content=body.encode(), timeout=120)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["results"]["id"])

    def job(job_id: str) -> dict[str, Any]:
        got = httpx.get(f"{fstack.gateway_url}{BASE}/imports/{job_id}",
                        headers={"Authorization": key})
        return dict(got.json()["results"])

    def wait(job_id: str, done: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while not done(state := job(job_id)):
            assert time.monotonic() < deadline, state
            time.sleep(0.02)
        return state

    first = run_import()
    mid = wait(first, lambda j: j["state"] == "running" and j["rows_written"] > 0)
    worker = fstack.procs["worker"]
    os.killpg(worker.pid, signal.SIGKILL)  # no chance to hand the job back
    assert worker.popen is not None
    worker.popen.wait(10)
    worker.start()
    finished = wait(first, lambda j: j["state"] in ("done", "failed"))
    assert finished["state"] == "done", finished
    assert finished["attempts"] >= 2  # it was taken up again after the kill

    async def count() -> int:
        conn = await asyncpg.connect(fstack.dsn)
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FROM suppression.entries WHERE recipient LIKE 'kill-%'"))
        finally:
            await conn.close()

    after_first = asyncio.run(count())
    second = run_import()
    assert wait(second, lambda j: j["state"] in ("done", "failed"))["state"] == "done"
    assert asyncio.run(count()) == after_first == rows
    print(f"import killed at {mid['rows_written']} of {rows} rows written; resumed and "
          f"re-run: {after_first} rows")


def test_a_statement_held_by_a_lock_is_cut_by_statement_timeout(fstack: Stack) -> None:
    """A query that cannot finish (here: waiting on a lock another session holds on the
    suppression table) is cancelled at the service's statement_timeout and answered 503 in
    our shape, on the sending path and the list path alike; once the lock is gone every
    request is served again. The connection it held is back in the pool."""
    import asyncio

    import asyncpg

    key = fault_key(fstack)
    headers = {"Authorization": key}
    lookup = fstack.gateway_url + f"{BASE}/held@example.com"
    search = fstack.gateway_url + f"{BASE}?per_page=5"
    assert httpx.put(lookup, json={"type": "transactional"}, headers=headers).status_code == 200
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(fstack.dsn))
    statuses: dict[str, list[int]] = {"lookup": [], "search": []}
    try:
        tx = conn.transaction()
        loop.run_until_complete(tx.start())
        loop.run_until_complete(conn.execute(
            "LOCK TABLE suppression.entries IN ACCESS EXCLUSIVE MODE"))
        for name, url in (("lookup", lookup), ("search", search)):
            for _ in range(2):
                r = httpx.get(url, headers=headers, timeout=30)
                statuses[name].append(r.status_code)
                assert r.status_code == 503, r.text
                assert r.json()["errors"][0]["message"] == "Query timeout"
        loop.run_until_complete(tx.rollback())
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    for name, url in (("lookup", lookup), ("search", search)):
        for _ in range(20):  # more than either pool's connections: none was left stuck
            r = httpx.get(url, headers=headers, timeout=30)
            statuses[name].append(r.status_code)
            assert r.status_code == 200, r.text
    line = f"statement held by a lock, cut by statement_timeout: {statuses}"
    print(line)
    out = Path(os.environ.get("FAULT_REPORT", ROOT / "test-artifacts" / "fault-report.txt"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(line + "\n")
