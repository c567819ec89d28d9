"""The whole stack as one object: PostgreSQL, migrations, the services, the control plane,
the routes and the nginx gateway, started in order and stopped in reverse.

`make run` (gateway/launcher.py) and the test fixtures (tests/stackfix.py) both use it, so
the tests start exactly what users run, on other ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from gateway.render import GatewaySettings, detect, write_config
from portcullis import derive
from portcullis.context import ContextKeys
from portcullis.migrate import migrate_all
from portcullis.pgcluster import Cluster, Postmaster
from portcullis.procs import Proc, StartError, http_ok, port_in_use
from portcullis.redisserver import redis_ping, start_redis
from portcullis.supervisor import Child

ROOT = Path(__file__).resolve().parent.parent
ROUTE_FILES = (ROOT / "routes" / "suppression.yaml", ROOT / "routes" / "auth.yaml")
# The audience (route `service`) each process verifies contexts for.
AUDIENCES = {"auth": "auth", "lookup": "suppression", "list": "suppression"}

# name -> (environment variable, default)
PORTS: dict[str, tuple[str, int]] = {
    "gateway": ("PORTCULLIS_GATEWAY_PORT", 8080),
    "metrics": ("PORTCULLIS_METRICS_PORT", 9145),
    "control": ("PORTCULLIS_CONTROL_PORT", 8001),
    "auth": ("PORTCULLIS_AUTH_PORT", 8100),
    "lookup": ("PORTCULLIS_LOOKUP_PORT", 8200),
    "list": ("PORTCULLIS_LIST_PORT", 8210),
    "postgres": ("PORTCULLIS_PG_PORT", 55432),
    "redis": ("PORTCULLIS_REDIS_PORT", 56379),
}


def ports_from_env() -> dict[str, int]:
    out = {}
    for name, (var, default) in PORTS.items():
        value = os.environ.get(var, str(default))
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise StartError(f"{var}={value!r} is not a port number")
        out[name] = int(value)
    return out


def read_or_make_secret(path: Path) -> str:
    """The secret kept in `path`, made on first use: 256 random bits as hex digits. Not
    URL-safe base64: a value starting with "-" (one in 64 of those) reads as an option to
    every command-line tool it is handed to, and a CI run failed on exactly that."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    os.chmod(path, 0o600)
    return value


