"""What `apply` must do to make the registry match a file: the diff, as steps, and how it
reads in a terminal."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.control.route import FIELDS, Claim, Route, RouteConflict, check_conflicts

Action = Literal["create", "update", "delete"]
SIGNS: dict[Action, str] = {"create": "+", "update": "~", "delete": "-"}


@dataclass(frozen=True)
class Step:
    action: Action
    name: str
    route: Route | None = None  # what to write, for create and update
    changes: tuple[tuple[str, Any, Any], ...] = ()  # (field, before, after), for update


def diff(declared: Sequence[Route], current: Sequence[Mapping[str, Any]], *,
         prune_all: bool = False) -> list[Step]:
    """Steps in the order they are applied: deletes first (a renamed route frees its paths
    before its new name claims them), then updates, then creates.

    A registry route missing from the file is deleted only when its owner is one of the
    owners named in the file (so one team's file never removes another team's routes), or
    every such route with `prune_all`."""
    by_name = {str(c["name"]): c for c in current}
    wanted = {r.name for r in declared}
    owners = {r.owner for r in declared if r.owner}
    deletes = [Step("delete", name) for name, spec in sorted(by_name.items())
               if name not in wanted and (prune_all or spec.get("owner") in owners)]
    updates, creates = [], []
    for route in declared:
        before = by_name.get(route.name)
        if before is None:
            creates.append(Step("create", route.name, route))
            continue
        after = route.to_dict()
        changes = tuple(_changes({f: before.get(f) for f in FIELDS}, after))
        if changes:
            updates.append(Step("update", route.name, route, changes))
    return deletes + updates + creates


def _changes(before: Mapping[str, Any], after: Mapping[str, Any],
             prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Changed fields, down to the leaves of nested objects (`upstream.targets`)."""
    out: list[tuple[str, Any, Any]] = []
    for key in after:
        old, new = before.get(key), after[key]
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += _changes(old, new, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", old, new))
    return out


def conflicts(declared: Sequence[Route], current: Sequence[Mapping[str, Any]],
              steps: Sequence[Step]) -> list[str]:
    """Conflicts between the file's routes and the registry routes the plan keeps."""
    gone = {s.name for s in steps if s.action == "delete"} | {r.name for r in declared}
    kept = [Claim.of(c) for c in current if c["name"] not in gone]
    problems = []
    for route in declared:
        try:
            check_conflicts(route, kept)
        except RouteConflict as exc:
            problems.append(f"{route.name} {exc.entries[0]['description']}")
    return problems


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def render(steps: Sequence[Step]) -> str:
    lines = []
    for step in steps:
        lines.append(f"{SIGNS[step.action]} {step.name}")
        for field, before, after in step.changes:
            lines.append(f"    {field}: {_compact(before)} -> {_compact(after)}")
    counts = {a: sum(1 for s in steps if s.action == a) for a in SIGNS}
    if not steps:
        lines.append("no changes")
    else:
        lines.append(f"{counts['create']} to create, {counts['update']} to update, "
                     f"{counts['delete']} to delete")
    return "\n".join(lines)
