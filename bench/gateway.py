"""Benchmark: the gateway's cost, measured against bare nginx in the same run.

One trivial upstream (an nginx answering 200 from memory) and, in front of it:
  * bare   - nginx proxying to it with keep-alive, nothing else;
  * local  - the full gateway path (route match, cached auth decision, GCRA limits in the
             shared dict, context signing, balancer_by_lua) with the local limit policy;
  * redis  - the same with limits in Redis (one script per lease of up to 64 requests);
  * floor  - nginx with lua-nginx-module's phases present but empty (access, balancer,
             header and body filters, log): what the runtime costs before the gateway does
             any work, so the distance from bare nginx that no Lua code can close;
  * signed - the floor plus only the signed context that every request must carry (a
             request id, HMAC-SHA256 over the request and the caller, seven headers to the
             upstream), by the gateway's own code: the least any configuration of this
             gateway does, so no route, auth, limit or metric is in it.
And the TLS harness, in the conditions Kong and APISIX publish their figures in: TLS
terminated by a bare nginx (bare-tls) and by the gateway node with local limits (local-tls)
alike (the gateway's own TLS directives, keep-alive, a session cache), a 1 KB answer.
Each is driven by wrk with the same connections and threads; throughput at `--connections`
and latency at one connection (the added latency is the p50 difference at -c1). The four are
measured in turn, `--rounds` times over, and each figure is the median of its rounds: this
machine's speed drifts by more within a minute than the differences being measured, and
interleaving spreads the drift over all four alike.

    .venv/bin/python -m bench.gateway [--seconds 10] [--connections 32] [--workers 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from gateway.render import detect, tls_directives
from gateway.stack import PORTS, Stack, StackSettings
from portcullis.procs import Proc, free_port
from portcullis.redisserver import start_redis

# What every nginx of this bench starts with.
PRELUDE = """
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
"""

# A 1 KB answer, as the published gateway benchmarks use (Kong's, APISIX's).
ONE_KB = '{{"ok":true,"pad":"' + "x" * 1000 + '"}}'

UPSTREAM_CONF = PRELUDE + """http {{
    access_log off;
    keepalive_requests 1000000;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 '{{"ok":true}}'; }}
        location /bench/1k {{ return 200 '""" + ONE_KB + """'; }}
    }}
}}
"""

BARE_CONF = "\n{user}\n" + PRELUDE + """http {{
    access_log off;
    upstream up {{ server 127.0.0.1:{upstream}; keepalive 256; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
{tls}
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

# The upstream of the Lua configurations below: picked by balancer_by_lua, as the gateway's.
LUA_UPSTREAM = """    upstream up {{
        server 0.0.0.1:1;
        balancer_by_lua_block {{
            require("ngx.balancer").set_current_peer("127.0.0.1", {upstream})
        }}
        keepalive 256;
        keepalive_requests 1000000;
    }}
"""

# The same proxy with every Lua phase the gateway uses, each doing nothing.
FLOOR_CONF = "\n{load_modules}\n{user}\n" + PRELUDE + """http {{
    access_log off;
""" + LUA_UPSTREAM + """    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            access_by_lua_block {{ local _ = 1 }}
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            header_filter_by_lua_block {{ local _ = 1 }}
            body_filter_by_lua_block {{ local _ = 1 }}
            log_by_lua_block {{ local _ = 1 }}
        }}
    }}
}}
"""


# The floor plus the gateway's context signature (lua/gw/context.lua and request_id.lua,
# called as lua/gw/access.lua calls them) for one fixed caller, and nginx.conf's headers.
SIGNED_CONF = "\n{load_modules}\n{user}\n" + PRELUDE + """http {{
    access_log off;
    lua_package_path "{lua_path}";
    init_by_lua_block {{
        SIGNED_CALLER = {{account_id = 1001, subaccount_id = 0, key_id = 7,
                         grants = {{"bench/manage"}}}}
        require("gw.config").signing_secret = "bench-signing-secret"
    }}
""" + LUA_UPSTREAM + """    server {{
        listen 127.0.0.1:{port} backlog=4096;
        set $gw_request_id "";
        set $gw_account "";
        set $gw_subaccount "";
        set $gw_key_id "";
        set $gw_grants "";
        set $gw_timestamp "";
        set $gw_signature "";
        location / {{
            access_by_lua_block {{
                local rid = require("gw.request_id").next()
                ngx.var.gw_request_id = rid
                require("gw.context").set("bench", SIGNED_CALLER, rid)
            }}
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Request-Id $gw_request_id;
            proxy_set_header X-Account-Id $gw_account;
            proxy_set_header X-Subaccount-Id $gw_subaccount;
            proxy_set_header X-Key-Id $gw_key_id;
            proxy_set_header X-Grants $gw_grants;
            proxy_set_header X-Gateway-Timestamp $gw_timestamp;
            proxy_set_header X-Gateway-Signature $gw_signature;
            add_header X-Request-Id $gw_request_id always;
            header_filter_by_lua_block {{ local _ = 1 }}
            body_filter_by_lua_block {{ local _ = 1 }}
            log_by_lua_block {{ local _ = 1 }}
        }}
    }}
}}
"""


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def start_nginx(name: str, conf_text: str, root: Path) -> Proc:
    prefix = root / name
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text.replace("{prefix}", str(prefix)))
    proc = Proc(name, [detect().binary, "-p", str(prefix), "-c", str(conf)],
                prefix / "stdout.log")
    return proc.start()


def wrk(url: str, seconds: int, connections: int, threads: int,
        headers: dict[str, str]) -> dict[str, float]:
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--latency"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {}
    for label, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out,
                                         re.M):
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        pct[label] = float(value) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    return {"requests": float(done.group(1)) if done else 0.0, "rps": rps,
            "p50_ms": pct.get("50", 0.0), "p99_ms": pct.get("99", 0.0),
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0}


def workers_of(master: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes have used: unlike throughput, hardly moved by other
    load on the machine, so the per-request cost compares fairly across runs."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(url: str, args: argparse.Namespace, headers: dict[str, str],
            master: int) -> dict[str, float]:
    wrk(url, 2, args.connections, args.threads, headers)  # warm up (keep-alive, caches)
    workers = workers_of(master)
    before = cpu_seconds(workers)
    load = wrk(url, args.seconds, args.connections, args.threads, headers)
    used = cpu_seconds(workers) - before
    quiet = wrk(url, max(3, args.seconds // 2), 1, 1, headers)
    return {"rps": load["rps"], "p99_ms": load["p99_ms"], "non2xx": load["non2xx"],
            "p50_c1_ms": quiet["p50_ms"], "p99_c1_ms": quiet["p99_ms"],
            "cpu_us_per_request": used / max(load["requests"], 1) * 1e6}


def bench_route(stack: Stack, up_port: int) -> dict[str, str]:
    """The benchmarks' route (`/bench`, key auth, a limit per key) to the trivial upstream,
    and the headers of a key for it whose plan is far above what this machine can send:
    the limits are checked, never hit."""
    plan = [{"dimension": "key", "limit": 10_000_000, "window": 1},
            {"dimension": "account", "limit": 10_000_000, "window": 1}]
    account = int(stack.admin("POST", "/admin/accounts",
                              {"name": "bench", "rate_limits": plan})["id"])
    key = str(stack.create_key(account, ["bench/manage"])["key"])
    route = {"name": "bench", "paths": ["/bench"], "resource": "bench", "owner": "bench",
             "upstream": {"targets": [f"127.0.0.1:{up_port}"]},
             "rate_limits": [{"dimension": "key", "limit": 10_000_000, "window": 1}]}
    httpx.post(stack.url("control") + "/routes", json=route,
               headers={"Authorization": f"Bearer {stack.admin_token}"}).raise_for_status()
    return {"Authorization": key}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="portcullis-bench-gw-"))
    root.chmod(0o755)
    procs: list[Proc] = []
    stack: Stack | None = None
    try:
        up_port, bare_port = free_port(), free_port()
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        upstream = start_nginx("upstream", UPSTREAM_CONF.format(
            workers=1, prefix="{prefix}", port=up_port), root)
        procs.append(upstream)
        bare = start_nginx("bare", BARE_CONF.format(
            user=user, workers=args.workers, prefix="{prefix}", port=bare_port,
            upstream=up_port, tls=""), root)
        procs.append(bare)
        # The TLS harness: bare nginx and the gateway terminate TLS alike (the gateway's own
        # directives), with a self-signed ECDSA certificate.
        cert, key = self_signed(root / "tls")
        bare_tls_port, local_tls_port = free_port(), free_port()
        bare_tls = start_nginx("bare-tls", BARE_CONF.format(
            user=user, workers=args.workers, prefix="{prefix}", port=free_port(),
            upstream=up_port, tls=tls_directives(f"127.0.0.1:{bare_tls_port}", str(cert),
                                                 str(key))), root)
        procs.append(bare_tls)
        floor_port = free_port()
        floor = start_nginx("floor", FLOOR_CONF.format(
            load_modules=detect().load_modules, user=user, workers=args.workers,
            prefix="{prefix}", port=floor_port, upstream=up_port), root)
        procs.append(floor)
        signed_port = free_port()
        signed = start_nginx("signed", SIGNED_CONF.format(
            load_modules=detect().load_modules, lua_path=detect().lua_path, user=user,
            workers=args.workers, prefix="{prefix}", port=signed_port, upstream=up_port), root)
        procs.append(signed)
        redis_port = free_port()
        redis = start_redis(root / "redis", redis_port)
        procs.append(redis)
        ports = {name: free_port() for name in PORTS}
        stack = Stack(StackSettings(
            var=root / "stack", ports=ports, durable_pg=False,
            redis_url=f"redis://127.0.0.1:{redis_port}/0", gateway_workers=args.workers,
            gateway={"access_log": False, "log_level": "warn"}))
        stack.start(say=lambda *_: None)
        headers = bench_route(stack, up_port)
        gw_url = f"{stack.gateway_url}/bench/x"
        for _ in range(200):
            if httpx.get(gw_url, headers=headers).status_code == 200:
                break
        redis_node, redis_node_port, _ = stack.start_extra_gateway(
            "bench-redis", stack.redis_url, access_log=False, log_level="warn")
        procs.append(redis_node)
        # The main node: local limits (no Redis).
        local_node, local_port, _ = stack.start_extra_gateway(
            "bench-local", None, access_log=False, log_level="warn",
            tls_listen=f"127.0.0.1:{local_tls_port}", tls_cert=str(cert), tls_key=str(key))
        procs.append(local_node)
        plain, tls = "http://127.0.0.1:{}/bench/x", "https://127.0.0.1:{}/bench/1k"
        targets = {
            "bare": (plain.format(bare_port), {}, bare.pid),
            "floor": (plain.format(floor_port), {}, floor.pid),
            "signed": (plain.format(signed_port), {}, signed.pid),
            "local": (plain.format(local_port), headers, local_node.pid),
            "redis": (plain.format(redis_node_port), headers, redis_node.pid),
            "bare-tls": (tls.format(bare_tls_port), {}, bare_tls.pid),
            "local-tls": (tls.format(local_tls_port), headers, local_node.pid),
        }
        rounds = [{name: measure(url, args, hdrs, pid)
                   for name, (url, hdrs, pid) in targets.items()}
                  for _ in range(max(1, args.rounds))]
        results = {name: {field: statistics.median(r[name][field] for r in rounds)
                          for field in rounds[0][name]}
                   for name in targets}
        return {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "results": results, "rounds": rounds}
    finally:
        if stack:
            stack.stop()
        for p in procs:
            p.stop()
        shutil.rmtree(root, ignore_errors=True)


NAMES = ("bare", "floor", "signed", "local", "redis")
# The TLS harness, each against its own bare nginx (bare-tls).
TLS_NAMES = ("bare-tls", "local-tls")


def baseline_of(name: str) -> str:
    return "bare-tls" if name in TLS_NAMES else "bare"


def report(data: dict[str, Any]) -> str:
    r = data["results"]
    lines = [f"{'path':9} {'req/s':>10} {'x bare':>7} {'p99 ms':>8} {'p50@c1 ms':>10} "
             f"{'added p50 ms':>13} {'CPU us/req':>11} {'x bare CPU':>11} {'non-2xx':>8}"]
    for name in (*NAMES, *(n for n in TLS_NAMES if n in r)):
        m, bare = r[name], r[baseline_of(name)]
        lines.append(f"{name:9} {m['rps']:10.0f} {m['rps'] / bare['rps']:7.2f} "
                     f"{m['p99_ms']:8.2f} {m['p50_c1_ms']:10.3f} "
                     f"{m['p50_c1_ms'] - bare['p50_c1_ms']:13.3f} "
                     f"{m['cpu_us_per_request']:11.1f} "
                     f"{bare['cpu_us_per_request'] / m['cpu_us_per_request']:11.2f} "
                     f"{m['non2xx']:8.0f}")
    rounds = data.get("rounds", [])
    if len(rounds) > 1:
        shown = [*NAMES[1:], *(n for n in TLS_NAMES[1:] if n in rounds[0])]
        lines.append(f"x bare by round ({'/'.join(shown)}): " + ", ".join(
            "/".join(f"{one[n]['rps'] / one[baseline_of(n)]['rps']:.2f}"
                     for n in shown) for one in rounds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="nginx workers, both sides")
    p.add_argument("--rounds", type=int, default=3,
                   help="measure the four in turn this many times; report the medians")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    data = run(args)
    print(report(data))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
