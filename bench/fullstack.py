"""The suppression service measured through the whole stack (`gateway.stack.Stack`: nginx
gateway, auth service, lookup and list services, import worker, control plane, PostgreSQL),
each figure next to its baseline in the same run:

  lookups  single GETs and 10,000-recipient batches through the gateway, straight to the
           lookup service (pre-signed), and straight to PostgreSQL (pgbench, asyncpg);
  import   rows/s of the API import vs a raw COPY + merge of the same file;
  export   rows/s of the CSV export vs a raw COPY TO;
  search   p50/p99 at each size (domain, from/to, a cursor page deep in the list);
  memory   the peak RSS (VmHWM) of every process of the stack.

Reuses the steps of bench/suppression.py; its data (account 1001) is reached through the
gateway by making the bench account take that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import suppression as sup
from bench.memory import PeakMemory, tree_cpu_seconds
from gateway.stack import PORTS, Stack, StackSettings
from portcullis.pgcluster import Cluster
from portcullis.procs import free_port
from services.suppression.store import BATCH_SQL

PLAN = [{"dimension": "key", "limit": 10_000_000, "window": 1},
        {"dimension": "account", "limit": 10_000_000, "window": 1}]


DURING_IMPORT_ROWS = 10_000_000


class Target:
    """What the steps of bench/suppression.py expect of their stack: service URLs and the
    cluster."""

    def __init__(self, stack: Stack, cluster: Cluster) -> None:
        self.urls = {"lookup": stack.url("lookup"), "list": stack.url("list")}
        self.cluster = cluster


def pgbench_lookups(dsn: str, rows: int, seconds: int, connections: int,
                    work: Path) -> dict[str, float]:
    """The lookup service's one-recipient query, by pgbench (a C client, as wrk is)."""
    script = work / "lookup.sql"
    script.write_text(
        "\\set i random(0, :rows2 - 1)\n"
        "SELECT recipient, type, list_id, subaccount_id, source, description, created, "
        "updated FROM suppression.entries WHERE account_id = :account AND recipient = "
        "'user' || :i || '@d' || (:i % " + str(sup.DOMAINS) + ") || '.example.com' "
        "ORDER BY subaccount_id, list_id, type;\n")
    logs = work / "pgbench"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    out = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(connections),
         "-j", "2", "-T", str(seconds), "-D", f"rows2={rows * 2}", "-D",
         f"account={sup.ACCOUNT}", "-l", "--log-prefix", str(logs / "tx"), dsn],
        capture_output=True, text=True, check=True, cwd=work).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latencies = []
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            latencies.append(int(line.split()[2]) / 1000)  # microseconds -> ms
    return {"rps": tps, "p50_ms": sup.pct(latencies, 50), "p99_ms": sup.pct(latencies, 99),
            "connections": connections}


async def asyncpg_batches(dsn: str, rows: int, seconds: float,
                          concurrency: int = 4, bodies: int = 64) -> float:
    """The lookup service's own batch query (store.BATCH_SQL, its generic plan) with
    10,000 recipients a call, from as many connections as the batch clients, the inputs
    built beforehand as wrk's are: what PostgreSQL alone does of a batch."""
    texts = []
    for _ in range(bodies):
        picks = {random.randrange(rows * 2) for _ in range(10_000)}
        texts.append("\n".join(sorted(f"user{i}@d{i % sup.DOMAINS}.example.com"
                                      for i in picks)))
    done = 0
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            while time.monotonic() < deadline:
                await conn.fetch(BATCH_SQL, sup.ACCOUNT, texts[n % bodies], None, [], None)
                n += concurrency
                done += 10_000
        finally:
            await conn.close()

    start = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return done / (time.monotonic() - start)


async def prewarm(dsn: str) -> dict[str, float]:
    """Read the bench account's partition and its primary key into the shared buffers
    (pg_prewarm), as a sending path that looks up all day keeps them: the state every
    lookup measurement then starts from. Pages read and seconds taken."""
    conn = await asyncpg.connect(dsn)
    try:
        start = time.monotonic()
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        part = await conn.fetchval("SELECT tableoid FROM suppression.entries "
                                   "WHERE account_id = $1 LIMIT 1", sup.ACCOUNT)
        pages = await conn.fetchval(
            """SELECT sum(pg_prewarm(r)) FROM (SELECT $1::oid AS r UNION ALL
                 SELECT indexrelid FROM pg_index WHERE indrelid = $1 AND indisprimary) s""",
            part)
        return {"pages": float(pages or 0), "seconds": time.monotonic() - start}
    finally:
        await conn.close()


