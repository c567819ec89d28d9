"""What the users share within one locust process: the tenants made at test start and the
parsed options."""

from __future__ import annotations

from typing import Any

from loadtest.tenants import Tenants

tenants = Tenants()
parsed: Any = None


def options(name: str, default: int) -> int:
    value = getattr(parsed, name, None)
    return int(value) if value is not None else default
