"""The control plane's admin API, as the CLI calls it."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.control.route import Route


class AdminError(Exception):
    """The control plane refused, or could not be reached; the message says which and why."""


class Admin:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def connect(cls, url: str, token: str, actor: str) -> Admin:
        return cls(httpx.AsyncClient(
            base_url=url, timeout=30.0,
            headers={"Authorization": f"Bearer {token}", "X-Actor": actor}))

    async def close(self) -> None:
        await self.client.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach the control plane at {self.client.base_url}: "
                             f"{exc}") from None
        if response.status_code >= 400:
            raise AdminError(f"{method} {path}: {response.status_code} {describe(response)}")
        return response

    async def table(self) -> tuple[int, list[dict[str, Any]]]:
        doc = (await self._call("GET", "/table")).json()
        return int(doc["version"]), list(doc["routes"])

    async def create(self, route: Route) -> None:
        await self._call("POST", "/routes", route.to_dict())

    async def replace(self, route: Route) -> None:
        await self._call("PUT", f"/routes/{route.name}", route.to_dict())

    async def delete(self, name: str) -> None:
        await self._call("DELETE", f"/routes/{name}")


def describe(response: httpx.Response) -> str:
    """The error descriptions of a SparkPost-shaped error body, or the body itself."""
    try:
        errors = response.json()["errors"]
        return "; ".join(str(e.get("description") or e.get("message")) for e in errors)
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200]
