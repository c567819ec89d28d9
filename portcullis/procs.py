"""Start, watch and stop the processes of the stack: one class shared by the launcher
(`make run`) and the test fixtures, so the tests start exactly what users run."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StartError(RuntimeError):
    """A part failed to start; the message names it and carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def pid_running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting to be reaped): for
    processes that are no child of ours, such as a postmaster that pg_ctl daemonised."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def describe_exit(returncode: int) -> str:
    """How a child ended, in words: "status 1", "killed by SIGKILL"."""
    if returncode >= 0:
        return f"status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Proc:
    """One child process with its own log file and process group."""

    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        try:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                cwd=self.cwd, start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        return self

    def alive(self) -> bool:
        """Started and not exited. An exited leader is left unreaped, so that `stop` or
        `ended` can still clear out what it left in its process group."""
        return (self.popen is not None and self.popen.returncode is None
                and not self._has_exited())

    def ended(self) -> str | None:
        """None while it runs (or before it was started). Once the leader has exited: what it
        left behind in its process group is killed (the workers of a killed nginx master would
        keep its ports), the leader is reaped, and how it ended is said in words."""
        popen = self.popen
        if popen is None:
            return None
        if popen.returncode is None:
            if not self._has_exited():
                return None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            popen.wait()
        return describe_exit(popen.returncode)

    def wait_until(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(f"{self.name} exited during start-up ({self.ended()}); "
                                 f"end of {self.log}:\n{tail(self.log)}")
            if ready():
                return
            time.sleep(0.05)
        raise StartError(f"{self.name} did not become ready in {timeout:.0f}s; "
                         f"end of {self.log}:\n{tail(self.log)}")

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        self.wait_until(lambda: http_ok(url), timeout)

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def _has_exited(self) -> bool:
        try:
            res = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return res is not None

    def _exited_unreaped(self, timeout: float) -> bool:
        """Wait for the leader to exit without reaping it: while it is an unreaped zombie its
        pid, and so its process group id, cannot be handed to another process."""
        deadline = time.monotonic() + timeout
        while True:
            if self._has_exited():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        popen = self.popen
        if popen is None or popen.returncode is not None:
            return  # never started, or already reaped: its group id may belong to another
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        if not self._exited_unreaped(timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self._exited_unreaped(5)
        # Whatever the group left behind (workers of a killed master) goes too; the leader
        # is still unreaped, so the group id is still ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        popen.wait(5)
