"""A stack of the fault tests' own (its own PostgreSQL cluster and Redis), so stopping
PostgreSQL or Redis here never disturbs the session's stack."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.stack import PORTS, Stack, StackSettings
from portcullis.procs import free_port


@pytest.fixture(scope="module")
def fstack() -> Iterator[Stack]:
    # Not under pytest's own temp folder: pytest keeps that 0700, and PostgreSQL runs as
    # the postgres user, which must reach its data folder again after a restart.
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="portcullis-faults-"))
    os.chmod(root, 0o755)
    ports = {name: free_port() for name in PORTS}
    stack = Stack(StackSettings(
        var=root, ports=ports, start_redis=True, durable_pg=False, gateway_workers=2,
        auth_stale_ttl=120,
        # a killed worker's job is taken up again 2 s after its lease lapses
        extra_env={"SUPPRESSION_IMPORT_LEASE_SECONDS": "2",
                   "SUPPRESSION_IMPORT_BATCH_ROWS": "10000",
                   # short, so that a statement held by a lock is cut within the test
                   "SUPPRESSION_LIST_STATEMENT_TIMEOUT_MS": "1500",
                   "SUPPRESSION_LOOKUP_STATEMENT_TIMEOUT_MS": "1000"},
        gateway={"failed_auth_limit": {"limit": 100000, "window": 1}}))
    try:
        stack.start(say=lambda *_: None)
    except Exception:
        stack.stop()
        raise
    yield stack
    stack.stop()
    if not os.environ.get("KEEP_TEST_DIR"):
        shutil.rmtree(root, ignore_errors=True)


def fault_key(stack: Stack) -> str:
    plan = [{"dimension": "key", "limit": 100000, "window": 1}]
    account = int(stack.admin("POST", "/admin/accounts",
                              {"name": f"fault-{os.urandom(4).hex()}", "rate_limits": plan})["id"])
    return str(stack.create_key(account, ["suppression_lists/manage"])["key"])


class Load:
    """Threads sending requests until stopped, counting statuses (0: no answer at all).
    `make(client, i)` sends the i-th request of a thread and returns the response."""

    def __init__(self, make: Callable[[httpx.Client, int], httpx.Response], threads: int = 4,
                 keepalive: bool = True) -> None:
        self.make = make
        self.keepalive = keepalive
        self.statuses: Counter[int] = Counter()
        self.bodies: list[tuple[int, str]] = []
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(threads)]
        self.total = 0

    def run(self, n: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if self.keepalive else 0)
        with httpx.Client(timeout=30, limits=limits) as client:
            i = 0
            while not self.stop_event.is_set():
                i += 1
                try:
                    resp = self.make(client, n * 1_000_000 + i)
                    status, body = resp.status_code, resp.text
                except httpx.HTTPError as err:
                    status, body = 0, repr(err)
                with self.lock:
                    self.statuses[status] += 1
                    self.total += 1
                    if status >= 500 or status == 0:
                        self.bodies.append((status, body[:300]))

    def wait_for(self, n: int) -> None:
        """Poll until at least n more requests have completed."""
        import time

        target = self.total + n
        deadline = time.monotonic() + 60
        while self.total < target:
            assert time.monotonic() < deadline, "the load stalled"
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join()


def report(name: str, load: Load) -> None:
    line = f"{name}: {dict(sorted(load.statuses.items()))}"
    print(line)
    out = Path(os.environ.get("FAULT_REPORT", Path(__file__).resolve().parents[2]
                              / "test-artifacts" / "fault-report.txt"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(line + "\n")