LOG_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d ", re.M)


@contextlib.contextmanager
def slow_plans(cluster: Cluster, slow_ms: int, keep: int = 3) -> Iterator[list[dict[str, Any]]]:
    """EXPLAIN ANALYZE (by auto_explain) of every statement slower than `slow_ms` while the
    block runs; the `keep` slowest are left in the yielded list."""
    plans: list[dict[str, Any]] = []
    start = cluster.log.stat().st_size
    sup.run_sql(cluster.dsn, f"ALTER SYSTEM SET auto_explain.log_min_duration = {slow_ms}")
    sup.run_sql(cluster.dsn, "SELECT pg_reload_conf()")
    try:
        yield plans
    finally:
        sup.run_sql(cluster.dsn, "ALTER SYSTEM RESET auto_explain.log_min_duration")
        sup.run_sql(cluster.dsn, "SELECT pg_reload_conf()")
        with open(cluster.log, errors="replace") as f:
            f.seek(start)
            text = f.read()
        found = []
        for entry in LOG_ENTRY.split(text):
            m = re.search(r"duration: ([\d.]+) ms\s+plan:\n(.*)", entry, re.S)
            if m:
                found.append({"ms": float(m.group(1)), "plan": m.group(2).rstrip()})
        found.sort(key=lambda p: -p["ms"])
        plans.extend(found[:keep])
        plans.append({"slow_statements": len(found)})


def start(work: Path, opts: Any) -> tuple[Stack, Cluster, str]:
    cluster = Cluster(work / "pg", free_port(), durable=False)
    # auto_explain is loaded but off (its default, -1): it logs the plans of slow searches
    # only while the search step turns it on (ALTER SYSTEM, so not on this command line,
    # which would win over it).
    cluster.start({"max_connections": "300", "work_mem": "64MB",
                   "shared_buffers": opts.shared_buffers,
                   "shared_preload_libraries": "auto_explain",
                   "auto_explain.log_analyze": "on",
                   "auto_explain.log_buffers": "on", "auto_explain.log_timing": "on"})
    # The bench account must be account 1001, the one bench/suppression.py's steps sign for.
    stack = Stack(StackSettings(
        var=work / "stack", ports={name: free_port() for name in PORTS},
        database_url=cluster.dsn, signing_secret=sup.SECRET, gateway_workers=opts.gw_workers,
        gateway={"access_log": False, "log_level": "warn"}))
    stack.start(say=lambda *_: None)
    sup.run_sql(cluster.dsn, f"SELECT setval('auth.accounts_id_seq', {sup.ACCOUNT - 1})")
    account = int(stack.admin("POST", "/admin/accounts",
                              {"name": "bench", "rate_limits": PLAN})["id"])
    assert account == sup.ACCOUNT, account
    key = str(stack.create_key(account, ["suppression_lists/manage"])["key"])
    # More lookup processes, as bench/suppression.py runs them.
    stack.procs.pop("lookup").stop()
    stack.start_python("lookup", ["-m", "services.suppression", "lookup", "--host",
                                  "127.0.0.1", "--port", str(stack.port("lookup")),
                                  "--workers", str(opts.lookup_workers)])
    return stack, cluster, key


def attempt(measure: Any) -> Any:
    """A figure, or {"error": ...} when its measurement failed (a batch through the gateway
    can outlast the route's read timeout on a cold 10M-row table): one failed figure must
    not throw away the rest of a half-hour run."""
    try:
        return measure()
    except Exception as exc:  # any failure of one measurement is reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def with_cpu(tree: dict[str, int], roles: tuple[str, ...], seconds: float,
             measure: Any) -> dict[str, Any]:
    """Run a lookup measurement and add the CPU microseconds each process tree of the path
    spent per request: unlike req/s, hardly moved by other load on the machine."""
    before = {role: tree_cpu_seconds(tree[role]) for role in roles}
    result: dict[str, Any] = measure()
    requests = max(result["rps"] * seconds, 1)
    result["cpu_us_per_request"] = {
        role: (tree_cpu_seconds(tree[role]) - before[role]) / requests * 1e6
        for role in roles}
    return result


