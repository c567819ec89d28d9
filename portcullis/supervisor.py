"""Keep the stack's processes running, the way runit or systemd's `Restart=` would: a process
that ends is logged (how it ended, the end of its log) and started again after a backoff; one
that fails to start `max_failures` times in a row ends supervision with `GaveUp`, so the
launcher stops the stack and says why.

A crash after a good start never counts towards giving up: a worker that dies on one tenant's
upload is restarted for as long as it takes (at most `backoff_cap` apart), and the rest of
the stack keeps serving. Only a process that cannot start at all stops the stack.

Nothing here blocks or sleeps: `Supervisor.poll` looks at every process once and returns, so
one process waiting out its backoff never holds up another's restart, and tests drive it
with a fake clock and fake processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from portcullis.procs import StartError, tail

TAIL_LINES = 5          # of a log, in each restart message
GIVE_UP_TAIL_LINES = 15  # in the message that stops the stack


@dataclass(frozen=True)
class RestartPolicy:
    backoff_start: float = 0.5   # seconds before the first restart
    backoff_cap: float = 30.0    # doubling each restart, up to this
    reset_after: float = 60.0    # up this long: the next restart waits backoff_start again
    max_failures: int = 5        # failed starts in a row, then give up
    start_timeout: float = 60.0  # not ready this long after its start: a failed start
    # A process without a readiness check counts as started once it has stayed up this long
    # (supervisord's startsecs); exiting sooner is a failed start.
    start_seconds: float = 1.0

    def backoff(self, restarts: int) -> float:
        """The wait before the next restart, after `restarts` since the last reset."""
        return min(self.backoff_cap, self.backoff_start * 2.0 ** min(restarts, 64))


class Process(Protocol):
    """What the supervisor needs of a process (portcullis.procs.Proc is one)."""

    name: str
    log: Path

    @property
    def pid(self) -> int | None: ...

    def start(self) -> object:
        """Start it; raise StartError or OSError if that cannot even begin."""
        ...

    def ended(self) -> str | None:
        """None while it runs; once it has ended (and is cleaned up), how, in words."""
        ...

    def stop(self) -> None: ...


@dataclass
class Child:
    process: Process
    # True once the process serves (an HTTP service: its /healthz answers 200). None: it
    # counts as started after RestartPolicy.start_seconds up.
    ready: Callable[[], bool] | None = None

    @property
    def name(self) -> str:
        return self.process.name


class GaveUp(StartError):
    """A process failed to start max_failures times in a row; the message names it and
    carries the end of its log."""


class State(Enum):
    RUNNING = "running"
    BACKOFF = "backoff"    # ended; waiting until `due` to start it again
    STARTING = "starting"  # started at `since`; waiting until it is ready


@dataclass
class Watch:
    child: Child
    state: State
    since: float             # RUNNING: when it became ready; STARTING: when it was started
    due: float = 0.0         # BACKOFF: when to start it again
    streak: int = 0          # restarts since the backoff last reset
    failures: int = 0        # failed starts in a row
    restarts: int = 0        # restarts in all, for the log


class Supervisor:
    """Watches children that are already running (the stack started them)."""

    def __init__(self, children: Iterable[Child], policy: RestartPolicy | None = None,
                 say: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or RestartPolicy()
        self.say = say
        self.clock = clock
        now = clock()
        self.watches = [Watch(child, State.RUNNING, since=now) for child in children]

    def poll(self) -> None:
        """Look at every child once: notice an exit, start one whose backoff is over, check
        one that is starting. Raises GaveUp."""
        for watch in self.watches:
            now = self.clock()
            if watch.state is State.RUNNING:
                self._check_running(watch, now)
            elif watch.state is State.BACKOFF:
                if now >= watch.due:
                    self._start(watch, now)
            else:
                self._check_starting(watch, now)

    def _check_running(self, watch: Watch, now: float) -> None:
        ended = watch.child.process.ended()
        if ended is None:
            return
        up = now - watch.since
        self.say(f"{watch.child.name} exited unexpectedly ({ended}) after {up:.1f}s up; "
                 f"{self._log_end(watch)}")
        if up >= self.policy.reset_after:
            watch.streak = 0
        self._back_off(watch, now)

    def _back_off(self, watch: Watch, now: float) -> None:
        delay = self.policy.backoff(watch.streak)
        watch.streak += 1
        watch.state, watch.due = State.BACKOFF, now + delay
        self.say(f"{watch.child.name} restarting in {delay:g}s")

    def _start(self, watch: Watch, now: float) -> None:
        try:
            watch.child.process.start()
        except (StartError, OSError) as err:
            self._failed(watch, now, f"could not be started: {err}")
            return
        watch.state, watch.since = State.STARTING, now

    def _check_starting(self, watch: Watch, now: float) -> None:
        process = watch.child.process
        ended = process.ended()
        if ended is not None:
            self._failed(watch, now, f"exited during start-up ({ended})")
            return
        ready = watch.child.ready
        if ready() if ready else now - watch.since >= self.policy.start_seconds:
            watch.state, watch.since, watch.failures = State.RUNNING, now, 0
            watch.restarts += 1
            self.say(f"{watch.child.name} restarted (pid {process.pid}, restart "
                     f"{watch.restarts})")
        elif now - watch.since >= self.policy.start_timeout:
            process.stop()
            self._failed(watch, now,
                         f"was not ready {self.policy.start_timeout:g}s after its start")

    def _failed(self, watch: Watch, now: float, reason: str) -> None:
        watch.failures += 1
        name, most = watch.child.name, self.policy.max_failures
        if watch.failures >= most:
            raise GaveUp(f"{name} failed to start {most} times in a row, giving up; last "
                         f"time it {reason}; "
                         f"{self._log_end(watch, GIVE_UP_TAIL_LINES)}")
        self.say(f"{name} failed to start ({watch.failures} of {most} in a row): it {reason}; "
                 f"{self._log_end(watch)}")
        self._back_off(watch, now)

    @staticmethod
    def _log_end(watch: Watch, lines: int = TAIL_LINES) -> str:
        log = watch.child.process.log
        text = tail(log, lines)
        if not text.strip():
            return f"{log} is empty"
        return f"end of {log}:\n" + "\n".join(f"    | {line}" for line in text.splitlines())
