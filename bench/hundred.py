"""One account of 100 million rows, once: import, lookups, export (issue #6's scale run).

Starts its own PostgreSQL and the suppression services (the steps of bench/suppression.py),
writes a CSV of N generated rows and measures, each next to its baseline from the same run:

  import   the API import of the whole file into one account (upload + worker), against a
           raw COPY of the same file into an unindexed unlogged table: what the disk and
           PostgreSQL's COPY do at all on this machine; the worker's and the list service's
           peak memory (flat memory: a 100M-row file must not grow them);
  lookups  single GETs straight to the lookup service (wrk, pre-signed, half hits), p50/p99;
  export   the CSV export of the 100M rows (curl reads it) against a raw COPY TO.

Needs about 45 GB of free disk for 100M rows (file, upload chunks, table and indexes).

    .venv/bin/python -m bench.hundred                   # 100,000,000 rows
    .venv/bin/python -m bench.hundred --rows 2000000    # the same steps, small
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import suppression as sup

RESULTS = Path(__file__).resolve().parent / "results"


async def raw_copy(dsn: str, path: Path) -> float:
    """Seconds for a plain COPY of the file into an unlogged table without indexes."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""CREATE UNLOGGED TABLE raw_copy (
                                  recipient text, type text, list_id text, description text)""")
        start = time.monotonic()
        with open(path, "rb") as f:
            await conn.copy_to_table("raw_copy", source=f, format="csv", header=True)
        took = time.monotonic() - start
        await conn.execute("DROP TABLE raw_copy")
        return took
    finally:
        await conn.close()


def say(what: str, data: Any) -> None:
    print(json.dumps({what: data}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000_000)
    p.add_argument("--seconds", type=int, default=10, help="per lookup measurement")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--shared-buffers", default="6GB")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--csv", type=Path, help="an existing file written by an earlier run with "
                   "the same --rows (bench.suppression.write_csv): not written again, and kept")
    p.add_argument("--raw-copy", type=float, metavar="ROWS_PER_S",
                   help="the raw COPY baseline measured earlier on this file: not measured "
                        "again (it took a few minutes at 100M rows)")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-hundred-"))
    os.chmod(work, 0o755)
    stack = sup.Stack(work, lookup_workers=2, import_workers=1,
                      shared_buffers=args.shared_buffers)
    results: dict[str, Any] = {"rows": args.rows, "cpus": os.cpu_count(),
                               "started": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        stack.start()
        csv_path = args.csv or work / "rows.csv"
        if args.csv:
            results["csv_bytes"] = csv_path.stat().st_size
        else:
            t = time.monotonic()
            results["csv_bytes"] = sup.write_csv(csv_path, args.rows)
            say("csv", {"bytes": results["csv_bytes"], "seconds": time.monotonic() - t})
        if args.raw_copy:
            raw_rows_per_s = args.raw_copy
            results["raw_copy_measured_earlier"] = True
        else:
            raw_rows_per_s = args.rows / asyncio.run(raw_copy(stack.cluster.dsn, csv_path))
        say("raw_copy", {"rows_per_s": raw_rows_per_s})

        worker_mem = sup.MemorySampler([p.pid for p in stack.worker_procs])
        list_mem = sup.MemorySampler([stack.procs[1].pid])
        worker_mem.start()
        list_mem.start()
        job = sup.api_import(stack, csv_path)
        worker_mem.stop.set()
        list_mem.stop.set()
        assert job["state"] == "done", job
        results["import"] = {
            "rows_per_s": args.rows / job["total_s"], "total_s": job["total_s"],
            "upload_s": job["upload_s"], "rows_written": job["rows_written"],
            "rows_rejected": job["rows_rejected"],
            "cpu_us_per_row": sum(job["cpu_s"].values()) / args.rows * 1e6,
            "worker_peak_rss_mb": worker_mem.peak / 2**20,
            "list_service_peak_rss_mb": list_mem.peak / 2**20,
            "baseline_raw_copy_rows_per_s": raw_rows_per_s,
            "load_average": os.getloadavg()[0]}
        say("import", results["import"])
        if not args.csv:
            csv_path.unlink()  # its disk is wanted for the table

        sup.run_sql(stack.cluster.dsn, "ANALYZE suppression.entries")
        results["table_bytes"] = asyncio.run(table_bytes(stack.cluster.dsn))
        results["lookup_idle"] = sup.wrk_lookups(stack, args.rows, args.seconds, work,
                                                 args.connections)
        say("lookup_idle", results["lookup_idle"])

        secs = sup.api_export(stack, args.rows)
        base_rows, base_secs = asyncio.run(sup.baseline_export(stack.cluster.dsn))
        results["export"] = {"rows": base_rows, "rows_per_s": base_rows / secs,
                             "baseline_copy_rows_per_s": base_rows / base_secs}
        say("export", results["export"])
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hundred-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


async def table_bytes(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT sum(pg_table_size(c.oid)) AS heap, sum(pg_indexes_size(c.oid)) AS indexes
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'suppression.entries'::regclass""")
        return {"heap": int(row["heap"]), "indexes": int(row["indexes"])}
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
