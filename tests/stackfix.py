"""The full stack (nginx gateway, auth service, suppression services, control plane) on
ephemeral ports, started once per test session with the same code `make run` uses.

Each test that drives the gateway gets its error log checked afterwards: any `[error]`,
`[crit]`, `[alert]` or `[emerg]` line fails the test unless the test names it with
`@pytest.mark.gateway_errors("regex", ...)`.
"""

from __future__ import annotations

import itertools
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.stack import PORTS, Stack, StackSettings
from portcullis import derive
from portcullis.pgcluster import Cluster
from portcullis.procs import Proc, free_port

ROOT = Path(__file__).resolve().parent.parent
BAD_LOG = re.compile(r"\[(error|crit|alert|emerg)\]")
_names = itertools.count(1)
# One client for the helpers that poll: a new httpx client builds an SSL context (about
# 50 ms of CPU), which polling loops would otherwise pay on every try. No keep-alive, so a
# restarted service is never asked over a connection it dropped.
HTTP = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:8]}"


@dataclass
class Tenant:
    """An account with one key; more keys and subaccounts on demand."""

    stack: Stack
    account_id: int
    key: str

    def new_key(self, grants: list[str], subaccount_id: int | None = None,
                **extra: Any) -> str:
        return str(self.stack.create_key(self.account_id, grants, subaccount_id,
                                         **extra)["key"])

    def subaccount(self) -> int:
        return self.stack.create_subaccount(self.account_id, unique("sub"))


@pytest.fixture(scope="session")
def stack(workdir: Path, pg_cluster: Cluster, redis_url: str) -> Iterator[Stack]:
    ports = {name: free_port() for name in PORTS}
    settings = StackSettings(var=workdir / "stack", ports=ports,
                             database_url=pg_cluster.dsn, redis_url=redis_url,
                             gateway_workers=2, auth_stale_ttl=3,
                             gateway={"failed_auth_limit": {"limit": 100000, "window": 1}})
    st = Stack(settings)
    try:
        st.start(say=lambda *_: None)
    except Exception:
        st.stop()
        raise
    yield st
    st.stop()


@pytest.fixture(scope="session")
def gw(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture
def tenant(stack: Stack) -> Tenant:
    """A fresh account whose key may manage suppression lists."""
    account = stack.create_account(unique("acct"))
    key = stack.create_key(account, ["suppression_lists/manage"])["key"]
    return Tenant(stack, account, str(key))


@pytest.fixture
def make_tenant(stack: Stack) -> Any:
    def make(grants: list[str] | None = None,
             rate_limits: list[dict[str, Any]] | None = None) -> Tenant:
        account = stack.create_account(unique("acct"), rate_limits)
        key = stack.create_key(account, grants or ["suppression_lists/manage"])["key"]
        return Tenant(stack, account, str(key))

    return make


ECHO_AUDIENCE = "tests"  # echo_route's owner, so the routes' service


def echo_keys(stack: Stack, audience: str = ECHO_AUDIENCE) -> str:
    """An echo upstream's --context-keys: the key of the audience its routes name."""
    return derive.context_keys_value(stack.signing_secret, audience)


@pytest.fixture
def upstream_factory(stack: Stack) -> Iterator[Any]:
    """Start throwaway echo upstreams (tests/echo_upstream.py); stopped after the test."""
    started: list[Proc] = []

    def start(name: str = "echo", html_errors: bool = False, host: str = "127.0.0.1",
              port: int | None = None) -> tuple[Proc, str]:
        port = port or free_port()
        argv = [sys.executable, "-m", "tests.echo_upstream", "--port", str(port), "--host", host,
                "--name", name, f"--context-keys={echo_keys(stack)}"]
        if html_errors:
            argv.append("--html-errors")
        proc = Proc(f"echo-{name}", argv, stack.logs / f"echo-{name}-{port}.log", cwd=ROOT)
        proc.start()
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        proc.wait_http(f"http://{address}/healthz", 30)
        started.append(proc)
        return proc, address

    yield start
    for proc in started:
        proc.stop()


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@pytest.fixture(autouse=True)
def gateway_error_log(request: pytest.FixtureRequest) -> Iterator[None]:
    if "stack" not in request.fixturenames:
        yield
        return
    st: Stack = request.getfixturevalue("stack")
    log = st.gateway_prefix / "logs" / "error.log"
    start = _log_size(log)
    yield
    marker = request.node.get_closest_marker("gateway_errors")
    allowed = [re.compile(p) for p in (marker.args if marker else ())]
    with open(log, errors="replace") as f:
        f.seek(start)
        new = f.read()
    bad = [line for line in new.splitlines()
           if BAD_LOG.search(line) and not any(p.search(line) for p in allowed)]
    assert not bad, "unexpected lines in the gateway's error log:\n" + "\n".join(bad[:20])


class RouteAdmin:
    """The control plane's admin API, for tests that register their own routes."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.base = stack.url("control")
        self.headers = {"Authorization": f"Bearer {stack.admin_token}"}
        self.created: list[str] = []

    def put(self, route: dict[str, Any]) -> dict[str, Any]:
        name = route["name"]
        resp = HTTP.put(f"{self.base}/routes/{name}", json=route, headers=self.headers)
        if resp.status_code == 404:
            resp = HTTP.post(f"{self.base}/routes", json=route, headers=self.headers)
        assert resp.status_code in (200, 201), resp.text
        if name not in self.created:
            self.created.append(name)
        return dict(resp.json())

    def delete(self, name: str) -> None:
        resp = HTTP.delete(f"{self.base}/routes/{name}", headers=self.headers)
        assert resp.status_code in (200, 204, 404), resp.text

    def table_version(self) -> int:
        resp = HTTP.get(f"{self.base}/table", headers=self.headers)
        return int(resp.json()["version"])

    def gateway_version(self) -> int:
        resp = HTTP.get(self.stack.url("metrics") + "/healthz")
        return int(resp.json().get("routes_version") or 0) if resp.status_code == 200 else 0

    def wait_gateway_at(self, version: int, timeout: float = 10) -> float:
        """Poll until the gateway serves table `version`; return how long it took."""
        import time

        start = time.monotonic()
        while self.gateway_version() < version:
            assert time.monotonic() - start < timeout, "gateway never took the new table"
            time.sleep(0.02)
        return time.monotonic() - start


@pytest.fixture
def routes(stack: Stack) -> Iterator[RouteAdmin]:
    admin = RouteAdmin(stack)
    yield admin
    for name in admin.created:
        admin.delete(name)


def metrics_text(url: str, *wanted: str, timeout: float = 10) -> str:
    """The gateway's metrics once they show every `wanted` string: workers hand their
    observations to the shared dict once a second, so poll for them."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        text = HTTP.get(url).text
        missing = [w for w in wanted if w not in text]
        if not missing:
            return text
        assert time.monotonic() < deadline, f"metrics never showed {missing}"
        time.sleep(0.05)


def echo_route(name: str, targets: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "paths": [f"/{name}"], "upstream": {"targets": targets},
            "resource": "suppression_lists", "owner": "tests", **extra}
