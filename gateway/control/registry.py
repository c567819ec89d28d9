"""The route registry's rules: names are unique, no two routes claim the same path + method +
host, every change raises the table version and leaves an audit row, and gateways are nudged
once it is committed."""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.control.events import Events, NoEvents
from gateway.control.route import Route, check_conflicts
from gateway.control.store import Store
from portcullis.errors import APIError


class DuplicateRoute(APIError):
    def __init__(self, name: str) -> None:
        super().__init__(409, "Route exists", f"name: a route named {name!r} already exists",
                         "1409")


class UnknownRoute(APIError):
    def __init__(self, name: str) -> None:
        super().__init__(404, "Route not found", f"no route named {name!r}", "1404")


class Registry:
    def __init__(self, store: Store, events: Events | None = None) -> None:
        self.store = store
        self.events: Events = events or NoEvents()

    async def create(self, route: Route, actor: str) -> int:
        """Add a new route; return the new table version."""
        try:
            async with self.store.change() as change:
                if await change.get(route.name) is not None:
                    raise DuplicateRoute(route.name)
                check_conflicts(route, await change.claims())
                await change.insert(route)
                version = await change.record("create", route.name, actor, None,
                                              route.to_dict())
        except asyncpg.UniqueViolationError:  # only if someone wrote around the lock
            raise DuplicateRoute(route.name) from None
        await self.events.publish(version)
        return version

    async def put(self, route: Route, actor: str) -> tuple[bool, int]:
        """Create or replace the route; return (created, table version)."""
        async with self.store.change() as change:
            before = await change.get(route.name)
            check_conflicts(route, await change.claims())
            after = route.to_dict()
            if before == after:  # nothing to change: no new version, no audit row
                return False, await change.version()
            if before is None:
                await change.insert(route)
            else:
                await change.replace(route)
            version = await change.record("create" if before is None else "update",
                                          route.name, actor, before, after)
        await self.events.publish(version)
        return before is None, version

    async def delete(self, name: str, actor: str) -> tuple[dict[str, Any], int]:
        """Remove the route; return what it was and the new table version."""
        async with self.store.change() as change:
            before = await change.get(name)
            if before is None:
                raise UnknownRoute(name)
            await change.remove(name)
            version = await change.record("delete", name, actor, before, None)
        await self.events.publish(version)
        return before, version

    async def get(self, name: str) -> dict[str, Any]:
        spec = await self.store.route(name)
        if spec is None:
            raise UnknownRoute(name)
        return spec
