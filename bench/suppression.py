"""Suppression services benchmark (a script, not a test).

Starts a private PostgreSQL and the three processes, loads N generated rows by the import
API, and measures, each next to its baseline from the same run:

  import      rows/s of the API import (upload + worker) vs a raw COPY + merge of the same
              file, and the worker's peak memory;
  lookups     single GETs straight to the lookup service (wrk, pre-signed requests): req/s
              and p99, idle and while a second import runs;
  batch       recipients/s of 10,000-recipient batch lookups (wrk, bodies built beforehand);
  export      rows/s of a CSV export vs a raw COPY TO of the same rows;
  search      p50/p99 of a domain search, a from/to window and a cursor page deep in the list.

    .venv/bin/python bench/suppression.py                 # quick: 200,000 rows
    .venv/bin/python bench/suppression.py --rows 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.memory import tree_cpu_seconds  # noqa: E402
from portcullis import derive  # noqa: E402
from portcullis.context import ContextKeys, signed_headers  # noqa: E402
from portcullis.migrate import migrate_all  # noqa: E402
from portcullis.pgcluster import Cluster  # noqa: E402
from portcullis.procs import Proc, free_port  # noqa: E402
from services.suppression.config import AUDIENCE  # noqa: E402
from services.suppression.search import Cursor  # noqa: E402

SECRET = "bench-secret"  # the root the services' context keys are derived from
KEYS = ContextKeys.for_roots(SECRET, AUDIENCE)
BASE = "/api/v1/suppression-list"
ACCOUNT = 1001
BASELINE_ACCOUNT = 1002
DOMAINS = 5000


def row(i: int) -> str:
    kind = "transactional" if i % 2 else "non_transactional"
    return f"user{i}@d{i % DOMAINS}.example.com,{kind},,bench row {i}\n"


def write_csv(path: Path, rows: int, offset: int = 0) -> int:
    with open(path, "w") as f:
        f.write("recipient,type,list_id,description\n")
        for start in range(offset, offset + rows, 100_000):
            f.write("".join(row(i) for i in range(start, min(start + 100_000, offset + rows))))
    return path.stat().st_size


def headers(method: str, uri: str, account: int = ACCOUNT) -> dict[str, str]:
    return signed_headers(KEYS, method, uri, account_id=account,
                          grants=["suppression_lists/manage"])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class Stack:
    def __init__(self, root: Path, lookup_workers: int, import_workers: int,
                 shared_buffers: str) -> None:
        self.root = root
        self.shared_buffers = shared_buffers
        self.cluster = Cluster(root / "pg", free_port(), durable=False)
        self.procs: list[Proc] = []
        self.lookup_workers = lookup_workers
        self.import_workers = import_workers
        self.urls: dict[str, str] = {}
        self.worker_procs: list[Proc] = []

    def start(self) -> None:
        self.cluster.start({"max_connections": "300", "work_mem": "64MB",
                            "shared_buffers": self.shared_buffers})
        asyncio.run(migrate_all(self.cluster.dsn))
        env = dict(os.environ, DATABASE_URL=self.cluster.dsn,
                   PORTCULLIS_CONTEXT_KEYS=derive.context_keys_value(SECRET, AUDIENCE))
        for role, workers in (("lookup", self.lookup_workers), ("list", 1)):
            port = free_port()
            proc = Proc(role, [sys.executable, "-m", "services.suppression", role, "--port",
                               str(port), "--workers", str(workers)],
                        self.root / f"{role}.log", env=env, cwd=ROOT).start()
            self.procs.append(proc)
            self.urls[role] = f"http://127.0.0.1:{port}"
        for n in range(self.import_workers):
            proc = Proc(f"worker{n}", [sys.executable, "-m", "services.suppression", "worker"],
                        self.root / f"worker{n}.log", env=env, cwd=ROOT).start()
            self.procs.append(proc)
            self.worker_procs.append(proc)
        for proc, role in zip(self.procs, ("lookup", "list"), strict=False):
            proc.wait_http(f"{self.urls[role]}/healthz")

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        self.cluster.stop("immediate")


class MemorySampler(threading.Thread):
    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        procs = [psutil.Process(p) for p in self.pids]
        while not self.stop.is_set():
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    self.peak = max(self.peak, p.memory_info().rss)
            time.sleep(0.1)


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def stack_cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU used so far by PostgreSQL (every backend and helper), the list service (it takes
    the upload) and the import workers."""
    pg = stack.cluster.pid()
    return {"postgres": tree_cpu_seconds(pg) if pg else 0.0,
            "list": tree_cpu_seconds(stack.procs[1].pid),
            "worker": sum(tree_cpu_seconds(p.pid) for p in stack.worker_procs)}


