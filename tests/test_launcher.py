"""`make run`'s launcher, run as users run it: a subprocess, stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway.launcher import gateway_from_env
from gateway.stack import PORTS, Stack, StackSettings, read_or_make_secret
from portcullis.procs import StartError, free_port

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


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


def eventually(check: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    """Poll `check` until it returns something; the timeout only stops a hang."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling interval


class Launched:
    """`python -m gateway.launcher run` as users run it, with its output read as it comes, so
    a test can wait for a line without blocking on a launcher that prints nothing more."""

    def __init__(self, var: Path, env: dict[str, str]) -> None:
        self.var = var
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.launcher", "run",
                                      "--var", str(var)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self, since: int = 0) -> str:
        return "".join(self.lines[since:])

    def wait_for(self, needle: str, since: int = 0, timeout: float = 120) -> str:
        """The output from line `since` on, once it holds `needle`."""
        def printed() -> str | None:
            out = self.output(since)
            if needle in out:
                return out
            if self.proc.poll() is not None:
                self.reader.join(10)
                out = self.output(since)
                if needle in out:
                    return out
                raise AssertionError(f"the launcher exited ({self.proc.returncode}) without "
                                     f"printing {needle!r}:\n{out}")
            return None

        return eventually(printed, f"{needle!r} in:\n{self.output(since)}", timeout)

    def children(self) -> dict[str, int]:
        """The launcher's children by stack name (the nginx master for the gateway)."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True, check=False).stdout
        found = {}
        for line in out.splitlines():
            pid, args = line.strip().split(None, 1)
            for name, marker in CHILD_ARGS.items():
                if marker in args:
                    found[name] = int(pid)
        return found

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)


# How each child of the launcher shows in `ps`.
CHILD_ARGS = {"auth": "-m authsvc", "lookup": "services.suppression lookup",
              "list": "services.suppression list", "worker": "services.suppression worker",
              "control": "-m gateway.control", "gateway": "nginx: master process"}


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


# -- supervision: a child that dies is restarted, the stack keeps serving -------------------


class Demo:
    """The demo key's view of the stack, through the gateway."""

    def __init__(self, launched: Launched, gateway_port: int) -> None:
        self.key = (launched.var / "demo-api-key").read_text().strip()
        self.base = f"http://127.0.0.1:{gateway_port}/api/v1/suppression-list"

    def call(self, method: str, path: str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, timeout=10,
                             headers={"Authorization": self.key, **(headers or {})}, **kwargs)

    def reads(self, recipient: str, description: str) -> bool | None:
        """True once the gateway serves `recipient`'s entry (None until then)."""
        try:
            got = self.call("GET", f"/{recipient}")
        except httpx.TransportError:
            return None  # the gateway itself is restarting
        if got.status_code != 200:
            return None
        assert got.json()["results"][0]["description"] == description
        return True

    def imports(self, recipient: str) -> bool | None:
        """An import through the gateway, run by a worker to the end."""
        body = f"recipient,type,description\n{recipient},transactional,imported\n"
        resp = self.call("POST", "/imports", content=body.encode(),
                         headers={"Content-Type": "text/csv"})
        assert resp.status_code == 202, resp.text
        job = f"/imports/{resp.json()['results']['id']}"

        def finished() -> str | None:
            state = str(self.call("GET", job).json()["results"]["state"])
            return state if state in ("done", "failed") else None

        assert eventually(finished, f"import {job}") == "done"
        return self.reads(recipient, "imported")


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory,
               module_dsn: str) -> Iterator[tuple[Launched, Demo]]:
    ports = {name: free_port() for name in PORTS}
    launched = Launched(tmp_path_factory.mktemp("supervised") / "var",
                        launcher_env(module_dsn, ports))
    try:
        launched.wait_for("Ctrl-C stops everything")
        demo = Demo(launched, ports["gateway"])
        put = demo.call("PUT", "/kept@example.com",
                        json={"type": "non_transactional", "description": "kept"})
        assert put.status_code == 200, put.text
        yield launched, demo
    finally:
        launched.close()
    assert launched.proc.returncode == 0, launched.output()


