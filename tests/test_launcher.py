"""`make run`'s launcher, run as users run it: a subprocess, stopped by a signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.launcher import gateway_from_env
from gateway.stack import PORTS, Stack, StackSettings, read_or_make_secret
from portcullis.procs import StartError, free_port

ROOT = Path(__file__).resolve().parent.parent


def launcher_env(pg_dsn: str, ports: dict[str, int]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["DATABASE_URL"] = pg_dsn
    for name, (var, _) in PORTS.items():
        env[var] = str(ports[name])
    return env


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return {int(p) for p in out.split()}


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 90) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"never printed {needle!r}:\n{''.join(seen)}")


def test_launcher_starts_everything_serves_the_demo_key_and_stops_on_sigint(
        tmp_path: Path, fresh_dsn: str) -> None:
    ports = {name: free_port() for name in PORTS}
    var = tmp_path / "var"
    proc = subprocess.Popen([sys.executable, "-m", "gateway.launcher", "run", "--var",
                             str(var)], cwd=ROOT, env=launcher_env(fresh_dsn, ports),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = wait_for_line(proc, "Ctrl-C stops everything")
        key = (var / "demo-api-key").read_text().strip()
        assert key in out
        assert (var / "admin-token").read_text().strip()
        started = children_of(proc.pid)
        assert len(started) >= 6  # auth, lookup, list, worker, control, nginx
        base = f"http://127.0.0.1:{ports['gateway']}/api/v1/suppression-list/jane@example.com"
        put = httpx.put(base, headers={"Authorization": key},
                        json={"type": "non_transactional", "description": "demo"})
        assert put.status_code == 200, put.text
        got = httpx.get(base, headers={"Authorization": key})
        assert got.json()["results"][0]["description"] == "demo"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        for pid in started:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_start_reuses_the_demo_key(tmp_path: Path, fresh_dsn: str) -> None:
    keys = []
    for _ in range(2):
        ports = {name: free_port() for name in PORTS}
        proc = subprocess.Popen([sys.executable, "-m", "gateway.launcher", "run", "--var",
                                 str(tmp_path)], cwd=ROOT,
                                env=launcher_env(fresh_dsn, ports),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_line(proc, "Ctrl-C stops everything")
            keys.append((tmp_path / "demo-api-key").read_text())
            proc.terminate()
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert keys[0] == keys[1]


def test_a_taken_port_is_a_clear_error(tmp_path: Path, fresh_dsn: str) -> None:
    ports = {name: free_port() for name in PORTS}
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports["gateway"]))
        s.listen()
        stack = Stack(StackSettings(var=tmp_path, ports=ports, database_url=fresh_dsn))
        with pytest.raises(StartError, match=f"port already in use: gateway :{ports['gateway']}"):
            stack.start(say=lambda *_: None)
    assert not stack.procs


def test_a_part_that_fails_is_named_with_its_log_and_the_rest_is_stopped(
        tmp_path: Path, fresh_dsn: str) -> None:
    ports = {name: free_port() for name in PORTS}
    env = launcher_env(fresh_dsn, ports)
    env["PORTCULLIS_CONTROL_PORT"] = "70000"
    proc = subprocess.run([sys.executable, "-m", "gateway.launcher", "run", "--var",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1
    assert "PORTCULLIS_CONTROL_PORT='70000' is not a port number" in proc.stdout + proc.stderr


def test_a_crashing_service_is_reported_with_the_end_of_its_log(
        tmp_path: Path, fresh_dsn: str) -> None:
    ports = {name: free_port() for name in PORTS}
    bad_dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    stack = Stack(StackSettings(var=tmp_path, ports=ports, database_url=fresh_dsn))
    stack.dsn = fresh_dsn
    stack.s.extra_env = {"DATABASE_URL": bad_dsn}
    try:
        with pytest.raises(StartError) as err:
            stack.start(say=lambda *_: None)
        assert "auth" in str(err.value)
        assert "end of" in str(err.value)
    finally:
        stack.stop()
    assert all(not p.alive() for p in stack.procs.values())


@pytest.mark.parametrize(("value", "expected"), [(None, {}), ("2.5", {"dns_refresh": 2.5})])
def test_the_dns_refresh_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                    value: str | None,
                                                    expected: dict[str, float]) -> None:
    monkeypatch.delenv("PORTCULLIS_DNS_REFRESH", raising=False)
    if value is not None:
        monkeypatch.setenv("PORTCULLIS_DNS_REFRESH", value)
    assert gateway_from_env() == expected


@pytest.mark.parametrize("value", ["0", "soon", "-1", "7200", "nan"])
def test_a_bad_dns_refresh_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PORTCULLIS_DNS_REFRESH", value)
    with pytest.raises(StartError, match=r"PORTCULLIS_DNS_REFRESH=.* is not a number of seconds"):
        gateway_from_env()


def test_made_secrets_are_kept_and_never_read_as_a_command_line_option(tmp_path: Path) -> None:
    # 200 fresh secrets: with URL-safe base64 (one in 64 starts with "-") at least one would
    # start with "-" 96% of the time; such a secret broke every tool given it as an argument.
    made = [read_or_make_secret(tmp_path / f"s{i}") for i in range(200)]
    assert not [s for s in made if s.startswith("-")]
    assert all(len(bytes.fromhex(s)) == 32 for s in made)  # 256 bits each
    assert len(set(made)) == 200
    assert read_or_make_secret(tmp_path / "s0") == made[0]  # kept, not remade
    assert (tmp_path / "s0").stat().st_mode & 0o777 == 0o600