def api_import(stack: Stack, path: Path, account: int = ACCOUNT) -> dict[str, Any]:
    uri = f"{BASE}/imports"
    cpu = stack_cpu_seconds(stack) if isinstance(stack, Stack) else {}
    sent = time.monotonic()
    resp = httpx.post(stack.urls["list"] + uri, content=file_chunks(path), timeout=3600,
                      headers=headers("POST", uri, account) | {"Content-Type": "text/csv"})
    resp.raise_for_status()
    job_id = resp.json()["results"]["id"]
    uploaded = time.monotonic()
    juri = f"{uri}/{job_id}"
    # One client for all the polls: each new httpx client builds an SSL context, and five
    # a second took a fifth of a CPU from the import being measured.
    with httpx.Client(timeout=30) as http:
        while True:
            job = http.get(stack.urls["list"] + juri,
                           headers=headers("GET", juri, account)).json()["results"]
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
    done = time.monotonic()
    job["upload_s"] = uploaded - sent
    job["total_s"] = done - sent
    if isinstance(stack, Stack):
        job["cpu_s"] = {k: v - cpu[k] for k, v in stack_cpu_seconds(stack).items()}
    return job


async def baseline_import(dsn: str, path: Path,
                          cpu: dict[str, float] | None = None) -> float:
    """Raw COPY of the same file into a staging table, then one merge: no validation.
    `cpu` gets the seconds of CPU its PostgreSQL backend used ("cpu_s")."""
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        cpu_before = tree_cpu_seconds(backend)
        start = time.monotonic()
        await conn.execute("CREATE TEMP TABLE raw_staging (recipient text, type text, "
                           "list_id text, description text)")
        await conn.copy_to_table("raw_staging", source=str(path), format="csv", header=True)
        await conn.execute(
            """INSERT INTO suppression.entries AS e (account_id, subaccount_id, recipient,
                   list_id, type, domain, source, description)
               SELECT $1, 0, recipient, coalesce(list_id, ''), type,
                      split_part(recipient, '@', 2), 'Manually Added', description
               FROM raw_staging
               ON CONFLICT (account_id, recipient, subaccount_id, list_id, type) DO UPDATE
               SET description = EXCLUDED.description, updated = now()""", BASELINE_ACCOUNT)
        elapsed = time.monotonic() - start
        if cpu is not None:
            cpu["cpu_s"] = tree_cpu_seconds(backend) - cpu_before
        return elapsed
    finally:
        await conn.close()


# The end of each wrk script below: requests built in init() are sent in turn, and one
# RESULT line reports requests, duration, p50, p99 and mean (ms), non-2xx/3xx answers and
# socket errors.
WRK_REPLAY = """
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout))
end
"""

WRK_SCRIPT = """
local requests = {}
local n = 0
local lat = {}
init = function(args)
  for line in io.lines(args[1]) do
    local sep = string.find(line, "\\t")
    local path = string.sub(line, 1, sep - 1)
    local hdrs = {}
    for k, v in string.gmatch(string.sub(line, sep + 1), "([^=;]+)=([^;]*)") do hdrs[k] = v end
    requests[#requests + 1] = wrk.format("GET", path, hdrs)
  end
end
""" + WRK_REPLAY


def wrk_lookups(stack: Stack, rows: int, seconds: int, workdir: Path,
                connections: int, url: str | None = None,
                auth: dict[str, str] | None = None) -> dict[str, float]:
    """Pre-signed GETs (the signature stays valid for 60 s), half hits, half misses.
    With `url` and `auth` (a gateway and its credential), those headers instead."""
    reqfile = workdir / "requests.txt"
    with open(reqfile, "w") as f:
        for _ in range(2000):
            i = random.randrange(rows * 2)  # half of them are not suppressed
            uri = f"{BASE}/user{i}@d{i % DOMAINS}.example.com"
            hdrs = auth if auth is not None else headers("GET", uri)
            f.write(uri + "\t" + ";".join(f"{k}={v}" for k, v in hdrs.items()) + "\n")
    script = workdir / "lookup.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         url or stack.urls["lookup"], "--", str(reqfile)],
        capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, duration_us, p50, p99, mean, misses, errors = line.split()
    # Half the recipients are not suppressed by design: their 404s are answers, not errors.
    return {"rps": int(requests) / (int(duration_us) / 1e6), "p50_ms": float(p50),
            "p99_ms": float(p99), "mean_ms": float(mean), "connections": connections,
            "not_found_answers": int(misses), "socket_errors": int(errors)}


