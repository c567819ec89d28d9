"""A project-local PostgreSQL cluster from the system's binaries.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the `postgres`
system user and every command runs as that user; otherwise as ourselves.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import asyncpg

from portcullis.procs import StartError, pid_running, tail


def pg_bindir() -> Path:
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise StartError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)")
    return Path(found[-1]).parent


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _chown_for_postgres(path: Path) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam("postgres")
    os.chown(path, pw.pw_uid, pw.pw_gid)
    # postgres must be able to reach the folder: open up the parents we own.
    for parent in path.parents:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o011)


class Cluster:
    def __init__(self, root: Path, port: int, database: str = "portcullis",
                 durable: bool = True) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = port
        self.database = database
        self.durable = durable

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_owner(argv), capture_output=True, text=True, check=False,
                              cwd="/")

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _chown_for_postgres(self.root)
        res = self._run([str(pg_bindir() / "initdb"), "-D", str(self.data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        if res.returncode != 0:
            raise StartError(f"initdb failed:\n{res.stdout}\n{res.stderr}")

    def init_standby_of(self, primary: Cluster) -> None:
        """Make this cluster a streaming replica (hot standby) of a running `primary`: a base
        backup over the replication protocol, written with its standby.signal and
        primary_conninfo, so that `start` brings it up read-only, following the primary."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _chown_for_postgres(self.root)
        res = self._run([str(pg_bindir() / "pg_basebackup"), "-h", "127.0.0.1",
                         "-p", str(primary.port), "-U", "postgres", "-D", str(self.data),
                         "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast",
                         "--no-sync"])
        if res.returncode != 0:
            raise StartError(f"pg_basebackup failed:\n{res.stdout}\n{res.stderr}")

    def start(self, extra: dict[str, str] | None = None) -> None:
        self.init()
        _chown_for_postgres(self.root)  # again: a parent's mode may have changed since
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "max_connections": "200",
            "shared_buffers": "512MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off",
                         "full_page_writes": "off"}
        settings |= extra or {}
        opts = " ".join(f"-c {k}={v}" for k, v in settings.items())
        if not self.log.exists():
            self.log.touch()
            _chown_for_postgres(self.log)
        res = self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                         "-o", opts, "-w", "-t", "60", "start"])
        if res.returncode != 0:
            raise StartError(f"PostgreSQL failed to start:\n{res.stdout}{res.stderr}\n"
                             f"end of {self.log}:\n{tail(self.log)}")
        self._create_database()

    def _create_database(self) -> None:
        import asyncio

        async def create() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                             self.database)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        deadline = time.monotonic() + 30
        while True:
            try:
                asyncio.run(create())
                return
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "fast") -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                   "stop"])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Postmaster:
    """A cluster as one process the launcher's supervisor can watch and start again (a
    portcullis.supervisor.Process). pg_ctl daemonises the postmaster, so it is no child of
    ours: it is watched by the pid in its pid file, and how it ended is not ours to know."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.name = "postgres"
        self.log = cluster.log
        self._pid = cluster.pid()

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> Postmaster:
        try:
            self.cluster.start()  # pg_ctl -w: returns once it accepts connections
        except asyncpg.PostgresError as err:
            raise StartError(f"PostgreSQL started but refused its database: {err}") from err
        self._pid = self.cluster.pid()
        return self

    def ended(self) -> str | None:
        if self._pid is not None and pid_running(self._pid):
            return None
        return "gone; not a child of the launcher, so its log says why"

    def stop(self) -> None:
        self.cluster.stop()
