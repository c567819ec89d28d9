"""Render the top-level nginx.conf for the nginx we have: Debian's nginx with
lua-nginx-module, or OpenResty when `openresty` is on PATH. Only the {{placeholders}} differ."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from portcullis import derive

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "nginx.conf"
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


@dataclass(frozen=True)
class Flavor:
    name: str
    binary: str
    load_modules: str
    lua_path: str
    lua_cpath: str
    redis_module: str


def openresty_flavor(lua_dir: str, binary: str = "/usr/local/openresty/bin/openresty") -> Flavor:
    """OpenResty (on PATH, or the official openresty/openresty image): no modules to load,
    cjson and resty.redis built in; `lua_dir` is where lua/ is on the gateway's host."""
    return Flavor("openresty", binary, "", f"{lua_dir}/?.lua;;", ";;", "resty.redis")


def detect() -> Flavor:
    lua_dir = ROOT / "lua"
    if openresty := shutil.which("openresty"):
        return openresty_flavor(str(lua_dir), openresty)
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    modules = Path("/usr/lib/nginx/modules")
    lines = [f"load_module {modules / m};" for m in
             ("ndk_http_module.so", "ngx_http_lua_module.so") if (modules / m).exists()]
    cpaths = sorted(glob.glob("/usr/lib/*/lua/5.1")) or ["/usr/local/lib/lua/5.1"]
    return Flavor(
        "nginx",
        binary,
        "\n".join(lines),
        f"{lua_dir}/?.lua;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;",
        ";".join(f"{p}/?.so" for p in cpaths) + ";;",
        "nginx.redis",
    )