WRK_BATCH_SCRIPT = """
local requests = {}
local n = 0
init = function(args)
  local hdrs = {["Content-Type"] = "application/json"}
  local first = true
  for line in io.lines(args[1]) do
    if first then
      for k, v in string.gmatch(line, "([^=;]+)=([^;]*)") do hdrs[k] = v end
      first = false
    else
      requests[#requests + 1] = wrk.format("POST", args[2], hdrs, line)
    end
  end
end
""" + WRK_REPLAY


def wrk_batches(stack: Stack, rows: int, seconds: int, workdir: Path, connections: int = 4,
                url: str | None = None, auth: dict[str, str] | None = None,
                size: int = 10_000, bodies: int = 64) -> dict[str, float]:
    """Batch lookups of `size` recipients (half of them not suppressed) by wrk, from
    `bodies` bodies written beforehand: the load generator, a C client as for single
    lookups, takes little of the CPUs the stack shares, where a Python client building
    and sending each batch took a fifth of them. Any answer but a 200 is an error."""
    uri = f"{BASE}/lookup"
    reqfile = workdir / "batches.txt"
    sign = auth if auth is not None else headers("POST", uri)
    with open(reqfile, "w") as f:
        f.write(";".join(f"{k}={v}" for k, v in sign.items()) + "\n")
        for _ in range(bodies):
            picks = (random.randrange(rows * 2) for _ in range(size))
            f.write(json.dumps({"recipients": [f"user{i}@d{i % DOMAINS}.example.com"
                                               for i in picks]}) + "\n")
    script = workdir / "batch.lua"
    script.write_text(WRK_BATCH_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s", "-s",
         str(script), url or stack.urls["lookup"], "--", str(reqfile), uri],
        capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    _, requests, duration_us, p50, p99, _mean, bad_status, errors = line.split()
    if int(bad_status) or int(errors):
        raise RuntimeError(f"batch lookups: {bad_status} answers that were not 200, "
                           f"{errors} socket errors")
    return {"recipients_per_s": int(requests) * size / (int(duration_us) / 1e6),
            "batches": int(requests), "p50_ms": float(p50), "p99_ms": float(p99),
            "connections": connections}


def api_export(stack: Stack, rows: int) -> float:
    """Seconds to stream the whole CSV export (curl reads it: a Python client would take
    the CPU it measures)."""
    uri = f"{BASE}/export?format=csv"
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"]
    for k, v in headers("GET", uri).items():
        cmd += ["-H", f"{k}: {v}"]
    start = time.monotonic()
    out = subprocess.run([*cmd, stack.urls["list"] + uri], capture_output=True, text=True,
                         check=True).stdout
    elapsed = time.monotonic() - start
    status, _size = out.split()
    assert status == "200", out
    return elapsed


async def baseline_export(dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += chunk.count(b"\n")

    try:
        start = time.monotonic()
        await conn.copy_from_query(
            "SELECT recipient, type, source, description, list_id, subaccount_id, created, "
            "updated FROM suppression.entries WHERE account_id = $1", ACCOUNT,
            output=sink, format="csv")
        return size, time.monotonic() - start
    finally:
        await conn.close()


async def deep_cursor_token(dsn: str, rows: int) -> str:
    """The `next` cursor the API hands out after the first 90% of the bench account's rows
    (sorted by updated, newest first)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT updated, id FROM suppression.entries WHERE account_id = $1
               ORDER BY updated DESC, id DESC OFFSET $2 LIMIT 1""",
            ACCOUNT, max(int(rows * 0.9) - 1, 0))
    finally:
        await conn.close()
    return Cursor(row["updated"], int(row["id"]), rows).token()


