"""The restart policy (portcullis/supervisor.py) against a fake clock and fake processes: the
supervisor only ever asks a process whether it ended, whether it is ready, and tells it to
start or stop, so a fake that does so on the test's say-so is the whole contract. Proc's side
of it (`ended`) is in tests/test_procs.py, on real processes; the launcher's, with real
SIGKILLs, in tests/test_launcher.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from portcullis.procs import StartError
from portcullis.supervisor import Child, GaveUp, RestartPolicy, Supervisor

POLICY = RestartPolicy(backoff_start=0.5, backoff_cap=30, reset_after=60, max_failures=5,
                       start_timeout=60, start_seconds=1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProcess:
    """Runs from start() until exit(); a start can be made to fail in each of the ways a real
    one does."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.log.write_text(f"{name} line 1\n{name} line 2\n")
        self.pid: int | None = 100
        self.status: str | None = None  # None: running
        self.starts = 0
        self.stops = 0
        self.start_error: Exception | None = None
        self.exit_on_start: str | None = None

    def start(self) -> FakeProcess:
        if self.start_error:
            raise self.start_error
        self.starts += 1
        self.pid = 100 + self.starts
        self.status = self.exit_on_start
        return self

    def ended(self) -> str | None:
        return self.status

    def stop(self) -> None:
        self.stops += 1
        self.status = "status 0"

    def exit(self, status: str = "killed by SIGKILL") -> None:
        self.status = status


class Rig:
    """A supervisor over fake processes, its messages, and a fake clock."""

    def __init__(self, tmp_path: Path, names: tuple[str, ...] = ("auth",),
                 policy: RestartPolicy = POLICY) -> None:
        self.clock = Clock()
        self.said: list[str] = []
        self.procs = {name: FakeProcess(name, tmp_path / f"{name}.log") for name in names}
        self.healthy = {name: True for name in names}
        self.children = [Child(p, ready=lambda n=n: self.healthy[n])
                         for n, p in self.procs.items()]
        self.sup = Supervisor(self.children, policy, say=self.said.append, clock=self.clock)

    def at(self, seconds: float) -> None:
        """Move the clock `seconds` on and poll."""
        self.clock.now += seconds
        self.sup.poll()

    def crash_and_restart(self, name: str) -> float:
        """Crash `name`, poll it through its restart; return the backoff it said it waits."""
        self.procs[name].exit()
        self.at(0)
        said = self.said[-1]
        assert said.startswith(f"{name} restarting in "), said
        delay = float(said.removeprefix(f"{name} restarting in ").removesuffix("s"))
        self.at(delay)  # started
        self.at(0)      # ready
        assert self.said[-1].startswith(f"{name} restarted (pid "), self.said[-1]
        return delay


def test_a_process_that_exits_is_logged_with_its_status_and_log_end_and_restarted(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path, ("auth", "worker"))
    rig.at(10)
    assert rig.said == []
    rig.procs["worker"].exit("status 3")
    rig.at(5)
    assert rig.said[0].startswith("worker exited unexpectedly (status 3) after 15.0s up; "
                                  f"end of {tmp_path / 'worker.log'}:\n")
    assert "    | worker line 2" in rig.said[0]
    assert rig.said[1] == "worker restarting in 0.5s"
    rig.at(0.4)
    assert rig.procs["worker"].starts == 0  # the backoff is not over
    rig.at(0.1)
    assert rig.procs["worker"].starts == 1
    rig.at(0)
    assert rig.said[-1] == "worker restarted (pid 101, restart 1)"
    assert rig.procs["auth"].starts == 0


