"""Route specs and admin API calls, to keep the tests short."""

from __future__ import annotations

from typing import Any

import httpx

TARGET = "127.0.0.1:9"


def spec(name: str, *paths: str, **fields: Any) -> dict[str, Any]:
    """A valid route spec; `fields` override or add to it."""
    route: dict[str, Any] = {
        "name": name,
        "paths": list(paths) or [f"/{name}/"],
        "upstream": {"targets": [TARGET]},
        "resource": "tests",
    }
    route.update(fields)
    return route


async def create(admin: httpx.AsyncClient, name: str, *paths: str,
                 **fields: Any) -> httpx.Response:
    response = await admin.post("/routes", json=spec(name, *paths, **fields))
    assert response.status_code == 201, response.text
    return response


def description(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["description"])


def version_of(response: httpx.Response) -> int:
    return int(response.headers["X-Table-Version"])
