"""`make bench` / `python -m bench`: every benchmark in one run, one table, each figure next
to its baseline from the same run, and the whole in bench/results/<UTC timestamp>.json.

    .venv/bin/python -m bench            # --quick (default): a few minutes, smaller sizes
    .venv/bin/python -m bench --full     # search at 1M and 10M rows, longer runs
    .venv/bin/python -m bench --only gateway,auth,suppression

Sections: `gateway` (bench/gateway.py: bare nginx vs the full gateway path, local and Redis
limits), `auth` (bench/authorize.py: decisions/s on a cache miss), `suppression`
(bench/fullstack.py: lookups through the gateway, to the service and to PostgreSQL; import
and export vs raw COPY; search; peak memory of every process of the stack).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import authorize, fullstack
from bench import gateway as gateway_bench
from bench.report import machine, table

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("gateway", "auth", "suppression")


def scale(args: argparse.Namespace) -> dict[str, Any]:
    if args.full:
        return {"mode": "full", "sizes": [1_000_000, 10_000_000], "seconds": 10,
                "keys": 20_000, "search_repeat": 200, "shared_buffers": "4GB"}
    return {"mode": "quick", "sizes": [100_000, 1_000_000], "seconds": 5, "keys": 5_000,
            "search_repeat": 100, "shared_buffers": "1GB"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the default: a few minutes")
    mode.add_argument("--full", action="store_true", help="10M rows; about half an hour")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--seconds", type=int, help="per measurement (quick 5, full 10)")
    p.add_argument("--sizes", help="comma-separated row counts for the suppression section "
                                  "(quick 100000,1000000; full 1000000,10000000)")
    p.add_argument("--shared-buffers", help="PostgreSQL's for the suppression section "
                                           "(quick 1GB, full 4GB)")
    p.add_argument("--no-import-baseline", action="store_true",
                   help="skip the raw COPY + merge baseline of the last import (at 100M rows "
                        "it takes as long again as the import)")
    p.add_argument("--json", type=Path, help="write the results here instead")
    p.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                   help="print the table of an earlier run's results file and stop")
    args = p.parse_args(argv)
    if args.report:
        print(table(json.loads(args.report.read_text())))
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    for tool in ("wrk", "pgbench", "curl"):
        if not shutil.which(tool):
            p.error(f"{tool} is required (apt-get install {tool}; wrk and pgbench come with"
                    " make setup)")
    s = scale(args)
    if args.sizes:
        s["sizes"] = sorted(int(x) for x in args.sizes.split(","))
    if args.shared_buffers:
        s["shared_buffers"] = args.shared_buffers
    seconds = args.seconds or s["seconds"]
    started = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    data: dict[str, Any] = {"started": stamp, "mode": s["mode"], "argv": sys.argv[1:],
                            "machine": machine(), "load": {}, "results": {}}

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def section(name: str, fn: Any) -> None:
        say(f"== {name} (load average {os.getloadavg()[0]:.2f})")
        before = os.getloadavg()
        t0 = time.monotonic()
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:  # the 1-minute load average every 5 s while it runs
            while not done.wait(5):
                samples.append(os.getloadavg()[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            data["results"][name] = fn()
        except Exception as exc:  # keep the other sections' figures and say what broke
            data.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:1000]
            say(f"!! {name} failed: {exc}")
        finally:
            done.set()
            sampler.join()
        data["load"][name] = {"before": before, "after": os.getloadavg(),
                              "max": max(samples, default=before[0]),
                              "seconds": round(time.monotonic() - t0, 1)}

    say(f"bench: {s['mode']} mode, {seconds}s per measurement; sizes "
        f"{', '.join(f'{n:,}' for n in s['sizes'])} rows")
    if "gateway" in only:
        section("gateway", lambda: gateway_bench.run(argparse.Namespace(
            seconds=seconds, connections=32, threads=1, workers=1, rounds=3)))
    if "auth" in only:
        section("auth", lambda: authorize.run(argparse.Namespace(
            workers=2, duration=seconds, connections=64, threads=1, keys=s["keys"],
            cache=False, floor=True), say=say))
    if "suppression" in only:
        section("suppression", lambda: fullstack.run(argparse.Namespace(
            sizes=s["sizes"], seconds=seconds, connections=16, lookup_workers=2,
            gw_workers=2, shared_buffers=s["shared_buffers"],
            search_repeat=s["search_repeat"], slow_ms=25,
            import_baseline=not args.no_import_baseline), say=say))
    data["seconds"] = round(time.time() - started, 1)
    text = table(data)
    for name, err in data.get("errors", {}).items():
        text += f"\nsection {name} FAILED: {err}"
    data["table"] = text
    print(text)
    path = args.json or RESULTS / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"\n{s['mode']} run, {data['seconds']:.0f} s on {platform.node()}; "
          f"results in {path}")
    return 1 if data.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
