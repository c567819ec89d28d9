"""The CLI's commands, as functions of an Admin client and an output stream, so tests run
them against an in-process app."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from gateway.cli import plan
from gateway.cli.admin import Admin
from gateway.cli.routefile import RouteFileError, load


async def apply(admin: Admin, path: Path, env: Mapping[str, str], out: TextIO, *,
                dry_run: bool = False, prune_all: bool = False) -> list[plan.Step]:
    """Make the registry match the file; print the diff. Raises RouteFileError (nothing
    changed) or AdminError (a step failed: the steps before it are applied)."""
    declared = load(path, env)
    _, current = await admin.table()
    steps = plan.diff(declared, current, prune_all=prune_all)
    problems = plan.conflicts(declared, current, steps)
    if problems:
        raise RouteFileError(str(path), problems)
    print(plan.render(steps), file=out)
    if dry_run:
        print("dry run: nothing changed", file=out)
        return steps
    by_name = {r.name: r for r in declared}
    for step in steps:
        if step.action == "delete":
            await admin.delete(step.name)
        elif step.action == "update":
            await admin.replace(by_name[step.name])
        else:
            await admin.create(by_name[step.name])
    version, _ = await admin.table()
    print(f"applied; route table version {version}", file=out)
    return steps


def _cell(values: object) -> str:
    if values is None:
        return "*"
    if isinstance(values, list):
        return ",".join(str(v) for v in values)
    return str(values)


async def get(admin: Admin, out: TextIO) -> None:
    version, routes = await admin.table()
    rows = [("NAME", "METHODS", "HOSTS", "PATHS", "TARGETS", "AUTH", "OWNER")]
    for r in routes:
        rows.append((r["name"], _cell(r.get("methods")), _cell(r.get("hosts")),
                     _cell(r["paths"]), _cell(r["upstream"]["targets"]),
                     f"{r['auth']}:{r.get('resource') or '-'}", _cell(r.get("owner") or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"route table version {version}, {len(routes)} routes", file=out)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
              file=out)


async def delete(admin: Admin, name: str, out: TextIO) -> None:
    await admin.delete(name)
    print(f"- {name}", file=out)