@pytest.mark.parametrize("name", ["worker", "lookup", "auth", "gateway"])
def test_a_child_killed_with_sigkill_is_restarted_and_the_stack_serves_again(
        supervised: tuple[Launched, Demo], name: str) -> None:
    launched, demo = supervised
    before = launched.children()[name]
    mark = len(launched.lines)
    os.kill(before, signal.SIGKILL)
    out = launched.wait_for(f"{name} restarted (pid ", since=mark)
    assert f"{name} exited unexpectedly (killed by SIGKILL)" in out
    assert f"{name} restarting in 0.5s" in out
    found = re.search(rf"{name} restarted \(pid (\d+)", out)
    assert found
    after = int(found.group(1))
    assert after != before
    assert launched.children()[name] == after
    if name == "worker":
        assert demo.imports(f"after-{name}@example.com")
    else:
        assert eventually(lambda: demo.reads("kept@example.com", "kept"),
                          f"the gateway to serve again after {name} restarted")
    assert launched.proc.poll() is None
    assert "FAILED" not in launched.output(mark)


def test_a_child_that_can_never_start_again_stops_the_launcher_after_five_tries(
        tmp_path: Path, fresh_dsn: str) -> None:
    # The gateway's rendered nginx.conf broken on disk: every restart of nginx reads it and
    # exits at once.
    ports = {name: free_port() for name in PORTS}
    launched = Launched(tmp_path / "var", launcher_env(fresh_dsn, ports))
    try:
        launched.wait_for("Ctrl-C stops everything")
        children = launched.children()
        conf = tmp_path / "var" / "gateway" / "nginx.conf"
        conf.write_text("not_a_directive on;\n" + conf.read_text())
        os.kill(children["gateway"], signal.SIGKILL)
        assert launched.proc.wait(300) == 1
        launched.reader.join(10)
        out = launched.output()
        for attempt in range(1, 5):
            assert f"gateway failed to start ({attempt} of 5 in a row): it exited during " \
                   "start-up (status 1)" in out
        assert "FAILED: gateway failed to start 5 times in a row, giving up; last time it " \
               "exited during start-up (status 1); end of " in out
        assert 'unknown directive "not_a_directive"' in out.split("FAILED:")[1]
        assert "stopped." in out
        for pid in children.values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        launched.close()


def test_postgres_started_by_the_launcher_is_restarted_when_killed(tmp_path: Path) -> None:
    ports = {name: free_port() for name in PORTS}
    env = launcher_env("", ports)
    env.pop("DATABASE_URL")
    var = tmp_path / "var"
    launched = Launched(var, env)
    try:
        launched.wait_for("Ctrl-C stops everything", timeout=300)
        demo = Demo(launched, ports["gateway"])
        put = demo.call("PUT", "/durable@example.com",
                        json={"type": "non_transactional", "description": "durable"})
        assert put.status_code == 200, put.text
        pidfile = var / "pg" / "data" / "postmaster.pid"
        before = int(pidfile.read_text().split()[0])
        mark = len(launched.lines)
        os.kill(before, signal.SIGKILL)
        out = launched.wait_for("postgres restarted (pid ", since=mark)
        assert "postgres exited unexpectedly (gone; " in out
        found = re.search(r"postgres restarted \(pid (\d+)", out)
        assert found and int(found.group(1)) != before
        assert int(pidfile.read_text().split()[0]) == int(found.group(1))
        assert eventually(lambda: demo.reads("durable@example.com", "durable"),
                          "the stack to serve again after PostgreSQL restarted")
        assert launched.proc.poll() is None
    finally:
        launched.close()
    assert launched.proc.returncode == 0, launched.output()
