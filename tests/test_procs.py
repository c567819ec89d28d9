"""portcullis/procs.py on real processes: how a child that ended is noticed, said and
cleaned up after."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portcullis.procs import Proc, pid_running


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)  # polling interval


def test_a_killed_leader_is_reaped_and_what_it_left_in_its_group_is_killed(
        tmp_path: Path) -> None:
    # As a SIGKILLed nginx master leaves its workers holding the ports.
    pidfile = tmp_path / "left.pid"
    proc = Proc("leader", ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"],
                tmp_path / "leader.log").start()
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
        left = int(pidfile.read_text())
        assert proc.ended() is None
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: proc.ended() is not None)
        assert proc.ended() == "killed by SIGKILL"
        assert not proc.alive()
        wait_for(lambda: not pid_running(left))
    finally:
        proc.stop()


@pytest.mark.parametrize(("code", "said"), [("0", "status 0"), ("7", "status 7")])
def test_a_child_that_exits_says_its_status(tmp_path: Path, code: str, said: str) -> None:
    proc = Proc("exits", [sys.executable, "-c", f"raise SystemExit({code})"],
                tmp_path / "exits.log").start()
    wait_for(lambda: proc.ended() is not None)
    assert proc.ended() == said


def test_an_exited_child_is_not_reaped_by_alive_so_stop_still_clears_its_group(
        tmp_path: Path) -> None:
    pidfile = tmp_path / "left.pid"
    proc = Proc("leader", ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; exit 0"],
                tmp_path / "leader.log").start()
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    left = int(pidfile.read_text())
    wait_for(lambda: not proc.alive())
    assert pid_running(left)
    proc.stop()
    wait_for(lambda: not pid_running(left))
