"""Benchmark: POST /v1/authorize decisions per second on a cache miss.

Starts a throw-away PostgreSQL cluster and the auth service (its key cache disabled, so
every decision looks its key up in PostgreSQL), makes an account with thousands of keys and
two JWT issuers, then drives wrk with a Lua script that sends a different credential on
every request. Prints decisions/s for API keys, HS256 tokens and RS256 tokens, and decisions
per CPU-second the service used (a figure that other load on the machine disturbs less).

    .venv/bin/python bench/authorize.py [--workers 2] [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portcullis import derive  # noqa: E402
from portcullis.migrate import migrate_all  # noqa: E402
from portcullis.pgcluster import Cluster  # noqa: E402
from portcullis.procs import Proc, free_port  # noqa: E402

ADMIN = "bench-admin-token"
ROOT_SECRET = "bench-root-secret"
GATEWAY_TOKEN = derive.gateway_token(ROOT_SECRET)
HS_SECRET = "bench-hmac-secret-long-enough-for-hs256-000000"
AUDIENCE = "bench"
GRANTS = ["suppression_lists/manage"]

WRK_SCRIPT = r"""
local bodies = {}
local i = 0
function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
  -- each thread starts at its own place in the list
  i = math.random(#bodies)
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/authorize", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer GATEWAY_TOKEN"}, bodies[i])
end
"""


def body(token: str) -> str:
    return json.dumps({"resource": "suppression_lists", "method": "GET", "token": token,
                       "subaccount": None, "client_ip": "127.0.0.1", "grants": None})


async def make_keys(dsn: str, account_id: int, count: int) -> list[str]:
    """Keys inserted straight into the table (as the admin API would store them)."""
    raw = [secrets.token_hex(20) for _ in range(count)]
    rows = [(f"k_{secrets.token_hex(8)}", account_id, "bench", k[:4],
             hashlib.sha256(k.encode()).digest(), GRANTS) for k in raw]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "api_keys", schema_name="auth", records=rows,
            columns=["id", "account_id", "label", "prefix", "hash", "grants"])
        await conn.execute("ANALYZE auth.api_keys")
    finally:
        await conn.close()
    return raw


def setup_service(base: str, dsn: str, count: int) -> dict[str, list[str]]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, headers=admin, timeout=30) as c:
        account = c.post("/admin/accounts", json={"name": f"bench-{secrets.token_hex(4)}"})
        account_id = account.json()["results"]["id"]
        # one key through the API, to check the path end to end
        c.post("/admin/keys", json={"account_id": account_id, "label": "x", "grants": GRANTS}
               ).raise_for_status()
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "b1"}
        for name, algs, extra in (("hs", ["HS256"], {"secret": HS_SECRET}),
                                  ("rs", ["RS256"], {"jwks": {"keys": [jwk]}})):
            c.post("/admin/issuers", json={
                "name": name, "issuer": f"https://{name}.bench/", "account_id": account_id,
                "audience": AUDIENCE, "algorithms": algs, **extra}).raise_for_status()
    keys = asyncio.run(make_keys(dsn, account_id, count))
    now = int(time.time())

    def claims(iss: str, n: int) -> dict[str, Any]:
        return {"iss": iss, "aud": AUDIENCE, "sub": f"user-{n}", "exp": now + 3600,
                "grants": GRANTS}

    return {
        "api keys": keys,
        "HS256 JWTs": ["Bearer " + jwt.encode(claims("https://hs.bench/", n), HS_SECRET,
                                              algorithm="HS256") for n in range(count)],
        "RS256 JWTs": ["Bearer " + jwt.encode(claims("https://rs.bench/", n), private,
                                              algorithm="RS256", headers={"kid": "b1"})
                       for n in range(min(count, 2000))],
    }


def check(base: str, token: str) -> None:
    r = httpx.post(base + "/v1/authorize", content=body(token),
                   headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"})
    if r.status_code != 200:
        raise SystemExit(f"the benchmark's credential is refused: {r.status_code} {r.text}")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by every process in the group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(base: str, bodies_file: Path, script: Path, args: argparse.Namespace,
            pgid: int) -> dict[str, Any]:
    cpu_before = group_cpu_seconds(pgid)
    out = subprocess.run(
        ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
         f"{args.duration}s", "--latency", "-s", str(script), base, "--", str(bodies_file)],
        capture_output=True, text=True, check=True).stdout
    cpu = group_cpu_seconds(pgid) - cpu_before
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return {"rate": rate, "non_2xx": int(bad.group(1)) if bad else 0,
            "p99": p99.group(1) if p99 else "?", "service_cpu_s": round(cpu, 2),
            "per_cpu_second": round(total / cpu) if cpu else None}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="auth-service processes")
    p.add_argument("--duration", type=int, default=10, help="seconds per run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--keys", type=int, default=20000, help="distinct credentials per kind")
    p.add_argument("--cache", action="store_true", help="keep the key cache on (hits)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def run(args: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    """Decisions/s per kind of credential: {"api keys": {"rate", "p99", ...}, ...}."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="bench-authorize-"))
    os.chmod(work, 0o755)
    cluster = Cluster(work / "pg", free_port(), durable=False)
    service: Proc | None = None
    try:
        cluster.start()
        asyncio.run(migrate_all(cluster.dsn))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "DATABASE_URL": cluster.dsn, "PORTCULLIS_ADMIN_TOKEN": ADMIN,
               "PORTCULLIS_CONTEXT_KEYS": derive.context_keys_value(ROOT_SECRET, "auth"),
               "PORTCULLIS_GATEWAY_TOKEN": GATEWAY_TOKEN,
               "AUTHSVC_KEY_CACHE_TTL": "5" if args.cache else "0",
               "AUTHSVC_POOL_MAX": "20"}
        env.pop("REDIS_URL", None)
        service = Proc("authsvc", [sys.executable, "-m", "authsvc", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", str(args.workers)],
                       work / "authsvc.log", env=env, cwd=ROOT)
        service.start()
        service.wait_http(base + "/healthz")
        credentials = setup_service(base, cluster.dsn, args.keys)
        script = work / "authorize.lua"
        script.write_text(WRK_SCRIPT.replace("GATEWAY_TOKEN", GATEWAY_TOKEN))
        results = {}
        say(f"auth service: {args.workers} worker(s), key cache "
            f"{'on' if args.cache else 'off'}; wrk {args.threads} thread(s), "
            f"{args.connections} connections, {args.duration}s per run; "
            f"{os.cpu_count()} CPUs; service pid {service.pid}")
        for kind, tokens in credentials.items():
            check(base, tokens[0])
            bodies = work / f"{kind.replace(' ', '_')}.jsonl"
            bodies.write_text("\n".join(body(t) for t in tokens) + "\n")
            results[kind] = run_wrk(base, bodies, script, args, service.pid)
            r = results[kind]
            say(f"{kind:>12}: {r['rate']:8.0f} decisions/s  p99 {r['p99']:>8}  "
                f"non-2xx {r['non_2xx']}  ({r['per_cpu_second']} per CPU-second of the "
                f"service)")
        if getattr(args, "floor", False):
            # What the service's framework does for nothing but one PostgreSQL round trip:
            # the ceiling a decision can approach.
            from bench.gateway import wrk

            health = wrk(base + "/healthz", args.duration, args.connections, args.threads, {})
            results["floor /healthz"] = {"rate": health["rps"], "p99": f"{health['p99_ms']}ms",
                                         "non_2xx": health["non2xx"]}
        return results
    finally:
        if service is not None:
            service.stop()
        cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    args = parser().parse_args()
    results = run(args, say=lambda line: print(line, flush=True))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