def roots(stack: Stack, cluster: Cluster) -> dict[str, int]:
    out = {name: proc.pid for name, proc in stack.procs.items() if proc.alive()}
    pid = cluster.pid()
    if pid:
        out["postgres"] = pid
    return out


async def fetch_value(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


# A process that only copies memory, at the lowest CPU priority Linux has (SCHED_IDLE: it
# runs only when nothing else wants the CPU). Two of them beside the lookups show what any
# memory-heavy neighbour costs the lookup path on this machine, whatever its priority: the
# baseline for the lookups during an import, whose index work is memory-heavy too.
MEMORY_COPIER = """
import os, sys, time
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
src, dst = bytearray(64 << 20), bytearray(64 << 20)  # far beyond any CPU cache
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    dst[:] = src
"""


def lookups_beside_memory_copiers(target: Target, stack: Stack, rows: int, opts: Any,
                                  work: Path, auth: dict[str, str]) -> dict[str, Any]:
    """Single lookups through the gateway while two idle-priority memory copiers run."""
    copiers = [subprocess.Popen([sys.executable, "-c", MEMORY_COPIER,
                                 str(opts.seconds + 30)]) for _ in range(2)]
    try:
        result: dict[str, Any] = sup.wrk_lookups(
            target, rows, opts.seconds, work, opts.connections,  # type: ignore[arg-type]
            url=stack.gateway_url, auth=auth)
    finally:
        for copier in copiers:
            copier.kill()
            copier.wait()
    return result


def lookups_during_import(target: Target, stack: Stack, rows: int, opts: Any, work: Path,
                          auth: dict[str, str]) -> dict[str, Any]:
    """Single lookups through the gateway while an import of up to 10M new rows is merging
    (issue #6: p99 at most twice the idle p99 while a 10M-row import runs). The import is
    left running; the stack's stop ends it."""
    path = work / "during-import.csv"
    # Recipients not in the table: all inserts.
    sup.write_csv(path, min(rows, DURING_IMPORT_ROWS), offset=rows * 2)
    threading.Thread(target=lambda: attempt(lambda: sup.api_import(target, path)),  # type: ignore
                     daemon=True).start()

    def merging() -> bool:
        return bool(asyncio.run(fetch_value(target.cluster.dsn, "SELECT count(*) FROM "
                                            "suppression.import_jobs WHERE state = 'running'")))

    deadline = time.monotonic() + 600
    while not merging():
        if time.monotonic() > deadline:
            raise TimeoutError("the import never started merging")
        time.sleep(0.2)
    result: dict[str, Any] = sup.wrk_lookups(
        target, rows, opts.seconds, work, opts.connections,  # type: ignore[arg-type]
        url=stack.gateway_url, auth=auth)
    result["import_rows"] = min(rows, DURING_IMPORT_ROWS)
    result["still_merging_after"] = merging()
    return result


def run(opts: Any, say: Any = print) -> dict[str, Any]:
    """opts: sizes (ascending row counts), seconds, connections, lookup_workers, gw_workers,
    shared_buffers, search_repeat, slow_ms (auto_explain threshold of the search step),
    import_baseline (False skips the raw COPY + merge of the last file: at 100M rows it
    would take as long again as the import)."""
    work = Path(tempfile.mkdtemp(prefix="bench-fullstack-"))
    work.chmod(0o755)
    stack: Stack | None = None
    cluster: Cluster | None = None
    memory: PeakMemory | None = None
    out: dict[str, Any] = {"sizes": list(opts.sizes), "search": {}}
    try:
        stack, cluster, key = start(work, opts)
        target = Target(stack, cluster)
        memory = PeakMemory(lambda: roots(stack, cluster))  # type: ignore[arg-type]
        memory.start()
        loaded = 0
        for size in opts.sizes:
            path = work / f"rows-{size}.csv"
            sup.write_csv(path, size - loaded, offset=loaded)
            job = sup.api_import(target, path)  # type: ignore[arg-type]
            assert job["state"] == "done" and job["rows_rejected"] == 0, job
            out["import"] = {"rows": size - loaded, "onto_rows": loaded,
                             "rows_per_s": (size - loaded) / job["total_s"],
                             "upload_s": job["upload_s"], "total_s": job["total_s"]}
            loaded = size
            sup.run_sql(cluster.dsn, "VACUUM ANALYZE suppression.entries")
            say(f"  {size:,} rows loaded ({out['import']['rows_per_s']:,.0f} rows/s); "
                "searching")
            with slow_plans(cluster, opts.slow_ms) as plans:
                out["search"][str(size)] = sup.searches(target, size,  # type: ignore
                                                        opts.search_repeat)
            out.setdefault("slow_plans", {})[str(size)] = plans
        if getattr(opts, "import_baseline", True):
            # The baseline of the last import: the same file by raw COPY + one merge.
            base_cpu: dict[str, float] = {}
            base_s = asyncio.run(sup.baseline_import(cluster.dsn, path, base_cpu))
            out["import"]["baseline_copy_merge_rows_per_s"] = out["import"]["rows"] / base_s
            # PostgreSQL's CPU per row for the raw COPY + merge alone: with every CPU of the
            # machine doing nothing else, no import with this index set can pass
            # CPUs / that (parsing, validation and the upload not even counted).
            out["import"]["baseline_cpu_us_per_row"] = (
                base_cpu["cpu_s"] / out["import"]["rows"] * 1e6)
            sup.run_sql(cluster.dsn, f"DELETE FROM suppression.entries WHERE account_id = "
                                     f"{sup.BASELINE_ACCOUNT}")
            sup.run_sql(cluster.dsn, "VACUUM ANALYZE suppression.entries")
        path.unlink()  # its disk is wanted for the during-import file and the export
        rows = loaded

        # The paths are measured one after the other, the gateway's first: without this, it
        # alone would pay for reading the account's pages into the shared buffers.
        out["prewarm"] = asyncio.run(prewarm(cluster.dsn))
        say("  single lookups: gateway, service, PostgreSQL")
        gw = {"Authorization": key}
        tree = roots(stack, cluster)
        out["single"] = {
            "gateway": with_cpu(tree, ("gateway", "auth", "lookup", "postgres"), opts.seconds,
                                lambda: sup.wrk_lookups(
                                    target, rows, opts.seconds, work,  # type: ignore
                                    opts.connections, url=stack.gateway_url, auth=gw)),
            "service": with_cpu(tree, ("lookup", "postgres"), opts.seconds,
                                lambda: sup.wrk_lookups(
                                    target, rows, opts.seconds, work,  # type: ignore
                                    opts.connections)),
            "postgres": with_cpu(tree, ("postgres",), opts.seconds,
                                 lambda: pgbench_lookups(cluster.dsn, rows, opts.seconds,
                                                         opts.connections, work)),
        }
        say("  batch lookups: gateway, service, PostgreSQL")
        out["batch"] = {
            "gateway": attempt(lambda: sup.wrk_batches(
                target, rows, opts.seconds, work, url=stack.gateway_url,  # type: ignore
                auth=gw)["recipients_per_s"]),
            "service": attempt(lambda: sup.wrk_batches(
                target, rows, opts.seconds, work)["recipients_per_s"]),  # type: ignore
            "postgres": attempt(lambda: asyncio.run(asyncpg_batches(cluster.dsn, rows,
                                                                    opts.seconds))),
        }
        say("  export")
        secs = sup.api_export(target, rows)  # type: ignore[arg-type]
        base_rows, base_secs = asyncio.run(sup.baseline_export(cluster.dsn))
        out["export"] = {"rows": base_rows, "rows_per_s": base_rows / secs,
                         "baseline_copy_rows_per_s": base_rows / base_secs}
        say("  single lookups beside two idle-priority memory copiers")
        out["single"]["beside_memory_copiers"] = attempt(lambda: lookups_beside_memory_copiers(
            target, stack, rows, opts, work, gw))
        say("  single lookups while an import runs")
        out["single"]["during_import"] = attempt(lambda: lookups_during_import(
            target, stack, rows, opts, work, gw))
        return out
    finally:
        if memory is not None:
            with contextlib.suppress(Exception):
                memory.stop()
                out["memory"] = memory.summary()
        if stack is not None:
            stack.stop()
        if cluster is not None:
            cluster.stop("immediate")
        shutil.rmtree(work, ignore_errors=True)
