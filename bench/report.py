"""The harness's one table (Markdown, so docs/benchmarks.md can take it as printed) and the
description of the machine it ran on."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    pg = subprocess.run(["pgbench", "--version"], capture_output=True, text=True,
                        check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "memory_gb": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "cpu": model, "python": platform.python_version(),
            "postgres": (re.findall(r"\d+\.\d+", pg) or ["?"])[0]}


def n(value: float, unit: str = "") -> str:
    text = f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**not met**")


Row = tuple[str, str, str, str, str, str]


def gateway_rows(g: dict[str, Any]) -> list[Row]:
    r = g["results"]
    bare = r["bare"]
    rows: list[Row] = []
    if "floor" in r:
        # Empty Lua phases: the share of bare nginx's throughput no gateway code can pass.
        f = r["floor"]
        rows.append(("empty Lua phases (the runtime's floor, wrk -c32)", n(f["rps"], "req/s"),
                     f"bare nginx {n(bare['rps'], 'req/s')}", ratio(f["rps"], bare["rps"]),
                     "", ""))
    if "signed" in r:
        # The floor plus the signed context alone: what the least gateway costs.
        m = r["signed"]
        rows.append(("empty Lua phases + the signed context only (wrk -c32)",
                     n(m["rps"], "req/s"), f"bare nginx {n(bare['rps'], 'req/s')}",
                     ratio(m["rps"], bare["rps"]), "", ""))
    for name, goal in (("local", 0.75), ("redis", 0.70)):
        m = r[name]
        rows.append((f"gateway throughput, {name} limits (wrk -c32)", n(m["rps"], "req/s"),
                     f"bare nginx {n(bare['rps'], 'req/s')}", ratio(m["rps"], bare["rps"]),
                     f">= {goal}x", verdict(m["rps"] / bare["rps"] >= goal)))
    if "local-tls" in r:
        # Kong's and APISIX's published conditions: TLS at both, a 1 KB answer.
        m, tls = r["local-tls"], r["bare-tls"]
        rows.append(("gateway throughput, local limits, TLS and 1 KB (wrk -c32)",
                     n(m["rps"], "req/s"), f"bare nginx with TLS {n(tls['rps'], 'req/s')}",
                     ratio(m["rps"], tls["rps"]), ">= 0.85x",
                     verdict(m["rps"] / tls["rps"] >= 0.85)))
    if "cpu_us_per_request" in bare:
        # CPU per request hardly moves with other load on the machine: bare/gateway is the
        # throughput ratio the gateway would have if CPU were the only limit.
        for name in ("floor", "signed", "local", "redis"):
            if name not in r:
                continue
            m = r[name]
            rows.append((f"gateway nginx CPU per request, {name}" +
                         ("" if name in ("floor", "signed") else " limits"),
                         n(m["cpu_us_per_request"], "us"),
                         f"bare nginx {n(bare['cpu_us_per_request'], 'us')}",
                         ratio(bare["cpu_us_per_request"], m["cpu_us_per_request"]),
                         "", ""))
    for name in ("local", "redis"):
        added = r[name]["p50_c1_ms"] - bare["p50_c1_ms"]
        rows.append((f"gateway added p50 latency, {name} limits (-c1)", n(added, "ms"),
                     f"bare nginx p50 {n(bare['p50_c1_ms'], 'ms')}", "-", "<= 0.2 ms",
                     verdict(added <= 0.2)))
    return rows


def auth_rows(a: dict[str, Any]) -> list[Row]:
    floor = a.get("floor /healthz")
    base = f"GET /healthz (one PG round trip) {n(floor['rate'], '/s')}" if floor else "-"
    rows: list[Row] = []
    for kind in ("api keys", "HS256 JWTs", "RS256 JWTs"):
        if kind in a:
            m = a[kind]
            per_cpu = f", {n(m['per_cpu_second'])} per CPU-s" if m.get("per_cpu_second") else ""
            rows.append((f"auth decisions on cache miss, {kind}",
                         f"{n(m['rate'], '/s')} (p99 {m['p99']}{per_cpu})", base,
                         ratio(m["rate"], floor["rate"]) if floor else "-", "", ""))
    return rows


def suppression_rows(s: dict[str, Any], mode: str, cpus: int) -> list[Row]:
    rows: list[Row] = []
    single = s["single"]
    for path, base in (("gateway", "service"), ("service", "postgres"), ("postgres", None)):
        m = single[path]
        goal = ok = ""
        if path == "gateway":
            goal = ">= 5,000/s, p99 <= 10 ms"
            ok = verdict(m["rps"] >= 5000 and m["p99_ms"] <= 10)
        rows.append((f"single lookups, {path} (c{m['connections']})",
                     f"{n(m['rps'], '/s')}, p99 {n(m['p99_ms'], 'ms')}",
                     f"{base} {n(single[base]['rps'], '/s')}" if base else "-",
                     ratio(m["rps"], single[base]["rps"]) if base else "-", goal, ok))
    during = single.get("during_import")
    if during:
        idle = single["gateway"]["p99_ms"]
        if "error" in during:
            rows.append(("single lookups during an import, gateway", f"failed: "
                         f"{during['error']}", "-", "-", "p99 <= 2x idle", verdict(False)))
        else:
            rows.append((f"single lookups during a {during['import_rows']:,}-row import, "
                         f"gateway (c{during['connections']})",
                         f"{n(during['rps'], '/s')}, p99 {n(during['p99_ms'], 'ms')}",
                         f"idle p99 {n(idle, 'ms')}", ratio(during["p99_ms"], idle),
                         "p99 <= 2x idle", verdict(during["p99_ms"] <= 2 * idle)))
    copiers = single.get("beside_memory_copiers")
    if copiers and "error" not in copiers:
        # The machine's own floor for the figure above: no database work at all, only two
        # processes copying memory at the lowest CPU priority.
        idle = single["gateway"]["p99_ms"]
        rows.append((f"single lookups beside two idle-priority memory copiers, gateway "
                     f"(c{copiers['connections']})",
                     f"{n(copiers['rps'], '/s')}, p99 {n(copiers['p99_ms'], 'ms')}",
                     f"idle p99 {n(idle, 'ms')}", ratio(copiers["p99_ms"], idle), "", ""))
    for path in ("gateway", "service", "postgres"):
        cpu = single[path].get("cpu_us_per_request")
        if cpu:
            total = sum(cpu.values())
            parts = " + ".join(f"{role} {n(us)}" for role, us in cpu.items())
            rows.append((f"CPU per single lookup, {path} path", n(total, "us"),
                         parts, "-", "", ""))
            rows.append((f"single lookups, {path} path: {cpus} CPUs / CPU per lookup",
                         n(cpus * 1e6 / total, "/s"), f"measured {n(single[path]['rps'], '/s')}",
                         ratio(single[path]["rps"], cpus * 1e6 / total), "", ""))
    batch = s["batch"]
    for path, base in (("gateway", "service"), ("service", "postgres"), ("postgres", None)):
        goal = ">= 200,000/s" if path == "gateway" else ""
        failed = [x for x in (path, base) if x and isinstance(batch[x], dict)]
        if failed:
            err = batch[path]["error"] if path in failed else f"{base} failed"
            rows.append((f"batch lookups of 10,000, {path}", f"failed: {err}", "-", "-",
                         goal, verdict(False) if goal else ""))
            continue
        rows.append((f"batch lookups of 10,000, {path}", n(batch[path], "recipients/s"),
                     f"{base} {n(batch[base], '/s')}" if base else "-",
                     ratio(batch[path], batch[base]) if base else "-", goal,
                     verdict(batch[path] >= 200_000) if goal else ""))
    imp = s["import"]
    base_import = imp.get("baseline_copy_merge_rows_per_s")
    rows.append((f"import of {imp['rows']:,} rows onto {imp['onto_rows']:,}",
                 n(imp["rows_per_s"], "rows/s"),
                 f"COPY + merge {n(base_import, 'rows/s')}" if base_import else "not measured",
                 ratio(imp["rows_per_s"], base_import) if base_import else "-",
                 ">= 150,000/s (10M)", verdict(imp["rows_per_s"] >= 150_000)))
    if imp.get("baseline_cpu_us_per_row"):
        # What the raw COPY + merge costs PostgreSQL a row, as a rate for every CPU.
        ceiling = cpus * 1e6 / imp["baseline_cpu_us_per_row"]
        rows.append((f"import ceiling: {cpus} CPUs / PostgreSQL CPU per row of the raw "
                     "COPY + merge", n(ceiling, "rows/s"),
                     f"{n(imp['baseline_cpu_us_per_row'], 'us')} a row",
                     ratio(imp["rows_per_s"], ceiling), "", ""))
    exp = s["export"]
    rows.append((f"export of {exp['rows']:,} rows (CSV)", n(exp["rows_per_s"], "rows/s"),
                 f"COPY TO {n(exp['baseline_copy_rows_per_s'], 'rows/s')}",
                 ratio(exp["rows_per_s"], exp["baseline_copy_rows_per_s"]),
                 ">= 800,000/s", verdict(exp["rows_per_s"] >= 800_000)))
    sizes = [str(x) for x in s["sizes"]]
    for case in ("domain", "from_to", "deep_cursor"):
        for i, size in enumerate(sizes):
            m = s["search"][size][case]
            smaller = s["search"][sizes[i - 1]][case] if i else None
            big = i == len(sizes) - 1
            goal = "p99 <= 50 ms (10M)" if big else ""
            rows.append((f"search {case}, {int(size):,} rows",
                         f"p50 {n(m['p50_ms'], 'ms')}, p99 {n(m['p99_ms'], 'ms')}",
                         f"at {int(sizes[i - 1]):,}: p99 {n(smaller['p99_ms'], 'ms')}"
                         if smaller else "-", "-", goal,
                         verdict(m["p99_ms"] <= 50) if big and mode == "full" else ""))
    for m in memory_rows(s.get("memory", [])):
        rows.append((f"peak RSS, {m['role']}: {m['kind']} (x{m['processes']})",
                     n(m["peak_mb"], "MB"), "-", "-", "", ""))
    return rows


def memory_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL's helpers (checkpointer, WAL writer, ...) in one row: the largest."""
    out = [r for r in rows if r["role"] != "postgres" or r["kind"] in ("postmaster",
                                                                      "backend")]
    helpers = [r for r in rows if r not in out]
    if helpers:
        out.append({"role": "postgres", "kind": "helpers",
                    "processes": sum(r["processes"] for r in helpers),
                    "peak_mb": max(r["peak_mb"] for r in helpers)})
    return out


def table(data: dict[str, Any]) -> str:
    res = data["results"]
    rows: list[Row] = []
    if "gateway" in res:
        rows += gateway_rows(res["gateway"])
    if "auth" in res:
        rows += auth_rows(res["auth"])
    if "suppression" in res:
        rows += suppression_rows(res["suppression"], data["mode"],
                                 data["machine"]["nproc"])
    head: Row = ("figure", "measured", "baseline (same run)", "ratio", "goal", "")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    m = data["machine"]
    loads = ", ".join(f"{k} {v['before'][0]:.2f} -> {v['after'][0]:.2f} "
                      f"(max {v.get('max', 0):.2f})" for k, v in data["load"].items())
    lines += ["", f"{data['mode']} mode; {m['nproc']} CPUs ({m['cpu']}), "
              f"{m['memory_gb']} GB, Linux {m['kernel']}, PostgreSQL {m['postgres']}; "
              f"1-min load average per section (before -> after, max): {loads}"]
    if data["mode"] != "full":
        lines.append("quick mode: sizes are smaller than the goals' (10M rows); run "
                     "`make bench BENCH_ARGS=--full` for those.")
    return "\n".join(lines)