def test_an_http_service_counts_as_restarted_only_once_it_is_healthy(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.procs["auth"].exit()
    rig.healthy["auth"] = False
    rig.at(0)
    rig.at(0.5)
    rig.at(30)
    assert not any("restarted" in line for line in rig.said)
    rig.healthy["auth"] = True
    rig.at(0.1)
    assert rig.said[-1] == "auth restarted (pid 101, restart 1)"


def test_a_process_that_keeps_crashing_after_good_starts_is_restarted_forever_backing_off(
        tmp_path: Path) -> None:
    # The poison-pill upload: the worker starts fine, then dies on the job, again and again.
    # That never stops the stack; restarts only come further apart, up to the cap.
    rig = Rig(tmp_path)
    delays = [rig.crash_and_restart("auth") for _ in range(12)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30]
    assert rig.procs["auth"].starts == 12
    assert rig.said[-1] == "auth restarted (pid 112, restart 12)"


def test_the_backoff_starts_again_once_a_process_stayed_up_reset_after_seconds(
        tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    assert [rig.crash_and_restart("auth") for _ in range(4)] == [0.5, 1, 2, 4]
    rig.at(59.5)
    assert rig.crash_and_restart("auth") == 8  # up just short of reset_after
    rig.at(60)
    assert rig.crash_and_restart("auth") == 0.5


def test_one_process_waiting_out_its_backoff_holds_up_no_other(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ("worker", "lookup"))
    for _ in range(7):
        rig.crash_and_restart("worker")
    rig.procs["worker"].exit()
    rig.at(0)
    assert rig.said[-1] == "worker restarting in 30s"
    assert rig.crash_and_restart("lookup") == 0.5
    assert rig.procs["worker"].starts == 7


FAILED_STARTS = [
    # (how the start fails, what the message says)
    ("exits", "it exited during start-up (status 1)"),
    ("raises", "it could not be started: [Errno 2] No such file or directory: 'nginx'"),
    ("never ready", "it was not ready 60s after its start"),
]


@pytest.mark.parametrize(("how", "said"), FAILED_STARTS, ids=[c[0] for c in FAILED_STARTS])
def test_a_process_that_fails_to_start_five_times_in_a_row_stops_supervision_naming_it(
        tmp_path: Path, how: str, said: str) -> None:
    rig = Rig(tmp_path, ("auth", "gateway"))
    gateway = rig.procs["gateway"]
    if how == "exits":
        gateway.exit_on_start = "status 1"
    elif how == "raises":
        gateway.start_error = FileNotFoundError(2, "No such file or directory", "nginx")
    else:
        rig.healthy["gateway"] = False

    def start_and_fail(backoff: float) -> None:
        rig.at(backoff)  # started, or failed at once
        if how != "raises":
            rig.at(60)   # ended, or out of time

    gateway.exit()
    rig.at(0)
    for attempt, backoff in enumerate([0.5, 1, 2, 4], start=1):
        start_and_fail(backoff)
        assert f"gateway failed to start ({attempt} of 5 in a row): {said}; end of " in \
            rig.said[-2]
        if how == "never ready":
            assert gateway.stops == attempt  # not left running
    with pytest.raises(GaveUp) as err:
        start_and_fail(8)
    message = str(err.value)
    assert message.startswith(f"gateway failed to start 5 times in a row, giving up; last time "
                              f"{said}; end of {tmp_path / 'gateway.log'}:\n")
    assert "    | gateway line 2" in message
    assert isinstance(err.value, StartError)  # the launcher stops the stack on it


def test_a_good_start_clears_the_count_of_failed_starts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    auth = rig.procs["auth"]
    for _ in range(3):
        auth.exit_on_start = "status 1"
        auth.exit()
        rig.at(0)
        for delay in (0.5, 1, 2, 4):  # four failed starts
            rig.at(delay)
            rig.at(0)
        auth.exit_on_start = None
        rig.at(8)   # the fifth start is good
        rig.at(0)
        assert rig.said[-1].startswith("auth restarted")
        rig.at(60)  # and the backoff starts again
    assert auth.starts == 15


def test_a_process_without_a_readiness_check_is_started_once_up_start_seconds(
        tmp_path: Path) -> None:
    clock, said = Clock(), []
    worker = FakeProcess("worker", tmp_path / "worker.log")
    sup = Supervisor([Child(worker)], POLICY, say=said.append, clock=clock)
    worker.exit()
    sup.poll()
    clock.now += 0.5
    sup.poll()
    clock.now += 0.9
    sup.poll()
    assert not said[-1].startswith("worker restarted")
    worker.exit("status 1")  # gone before start_seconds: a failed start
    clock.now += 0.1
    sup.poll()
    assert said[-2].startswith("worker failed to start (1 of 5 in a row): it exited during "
                               "start-up (status 1)")
    clock.now += 1
    sup.poll()
    clock.now += 1
    sup.poll()
    assert said[-1] == "worker restarted (pid 102, restart 1)"


def test_processes_that_keep_running_are_left_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ("auth", "lookup", "list"))
    for _ in range(100):
        rig.at(30)
    assert rig.said == []
    assert all(p.starts == 0 for p in rig.procs.values())


def test_the_default_policy_is_the_one_docs_operations_md_describes() -> None:
    assert RestartPolicy() == POLICY
    assert [POLICY.backoff(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert POLICY.backoff(10_000) == 30  # no overflow after days of crashes
