"""A locust smoke run against the real stack: every kind of traffic in the mix, no
unexpected error (the run's own exit code and its CSV stats both say so)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.stack import Stack
from loadtest.verdict import judge, rate_limited

ROOT = Path(__file__).resolve().parent.parent
BASE = "/api/v1/suppression-list"
EXPECTED = [
    f"GET {BASE}/{{recipient}}", f"POST {BASE}/lookup",              # the sending pipeline
    f"GET {BASE}?domain", f"GET {BASE}?cursor", f"PUT {BASE}/{{recipient}}",
    f"GET {BASE}/{{recipient}} (edited)", f"DELETE {BASE}/{{recipient}}",  # API users
    f"POST {BASE}/imports", f"GET {BASE}/imports/{{id}}", f"GET {BASE}/export",  # lists
]


def locust(stack: Stack, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LOCUST_ADMIN_TOKEN=stack.admin_token)
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"),
            "--headless", "--host", stack.gateway_url, "--admin-url", stack.url("auth"),
            "--csv", str(out / "smoke"), "--html", str(out / "smoke.html"), "--only-summary",
            "--accounts", "2", "--seed", "2000", "--import-rows", "300", *extra]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_locust_smoke_run_sends_every_kind_of_request_without_an_error(
        stack: Stack, tmp_path: Path) -> None:
    run = locust(stack, tmp_path, "-u", "20", "-r", "10", "-t", "20s")
    assert run.returncode == 0, run.stderr[-3000:]
    with open(tmp_path / "smoke_stats.csv") as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    for name in EXPECTED:
        assert name in stats, f"no {name} in the run: {sorted(stats)}"
        assert int(stats[name]["Request Count"]) > 0, name
        assert int(stats[name]["Failure Count"]) == 0, stats[name]
    total = stats["Aggregated"]
    assert int(total["Failure Count"]) == 0
    sending = (int(stats[EXPECTED[0]]["Request Count"])
               + int(stats[EXPECTED[1]]["Request Count"]))
    assert sending > int(total["Request Count"]) * 0.75, "the sending pipeline is the bulk"
    assert (tmp_path / "smoke.html").stat().st_size > 0
    with open(tmp_path / "smoke_ratelimited.csv") as f:
        limited = list(csv.DictReader(f))
    assert limited == [], "the load-test plan is far above what a smoke run sends"


def test_locust_run_fails_when_the_p99_is_above_the_limit(stack: Stack,
                                                          tmp_path: Path) -> None:
    # Long enough for requests to complete after the tenants are made on a busy machine (a
    # run that completes none fails for that reason instead).
    run = locust(stack, tmp_path, "-u", "2", "-r", "2", "-t", "6s", "--tags", "sending",
                 "--max-p99-ms", "0.001")
    assert run.returncode == 1, run.stderr[-3000:]
    assert "above --max-p99-ms" in run.stderr


def test_locust_run_stops_with_exit_code_2_when_the_admin_token_is_wrong(
        stack: Stack, tmp_path: Path) -> None:
    env_token = stack.admin_token
    try:
        stack.admin_token = "not-the-token"
        run = locust(stack, tmp_path, "-u", "1", "-r", "1", "-t", "2s")
    finally:
        stack.admin_token = env_token
    assert run.returncode == 2, run.stderr[-3000:]
    assert "set-up failed" in run.stderr


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.text = "{}"
        self.error = None
        self.outcome: str | None = None

    def success(self) -> None:
        self.outcome = "success"

    def failure(self, why: str) -> None:
        self.outcome = f"failure {why}"


@pytest.mark.parametrize(("status", "expected", "outcome", "limited"), [
    (200, (200, 404), "success", 0),
    (404, (200, 404), "success", 0),
    (429, (200,), "success", 1),      # counted apart, never a failure
    (500, (200,), "failure 500: {}", 0),
    (401, (200,), "failure 401: {}", 0),
])
def test_judge_counts_429_apart_and_fails_other_unexpected_answers(
        status: int, expected: tuple[int, ...], outcome: str, limited: int) -> None:
    rate_limited.clear()
    resp = FakeResponse(status)
    assert judge(resp, "x", *expected) is (status in expected)
    assert resp.outcome == outcome
    assert rate_limited["x"] == limited


def test_a_run_that_completed_no_request_fails() -> None:
    from types import SimpleNamespace

    from loadtest.verdict import verdict

    env = SimpleNamespace(stats=SimpleNamespace(total=SimpleNamespace(
        num_failures=0, num_requests=0)), parsed_options=SimpleNamespace(max_p99_ms=50))
    code, reasons = verdict(env)
    assert code == 1 and reasons == ["no request completed: nothing was measured"]
