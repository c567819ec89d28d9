"""Benchmark: the gateway's instructions per request, counted by callgrind.

Throughput on this 2-core machine drifts by more within a minute than most changes to the
gateway's code are worth; instructions executed are the same for the same binary, code and
requests, whatever else the machine is doing. So this counts them: one gateway node (one
worker) runs under `valgrind --tool=callgrind` with collection off; after a warm-up (the JIT
has compiled its traces, the decision is cached, keep-alive connections are open) collection
is turned on for exactly `--requests` requests on one keep-alive connection, then dumped.
The figure is the worker's user-space instructions divided by the requests. Bare nginx (the
same proxy with no Lua) is counted the same way, as the baseline.

The route, key and limit are those of `bench.gateway` (key auth, a limit that never trips,
a trivial upstream). It runs against the code of the tree it is started from, so the same
script, copied into a checkout of older code, measures that code in the same session:

    .venv/bin/python -m bench.callgrind [--requests 3000] [--warmup 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gateway import BARE_CONF, UPSTREAM_CONF, bench_route, start_nginx
from gateway.render import write_config
from gateway.stack import PORTS, Stack, StackSettings
from portcullis.procs import Proc, free_port

VALGRIND = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
            "--smc-check=all", "--vex-iropt-register-updates=allregs-at-mem-access")


def drive(port: int, path: str, headers: dict[str, str], count: int) -> None:
    """`count` requests on one keep-alive connection, each answered 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"the benchmark's request answered {resp.status}")
    finally:
        conn.close()


def counted(pid: int, port: int, path: str, headers: dict[str, str], warmup: int,
            requests: int, out_dir: Path) -> float:
    """Instructions per request of the nginx (one process) `pid`."""
    drive(port, path, headers, warmup)
    control = ["callgrind_control"]
    subprocess.run([*control, "--instr=on", str(pid)], check=True, capture_output=True,
                   timeout=60)
    drive(port, path, headers, requests)
    subprocess.run([*control, "--instr=off", str(pid)], check=True, capture_output=True,
                   timeout=60)
    before = set(out_dir.glob(f"cg.{pid}.*"))
    subprocess.run([*control, "--dump", str(pid)], check=True, capture_output=True,
                   timeout=60)
    deadline = time.monotonic() + 60
    while not (new := set(out_dir.glob(f"cg.{pid}.*")) - before):
        if time.monotonic() > deadline:
            raise SystemExit("callgrind wrote no dump")
        time.sleep(0.1)
    total = 0
    for dump in new:
        m = re.search(r"^totals:\s+(\d+)", dump.read_text(errors="replace"), re.M)
        if m:
            total = max(total, int(m.group(1)))
    return total / requests


# callgrind_control reaches a process through vgdb, which cannot find a worker that nginx
# forked (its environment is cleared): nginx runs as one process here.
def single_process(conf_text: str) -> str:
    return re.sub(r"^master_process on;$", "", conf_text, flags=re.M).replace(
        "daemon off;", "daemon off;\nmaster_process off;", 1)


def under_valgrind(name: str, conf: Path, out_dir: Path) -> Proc:
    from gateway.render import detect

    conf.write_text(single_process(conf.read_text()))
    argv = [*VALGRIND, f"--callgrind-out-file={out_dir}/cg.%p", detect().binary, "-p",
            str(conf.parent), "-c", str(conf)]
    return Proc(name, argv, conf.parent / "stdout.log").start()


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="portcullis-bench-cg-"))
    root.chmod(0o755)
    out_dir = root / "callgrind"
    out_dir.mkdir()
    out_dir.chmod(0o777)  # the workers (nobody) write their dumps here
    procs: list[Proc] = []
    stack: Stack | None = None
    try:
        up_port, bare_port = free_port(), free_port()
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        procs.append(start_nginx("upstream", UPSTREAM_CONF.format(
            workers=1, prefix="{prefix}", port=up_port), root))
        bare_dir = root / "bare"
        bare_dir.mkdir()
        (bare_dir / "nginx.conf").write_text(BARE_CONF.format(
            user=user, workers=1, prefix=str(bare_dir), port=bare_port, upstream=up_port,
            tls=""))
        bare = under_valgrind("bare", bare_dir / "nginx.conf", out_dir)
        procs.append(bare)
        stack = Stack(StackSettings(
            var=root / "stack", ports={name: free_port() for name in PORTS}, durable_pg=False,
            gateway_workers=1, gateway={"access_log": False, "log_level": "warn"}))
        stack.start(say=lambda *_: None)
        headers = bench_route(stack, up_port)
        for _ in range(200):
            if httpx.get(f"{stack.gateway_url}/bench/x", headers=headers).status_code == 200:
                break
            time.sleep(0.05)
        settings = stack.gateway_settings()
        node_port = free_port()
        settings.prefix = root / "gateway-callgrind"
        settings.listen = f"127.0.0.1:{node_port}"
        settings.metrics_listen = f"127.0.0.1:{free_port()}"
        settings.workers, settings.access_log, settings.log_level = 1, False, "warn"
        node = under_valgrind("gateway", write_config(settings), out_dir)
        procs.append(node)
        deadline = time.monotonic() + 120
        while True:  # under valgrind the node is slow to take its first route table
            try:
                if httpx.get(f"http://127.0.0.1:{node_port}/bench/x", headers=headers,
                             timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the gateway under valgrind never served the route")
            time.sleep(0.5)
        figures: dict[str, list[float]] = {"bare": [], "gateway": []}
        for _ in range(args.runs):
            figures["bare"].append(counted(bare.pid, bare_port, "/bench/x", {}, args.warmup,
                                           args.requests, out_dir))
            figures["gateway"].append(counted(node.pid, node_port, "/bench/x", headers,
                                              args.warmup, args.requests, out_dir))
        return {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "runs": figures,
                "median": {k: statistics.median(v) for k, v in figures.items()}}
    finally:
        for p in procs:
            p.stop()
        if stack:
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3, help="counted runs; the median is reported")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    data = run(args)
    med = data["median"]
    print(f"instructions per request: bare nginx {med['bare'] / 1000:.1f}k, gateway "
          f"{med['gateway'] / 1000:.1f}k (runs: "
          + ", ".join(f"{g / 1000:.1f}k" for g in data["runs"]["gateway"]) + ")")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
