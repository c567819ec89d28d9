"""A private redis-server on its own port, for the launcher and the tests."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from portcullis.procs import Proc, StartError


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(root: Path, port: int, extra: list[str] | None = None) -> Proc:
    binary = shutil.which("redis-server")
    if not binary:
        raise StartError("redis-server not found")
    root.mkdir(parents=True, exist_ok=True)
    proc = Proc("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(root),
                          "--daemonize", "no", *(extra or [])], root / f"redis-{port}.log")
    proc.start()
    proc.wait_until(lambda: redis_ping(port), 15)
    return proc
