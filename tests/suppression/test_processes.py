"""The three processes as users start them: python -m services.suppression lookup|list|worker."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portcullis import derive
from portcullis.context import signed_headers
from portcullis.procs import Proc, free_port
from services.suppression.config import AUDIENCE
from tests.suppression.conftest import BASE, KEYS, ROOT_SECRET, new_account

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services(pg_dsn: str, workdir: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ, DATABASE_URL=pg_dsn,
               PORTCULLIS_CONTEXT_KEYS=derive.context_keys_value(ROOT_SECRET, AUDIENCE))
    procs, urls = [], {}
    for role in ("lookup", "list"):
        port = free_port()
        proc = Proc(f"suppression-{role}", [sys.executable, "-m", "services.suppression", role,
                                            "--host", "127.0.0.1", "--port", str(port)],
                    workdir / f"suppression-{role}.log", env=env, cwd=ROOT)
        procs.append(proc.start())
        urls[role] = f"http://127.0.0.1:{port}"
    procs.append(Proc("suppression-worker", [sys.executable, "-m", "services.suppression",
                                             "worker"],
                      workdir / "suppression-worker.log", env=env, cwd=ROOT).start())
    try:
        for proc, role in zip(procs, ("lookup", "list"), strict=False):
            proc.wait_http(f"{urls[role]}/healthz")
        yield urls
    finally:
        for proc in procs:
            proc.stop()


def call(url: str, method: str, path: str, account: int, headers: dict[str, str] | None = None,
         **kw: object) -> httpx.Response:
    sent = signed_headers(KEYS, method, path, account_id=account) | (headers or {})
    return httpx.request(method, url + path, headers=sent, timeout=10, **kw)  # type: ignore[arg-type]


def test_the_list_service_writes_and_the_lookup_service_reads(services: dict[str, str]) -> None:
    account = new_account()
    path = f"{BASE}/jane@example.com"
    resp = call(services["list"], "PUT", path, account, json={"type": "transactional"})
    assert resp.status_code == 200
    resp = call(services["lookup"], "GET", path, account)
    assert resp.status_code == 200
    assert resp.json()["results"][0]["type"] == "transactional"
    resp = call(services["lookup"], "POST", f"{BASE}/lookup", account,
                json={"recipients": ["jane@example.com", "joe@example.com"]})
    assert [r["recipient"] for r in resp.json()["results"]["suppressed"]] == ["jane@example.com"]


def test_the_lookup_service_is_read_only(services: dict[str, str]) -> None:
    account = new_account()
    for method in ("PUT", "DELETE"):
        resp = call(services["lookup"], method, f"{BASE}/jane@example.com", account,
                    json={"type": "transactional"})
        assert resp.status_code == 405
        assert resp.json()["errors"][0]["code"] == "1405"
    resp = call(services["lookup"], "GET", f"{BASE}/summary", account)
    assert resp.status_code == 404


def test_the_worker_process_runs_an_import_to_the_end(services: dict[str, str]) -> None:
    account = new_account()
    body = b"recipient,type\na@example.com,transactional\nnot-an-address,transactional\n"
    resp = call(services["list"], "POST", f"{BASE}/imports", account, content=body,
                headers={"Content-Type": "text/csv"})
    assert resp.status_code == 202
    job_path = f"{BASE}/imports/{resp.json()['results']['id']}"
    deadline = time.monotonic() + 60  # a hang fails the test instead of blocking the suite
    while True:
        job = call(services["list"], "GET", job_path, account).json()["results"]
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling interval; the loop ends on the job's state
    assert job["state"] == "done"
    assert (job["rows_read"], job["rows_written"], job["rows_rejected"]) == (2, 1, 1)
    resp = call(services["lookup"], "GET", f"{BASE}/a@example.com", account)
    assert resp.status_code == 200
