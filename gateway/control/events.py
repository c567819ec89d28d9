"""Route-change events: a nudge on Redis so gateways fetch the new table now rather than at
their next poll. Best effort by design: the poll is what guarantees delivery, so a Redis
failure is logged and never fails the change that was already committed."""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

CHANNEL = "portcullis:routes"
log = logging.getLogger("gateway.control")


class Events(Protocol):
    async def publish(self, version: int) -> None: ...

    async def close(self) -> None: ...


class NoEvents:
    async def publish(self, version: int) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisEvents:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    async def publish(self, version: int) -> None:
        try:
            await self.client.publish(CHANNEL, str(version))
        except (RedisError, OSError) as exc:
            log.warning("could not publish route table version %d on %s: %s",
                        version, CHANNEL, exc)

    async def close(self) -> None:
        await self.client.aclose()


def events_for(url: str | None) -> Events:
    return RedisEvents(url) if url else NoEvents()