def searches(stack: Stack, rows: int, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=stack.urls["list"], timeout=60) as http:
        def timed(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            uri = f"{BASE}?{urlencode(params)}"
            start = time.monotonic()
            resp = http.get(uri, headers=headers("GET", uri))
            elapsed = (time.monotonic() - start) * 1000
            resp.raise_for_status()
            return elapsed, resp.json()

        # A cursor 90% deep in the list (newest first), made as the API makes it from the
        # row before it. Walking there through the API took 9,000 pages of 10,000 rows at
        # 100M rows (over 20 minutes of JSON); the index gives the row in one query.
        deep_cursor = {"cursor": asyncio.run(deep_cursor_token(stack.cluster.dsn, rows))}
        now = time.time()
        window = {"from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
                  "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                  "per_page": 100}
        cases: dict[str, list[dict[str, Any]]] = {
            "domain": [{"domain": f"d{random.randrange(DOMAINS)}.example.com",
                        "per_page": 100} for _ in range(repeat)],
            "from_to": [dict(window) for _ in range(repeat)],
            "deep_cursor": [{**deep_cursor, "per_page": "100"}
                            for _ in range(repeat)],
        }
        for name, calls in cases.items():
            times = [timed(p)[0] for p in calls]
            out[name] = {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99),
                         "max_ms": max(times)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=10, help="per lookup measurement")
    parser.add_argument("--lookup-workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--shared-buffers", default="4GB",
                        help="PostgreSQL shared_buffers: lookups at 10M rows want the key "
                             "and the hot pages in memory")
    parser.add_argument("--import-workers", type=int, default=1)
    parser.add_argument("--search-repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--only", choices=("all", "import"), default="all",
                        help="import: the import and its baseline only")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is required (apt-get install wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-suppression-"))
    os.chmod(work, 0o755)
    stack = Stack(work, args.lookup_workers, args.import_workers, args.shared_buffers)
    results: dict[str, Any] = {"rows": args.rows, "cpus": os.cpu_count(),
                               "shared_buffers": args.shared_buffers}
    try:
        stack.start()
        csv_path = work / "rows.csv"
        size = write_csv(csv_path, args.rows)
        results["csv_bytes"] = size

        sampler = MemorySampler([p.pid for p in stack.worker_procs])
        list_sampler = MemorySampler([stack.procs[1].pid])  # the list service takes the upload
        sampler.start()
        list_sampler.start()
        job = api_import(stack, csv_path)
        sampler.stop.set()
        list_sampler.stop.set()
        assert job["state"] == "done", job
        base_cpu: dict[str, float] = {}
        base_s = asyncio.run(baseline_import(stack.cluster.dsn, csv_path, base_cpu))
        results["import"] = {
            "rows_per_s": args.rows / job["total_s"], "upload_s": job["upload_s"],
            "total_s": job["total_s"], "worker_peak_rss_mb": sampler.peak / 2**20,
            "list_service_peak_rss_mb": list_sampler.peak / 2**20,
            "rows_written": job["rows_written"], "rows_rejected": job["rows_rejected"],
            # CPU of PostgreSQL and the services over the whole import (upload included)
            "cpu_us_per_row": sum(job["cpu_s"].values()) / args.rows * 1e6,
            "cpu_s": job["cpu_s"],
            "baseline_copy_merge_rows_per_s": args.rows / base_s,
            # the baseline's PostgreSQL backend only (the file is read by the client)
            "baseline_cpu_us_per_row": base_cpu["cpu_s"] / args.rows * 1e6,
            "load_average": os.getloadavg()[0]}
        print(json.dumps({"import": results["import"]}), flush=True)
        if args.only == "import":
            return 0

        run_sql(stack.cluster.dsn, "VACUUM ANALYZE suppression.entries")

        results["lookup_idle"] = wrk_lookups(stack, args.rows, args.seconds, work,
                                                    args.connections)
        print(json.dumps({"lookup_idle": results["lookup_idle"]}), flush=True)

        results["batch_recipients_per_s"] = wrk_batches(
            stack, args.rows, args.seconds, work)["recipients_per_s"]
        print(json.dumps({"batch_recipients_per_s": results["batch_recipients_per_s"]}),
              flush=True)

        secs = api_export(stack, args.rows)
        base_rows, base_secs = asyncio.run(baseline_export(stack.cluster.dsn))
        results["export"] = {"rows": base_rows, "rows_per_s": base_rows / secs,
                             "baseline_copy_rows_per_s": base_rows / base_secs}
        print(json.dumps({"export": results["export"]}), flush=True)

        results["search"] = searches(stack, args.rows, args.search_repeat)
        print(json.dumps({"search": results["search"]}), flush=True)

        # Lookups while a second import (new rows) runs.
        second = work / "rows2.csv"
        write_csv(second, args.rows, offset=args.rows * 2)
        holder: dict[str, Any] = {}
        importer = threading.Thread(target=lambda: holder.update(api_import(stack, second)))
        importer.start()
        time.sleep(1.0)  # let the worker get going before measuring
        results["lookup_during_import"] = wrk_lookups(stack, args.rows, args.seconds, work,
                                                    args.connections)
        importer.join()
        results["lookup_during_import"]["p99_vs_idle"] = (
            results["lookup_during_import"]["p99_ms"] / results["lookup_idle"]["p99_ms"])
        results["second_import_rows_per_s"] = args.rows / holder["total_s"]
        print(json.dumps({"lookup_during_import": results["lookup_during_import"]}),
              flush=True)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


def run_sql(dsn: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