def render(template: str, values: dict[str, str]) -> str:
    missing = sorted({m for m in PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise KeyError(f"nginx.conf placeholders without a value: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@dataclass
class GatewaySettings:
    prefix: Path
    listen: str
    metrics_listen: str
    control_url: str
    authsvc_addr: str
    admin_token: str
    signing_secret: str  # the root secret(s), comma-separated; the first signs
    redis_url: str | None = None
    redis_cluster: list[str] | None = None  # seed nodes "host:port" of a Redis Cluster
    workers: int | str = "auto"
    log_level: str = "info"
    access_log: bool = True
    poll_interval: float = 0.5
    auth_stale_ttl: int = 60
    dns_refresh: float = 5  # seconds between resolutions of route target names
    reuseport: bool = False
    # Per client address: failed authentications, and requests to routes without auth.
    failed_auth_limit: dict[str, int] | None = field(
        default_factory=lambda: {"limit": 120, "window": 60, "burst": 60})
    anonymous_limit: dict[str, int] | None = field(
        default_factory=lambda: {"limit": 100, "window": 1, "burst": 200})
    # A second, TLS listener on the public server ("127.0.0.1:8443"), when all three are set.
    tls_listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def tls_directives(listen: str, cert: str, key: str, reuseport: bool = False) -> str:
    """A TLS listener of a server block (the gateway's, and bench/gateway.py's bare nginx,
    which must be configured exactly alike to compare them)."""
    reuse = " reuseport" if reuseport else ""
    return (f"        listen {listen} ssl backlog=4096{reuse};\n"
            f"        ssl_certificate {cert};\n"
            f"        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
            "        ssl_session_cache shared:gw_tls:10m;")


def tls_lines(settings: GatewaySettings) -> str:
    """The TLS listener's directives for the public server; empty when TLS is off."""
    wanted = (settings.tls_listen, settings.tls_cert, settings.tls_key)
    if not any(wanted):
        return ""
    if not all(wanted):
        raise ValueError("TLS needs tls_listen, tls_cert and tls_key together")
    assert settings.tls_listen and settings.tls_cert and settings.tls_key
    return (tls_directives(settings.tls_listen, settings.tls_cert, settings.tls_key,
                           settings.reuseport) + "\n"
            "        # Plain HTTP sent to the TLS port: JSON 400, not nginx's page.\n"
            "        error_page 497 =400 /_gw/error;")


def write_config(settings: GatewaySettings, flavor: Flavor | None = None) -> Path:
    """Write nginx.conf and gateway.json into the prefix; return the nginx.conf path."""
    flavor = flavor or detect()
    prefix = settings.prefix
    for sub in ("logs", "tmp", "state"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    if root:
        # Workers run as nobody: they write the kept route table and temp files.
        import pwd

        nobody = pwd.getpwnam("nobody")
        for sub in ("tmp", "state"):
            os.chown(prefix / sub, nobody.pw_uid, nobody.pw_gid)
    # One or more auth-service instances, comma-separated.
    auth_addrs = [a.strip() for a in settings.authsvc_addr.split(",") if a.strip()]
    gateway_token = derive.gateway_token(derive.roots(settings.signing_secret)[0])
    gw_conf = {
        "control_url": settings.control_url,
        "admin_token": settings.admin_token,
        "signing_secret": settings.signing_secret,
        "gateway_token": gateway_token,
        "state_dir": str(prefix / "state"),
        "redis_url": settings.redis_url,
        "redis_cluster": settings.redis_cluster,
        "redis_module": flavor.redis_module,
        "poll_interval": settings.poll_interval,
        "auth_stale_ttl": settings.auth_stale_ttl,
        "dns_refresh": settings.dns_refresh,
        "authsvc_url": f"http://{auth_addrs[0]}",
        "failed_auth_limit": settings.failed_auth_limit,
        "anonymous_limit": settings.anonymous_limit,
        "access_log": settings.access_log,
    }
    config_path = prefix / "gateway.json"
    config_path.write_text(json.dumps(gw_conf, indent=2))
    os.chmod(config_path, 0o600)  # read by the master only
    import resource

    # As many descriptors as the hard limit allows (setrlimit above it fails); a proxied
    # connection needs two.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 65535 if hard == resource.RLIM_INFINITY else min(65535, hard)
    values = {
        "nofile": str(nofile),
        "worker_connections": str(max(512, min(16384, nofile // 2))),
        "load_modules": flavor.load_modules,
        "user": "user nobody nogroup;" if root else "",
        "workers": str(settings.workers),
        "prefix": str(prefix),
        "log_level": settings.log_level,
        "lua_path": flavor.lua_path,
        "lua_cpath": flavor.lua_cpath,
        "config_path": str(config_path),
        "access_log": f"{prefix}/logs/access.log gw_json" if settings.access_log else "off",
        "authsvc_servers": "\n".join(
            f"        server {a} max_fails=2 fail_timeout=5s;" for a in auth_addrs),
        "listen": settings.listen,
        "reuseport": " reuseport" if settings.reuseport else "",
        "metrics_listen": settings.metrics_listen,
        "tls": tls_lines(settings),
        "gateway_token": gateway_token,
    }
    conf = prefix / "nginx.conf"
    conf.write_text(render(TEMPLATE.read_text(), values))
    os.chmod(conf, 0o600)  # it holds the gateway token; the master reads it, as root
    return conf


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.render`: write nginx.conf and gateway.json for a gateway on another
    host or in a container (docker-compose.yml's gateway-config service). The admin token and
    the signing secret come from the environment, never from the command line."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m gateway.render")
    parser.add_argument("--flavor", choices=["openresty", "local"], default="openresty",
                        help="openresty: the official image; local: this machine's nginx")
    parser.add_argument("--prefix", type=Path, required=True,
                        help="the nginx prefix on the gateway's host; files are written there")
    parser.add_argument("--lua-dir", default=str(ROOT / "lua"),
                        help="where lua/ is on the gateway's host")
    parser.add_argument("--listen", default="0.0.0.0:8080")
    parser.add_argument("--metrics-listen", default="127.0.0.1:9145")
    parser.add_argument("--control-url", required=True)
    parser.add_argument("--authsvc-addr", required=True, help="host:port[,host:port...]")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--dns-refresh", type=float, default=5.0,
                        help="seconds between resolutions of route targets given by name")
    parser.add_argument("--tls-listen")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    admin_token = os.environ.get("PORTCULLIS_ADMIN_TOKEN", "")
    signing_secret = os.environ.get("PORTCULLIS_SIGNING_SECRET", "")
    if not admin_token or not signing_secret:
        print("set PORTCULLIS_ADMIN_TOKEN and PORTCULLIS_SIGNING_SECRET", file=sys.stderr)
        return 2
    flavor = openresty_flavor(args.lua_dir) if args.flavor == "openresty" else detect()
    settings = GatewaySettings(
        prefix=args.prefix, listen=args.listen, metrics_listen=args.metrics_listen,
        control_url=args.control_url, authsvc_addr=args.authsvc_addr,
        admin_token=admin_token, signing_secret=signing_secret, redis_url=args.redis_url,
        workers=args.workers, dns_refresh=args.dns_refresh, tls_listen=args.tls_listen,
        tls_cert=args.tls_cert, tls_key=args.tls_key)
    try:
        conf = write_config(settings, flavor)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"wrote {conf} and {settings.prefix / 'gateway.json'} ({flavor.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