@dataclass
class StackSettings:
    var: Path
    ports: dict[str, int]
    database_url: str | None = None  # None: a local cluster under var/pg
    # The lookup service only reads: it may use a streaming replica of database_url instead.
    lookup_database_url: str | None = None
    redis_url: str | None = None     # None: no Redis, unless start_redis
    redis_cluster: list[str] | None = None  # Redis Cluster seeds for the gateway's limits
    start_redis: bool = False
    durable_pg: bool = True
    gateway_workers: int | str = "auto"
    admin_token: str | None = None
    signing_secret: str | None = None
    auth_stale_ttl: int = 60
    extra_env: dict[str, str] = field(default_factory=dict)
    gateway: dict[str, Any] = field(default_factory=dict)  # GatewaySettings overrides
    # TLS on the public server, on tls_port, when a certificate and its key are given.
    tls_port: int = 8443
    tls_cert: str | None = None
    tls_key: str | None = None


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.var = settings.var
        self.logs = self.var / "logs"
        self.procs: dict[str, Proc] = {}
        self.cluster: Cluster | None = None
        self.redis: Proc | None = None
        self.dsn = settings.database_url or ""
        self.redis_url = settings.redis_url
        self.admin_token = settings.admin_token or read_or_make_secret(self.var / "admin-token")
        self.signing_secret = settings.signing_secret or read_or_make_secret(
            self.var / "signing-secret")
        self.flavor = detect()

    # -- addresses -------------------------------------------------------------------
    def port(self, name: str) -> int:
        return self.s.ports[name]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    @property
    def gateway_prefix(self) -> Path:
        return self.var / "gateway"

    @property
    def gateway_token(self) -> str:
        """What the gateway shows the auth service's internal API (and tools that ask it
        as the gateway would)."""
        return derive.gateway_token(derive.roots(self.signing_secret)[0])

    def context_keys(self, audience: str) -> ContextKeys:
        """What a service behind routes of `audience` verifies with (tests sign with it)."""
        return ContextKeys.for_roots(self.signing_secret, audience)

    def env(self, service: str | None = None) -> dict[str, str]:
        """The environment of the stack's processes; `service` names the one it is for.
        The root secret is the gateway's alone: each service gets the key of its own
        audience, the auth service also the gateway's token."""
        env = dict(os.environ)
        env.pop("PORTCULLIS_SIGNING_SECRET", None)
        env.pop("PORTCULLIS_CONTEXT_KEYS", None)
        if service in AUDIENCES:
            env["PORTCULLIS_CONTEXT_KEYS"] = derive.context_keys_value(self.signing_secret,
                                                                       AUDIENCES[service])
        if service == "auth":
            env["PORTCULLIS_GATEWAY_TOKEN"] = derive.gateway_tokens_value(self.signing_secret)
        env.update({
            "DATABASE_URL": (self.s.lookup_database_url
                             if service == "lookup" and self.s.lookup_database_url
                             else self.dsn),
            "PORTCULLIS_ADMIN_TOKEN": self.admin_token,
            "AUTHSVC_ADDR": f"127.0.0.1:{self.port('auth')}",
            "SUPPRESSION_LOOKUP_ADDR": f"127.0.0.1:{self.port('lookup')}",
            "SUPPRESSION_LIST_ADDR": f"127.0.0.1:{self.port('list')}",
            "PYTHONUNBUFFERED": "1",
        })
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        else:
            env.pop("REDIS_URL", None)
        env.update(self.s.extra_env)
        return env

    # -- start -----------------------------------------------------------------------
    def check_ports(self) -> None:
        wanted = dict(self.s.ports)
        if self.s.database_url:
            wanted.pop("postgres")
        if not self.s.start_redis:
            wanted.pop("redis")
        if self.s.tls_cert:
            wanted["tls"] = self.s.tls_port
        taken = [f"{name} :{port}" for name, port in wanted.items() if port_in_use(port)]
        if taken:
            raise StartError("port already in use: " + ", ".join(taken)
                             + " (set PORTCULLIS_<NAME>_PORT to move it, see README)")

    def start(self, say: Any = print) -> None:
        self.check_ports()
        self.var.mkdir(parents=True, exist_ok=True)
        if not self.dsn:
            say(f"postgres   starting a local cluster in {self.var / 'pg'}")
            self.cluster = Cluster(self.var / "pg", self.port("postgres"),
                                   durable=self.s.durable_pg)
            self.cluster.start()
            self.dsn = self.cluster.dsn
        if self.s.start_redis and not self.redis_url:
            self.redis = start_redis(self.var / "redis", self.port("redis"))
            self.redis_url = f"redis://127.0.0.1:{self.port('redis')}/0"
        applied = asyncio.run(migrate_all(self.dsn))
        say(f"migrations {len(applied)} applied" if applied else "migrations up to date")
        self.start_python("auth", ["-m", "authsvc", "--host", "127.0.0.1",
                                   "--port", str(self.port("auth"))])
        self.start_python("lookup", ["-m", "services.suppression", "lookup", "--host",
                                     "127.0.0.1", "--port", str(self.port("lookup"))])
        self.start_python("list", ["-m", "services.suppression", "list", "--host",
                                   "127.0.0.1", "--port", str(self.port("list"))])
        self.start_python("worker", ["-m", "services.suppression", "worker"], health=False)
        self.start_python("control", ["-m", "gateway.control", "--host", "127.0.0.1",
                                      "--port", str(self.port("control"))])
        self.apply_routes()
        self.start_gateway()

    def start_python(self, name: str, args: list[str], health: bool = True) -> Proc:
        proc = Proc(name, [sys.executable, *args], self.logs / f"{name}.log",
                    env=self.env(name), cwd=ROOT)
        self.procs[name] = proc.start()
        if health:
            proc.wait_http(f"{self.url(name)}/healthz", timeout=60)
        else:
            proc.wait_until(lambda: True)
        return proc

    def restart(self, name: str) -> Proc:
        """Stop and start one Python service again (fault tests)."""
        proc = self.procs[name]
        proc.stop()
        proc.start()
        if url := self.health_url(name):
            proc.wait_http(url, timeout=60)
        return proc

    def health_url(self, name: str) -> str | None:
        """Where a process of the stack answers 200 once it serves; None for the worker."""
        if name == "gateway":
            return f"{self.url('metrics')}/healthz"
        if name == "worker":
            return None
        return f"{self.url(name)}/healthz"

    def children(self) -> list[Child]:
        """What the launcher supervises, in start order, each with its readiness check:
        PostgreSQL and Redis when this stack started them, then every process."""
        children = []
        if self.cluster:
            children.append(Child(Postmaster(self.cluster), ready=lambda: True))
        if self.redis:
            port = self.port("redis")
            children.append(Child(self.redis, ready=lambda: redis_ping(port)))
        for name, proc in self.procs.items():
            url = self.health_url(name)
            children.append(Child(proc, ready=partial(http_ok, url) if url else None))
        return children

    def apply_routes(self, files: tuple[Path, ...] = ROUTE_FILES) -> None:
        for path in files:
            if not path.exists():
                continue
            res = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "apply", "-f", str(path),
                 "--url", self.url("control")],  # the token goes by environment, not argv
                env=self.env(), cwd=ROOT, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise StartError(f"applying {path.name} failed:\n{res.stdout}{res.stderr}")

    def gateway_settings(self) -> GatewaySettings:
        return GatewaySettings(
            prefix=self.gateway_prefix,
            listen=f"127.0.0.1:{self.port('gateway')}",
            metrics_listen=f"127.0.0.1:{self.port('metrics')}",
            control_url=self.url("control"),
            authsvc_addr=f"127.0.0.1:{self.port('auth')}",
            admin_token=self.admin_token,
            signing_secret=self.signing_secret,
            redis_url=self.redis_url,
            redis_cluster=self.s.redis_cluster,
            workers=self.s.gateway_workers,
            auth_stale_ttl=self.s.auth_stale_ttl,
            **{**self.tls_settings(), **self.s.gateway},
        )

    def tls_settings(self) -> dict[str, str]:
        if not (self.s.tls_cert or self.s.tls_key):
            return {}
        return {"tls_listen": f"127.0.0.1:{self.s.tls_port}", "tls_cert": self.s.tls_cert or "",
                "tls_key": self.s.tls_key or ""}

    def start_gateway(self) -> Proc:
        conf = write_config(self.gateway_settings(), self.flavor)
        test = subprocess.run([self.flavor.binary, "-t", "-q", "-p", str(self.gateway_prefix),
                               "-c", str(conf)], capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise StartError(f"nginx refused its configuration:\n{test.stderr}")
        proc = Proc("gateway", [self.flavor.binary, "-p", str(self.gateway_prefix), "-c",
                                str(conf)], self.logs / "gateway.log", env=self.env())
        self.procs["gateway"] = proc.start()
        proc.wait_http(f"{self.url('metrics')}/healthz", timeout=30)
        return proc

    def start_extra_gateway(self, name: str, redis_url: str | None,
                            argv_prefix: tuple[str, ...] = (),
                            **overrides: Any) -> tuple[Proc, int, int]:
        """Another gateway node on its own ports, sharing the control plane, the auth
        service and (when given) Redis: for scale-out and failure tests. `argv_prefix` runs
        nginx under another command (which must exec it)."""
        from portcullis.procs import free_port

        port, metrics_port = free_port(), free_port()
        settings = self.gateway_settings()
        settings.prefix = self.var / f"gateway-{name}"
        settings.listen = f"127.0.0.1:{port}"
        settings.metrics_listen = f"127.0.0.1:{metrics_port}"
        settings.redis_url = redis_url
        for key, value in overrides.items():
            setattr(settings, key, value)
        conf = write_config(settings, self.flavor)
        proc = Proc(f"gateway-{name}", [*argv_prefix, self.flavor.binary, "-p",
                                        str(settings.prefix), "-c", str(conf)],
                    self.logs / f"gateway-{name}.log")
        proc.start()
        proc.wait_http(f"http://127.0.0.1:{metrics_port}/healthz", timeout=30)
        return proc, port, metrics_port

    def reload_gateway(self) -> None:
        write_config(self.gateway_settings(), self.flavor)
        self.procs["gateway"].signal(1)  # SIGHUP

    # -- accounts (through the auth service's admin API) --------------------------------
    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(
            self.url("auth") + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.admin_token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw)["results"] if raw else None

    def create_account(self, name: str, rate_limits: list[dict[str, Any]] | None = None) -> int:
        body: dict[str, Any] = {"name": name}
        if rate_limits is not None:
            body["rate_limits"] = rate_limits
        return int(self.admin("POST", "/admin/accounts", body)["id"])

    def create_subaccount(self, account_id: int, name: str) -> int:
        res = self.admin("POST", f"/admin/accounts/{account_id}/subaccounts", {"name": name})
        return int(res["id"])

    def create_key(self, account_id: int, grants: list[str], subaccount_id: int | None = None,
                   label: str = "key", **extra: Any) -> dict[str, Any]:
        body = {"account_id": account_id, "subaccount_id": subaccount_id, "label": label,
                "grants": grants, **extra}
        result: dict[str, Any] = self.admin("POST", "/admin/keys", body)
        return result

    # -- stop ------------------------------------------------------------------------
    def stop(self) -> None:
        for name in ("gateway", "control", "worker", "list", "lookup", "auth"):
            proc = self.procs.pop(name, None)
            if proc:
                proc.stop()
        for proc in self.procs.values():
            proc.stop()
        self.procs.clear()
        if self.redis:
            self.redis.stop()
        if self.cluster:
            self.cluster.stop()
