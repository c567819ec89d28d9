"""A declarative routes file: `routes: [<route>...]` in YAML, with `${NAME}` and
`${NAME:-default}` taken from the environment in string values (keys and comments are left
alone), `$${` for a literal `${`. Every route is validated here, before any server is asked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.control.route import (
    Claim,
    InvalidRoute,
    Route,
    RouteConflict,
    check_conflicts,
    validate,
)

VARIABLE_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class RouteFileError(Exception):
    """The file cannot be applied; `problems` holds one line per mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def substitute(text: str, env: Mapping[str, str], where: str) -> str:
    """`${NAME}`, `${NAME:-default}` (default when unset or empty, as in the shell)."""

    def replace(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:
            raise ValueError(f"{where}: malformed variable reference (use ${{NAME}} or "
                             f"${{NAME:-default}}; $${{ for a literal ${{)")
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise ValueError(f"{where}: environment variable {name} is not set and has no "
                         f"default (write ${{{name}:-default}} to give one)")

    return VARIABLE_RE.sub(replace, text)


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return substitute(value, env, where)
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}") for k, v in value.items()}
    return value


def parse(text: str, env: Mapping[str, str], source: str = "<routes>") -> list[Route]:
    """The file's routes, validated, substituted, and checked against each other."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RouteFileError(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(doc, dict) or set(doc) != {"routes"} or not isinstance(
            doc["routes"], list):
        raise RouteFileError(source, ["must be a mapping with one key, routes: [<route>...]"])
    problems: list[str] = []
    routes: list[Route] = []
    for i, spec in enumerate(doc["routes"]):
        label = f"routes[{i}]"
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            label += f" ({spec['name']})"
        try:
            routes.append(validate(_expand(spec, env, label)))
        except ValueError as exc:
            problems.append(str(exc))
        except InvalidRoute as exc:
            problems += [f"{label} {where}: {what}" for where, what in exc.problems]
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            problems.append(f"{route.name}: name appears twice")
        seen.add(route.name)
    for i, route in enumerate(routes):
        try:
            check_conflicts(route, [Claim.of(r) for r in routes[i + 1:]])
        except RouteConflict as exc:
            problems.append(f"{route.name} {exc.entries[0]['description']}")
    if problems:
        raise RouteFileError(source, problems)
    return routes


def load(path: Path, env: Mapping[str, str]) -> list[Route]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise RouteFileError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse(text, env, str(path))
