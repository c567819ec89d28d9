"""Peak memory of every process of a stack: VmHWM (the kernel's high-water mark of the
resident set) from /proc/<pid>/status, sampled over each process tree twice a second, so
children that come and go (uvicorn workers, PostgreSQL backends) are caught too."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
    except OSError:
        return {}
    return out


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return kids


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU used so far by `root` and every process below it, with the
    children that exited and were reaped (their parents' cutime and cstime): pgbench's
    PostgreSQL backends are gone by the time it returns."""
    kids = _children()
    todo, ticks = [root], 0
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, ()))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _kind(pid: int, status: dict[str, str]) -> str:
    """nginx: master or worker; PostgreSQL: postmaster, backend or its helper's title."""
    name = status.get("Name", "?")
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmd = ""
    if cmd.startswith("nginx:"):
        return cmd.split(" process")[0].replace("nginx: ", "nginx ")
    if cmd.startswith("postgres:"):
        title = cmd.split(":", 1)[1].strip()
        # "postgres: postgres portcullis 127.0.0.1(5432) idle" is a client backend
        return "backend" if "127.0.0.1" in title or "[local]" in title else title
    if name == "postgres":
        return "postmaster"
    return name


class PeakMemory(threading.Thread):
    """Sample the trees rooted at `roots()` (role -> pid) until stopped."""

    def __init__(self, roots: Callable[[], dict[str, int]], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.interval = interval
        self.peak: dict[int, tuple[str, str, int]] = {}  # pid -> (role, kind, VmHWM kB)
        self.done = threading.Event()

    def sample(self) -> None:
        kids = _children()
        for role, root in self.roots().items():
            todo = [root]
            while todo:
                pid = todo.pop()
                todo.extend(kids.get(pid, ()))
                status = _status(pid)
                hwm = status.get("VmHWM", "")
                if not hwm:
                    continue
                kb = int(hwm.split()[0])
                old = self.peak.get(pid)
                kind = old[1] if old else _kind(pid, status)
                self.peak[pid] = (role, kind, max(kb, old[2] if old else 0))

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self.done.set()
        self.join()

    def summary(self) -> list[dict[str, Any]]:
        """One row per (role, kind): the largest peak, and how many processes."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for role, kind, kb in self.peak.values():
            row = rows.setdefault((role, kind), {"role": role, "kind": kind,
                                                 "processes": 0, "peak_mb": 0.0})
            row["processes"] += 1
            row["peak_mb"] = max(row["peak_mb"], kb / 1024)
        return sorted(rows.values(), key=lambda r: (r["role"], r["kind"]))
