"""Route changes nudge the gateways: PUBLISH portcullis:routes <version> on Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.asyncio.client import PubSub
from starlette.applications import Starlette

from gateway.control.app import create_app
from gateway.control.config import Config
from gateway.control.events import CHANNEL, RedisEvents
from gateway.control.store import Store
from portcullis.procs import free_port
from tests.control.api import spec, version_of
from tests.control.conftest import TOKEN, client_for


@pytest.fixture
async def subscription(redis_url: str) -> AsyncIterator[PubSub]:
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    yield pubsub
    await pubsub.aclose()
    await client.aclose()


async def next_message(pubsub: PubSub, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if message is not None:
            return bytes(message["data"]).decode()
    raise AssertionError(f"nothing published on {CHANNEL}")


def app_with_events(pg_dsn: str, store: Store, url: str) -> Starlette:
    config = Config(database_url=pg_dsn, admin_token=TOKEN, redis_url=url)
    return create_app(config, store=store, events=RedisEvents(url))


async def test_each_change_publishes_the_new_version(
        pg_dsn: str, store: Store, redis_url: str, subscription: PubSub, tag: str) -> None:
    app = app_with_events(pg_dsn, store, redis_url)
    name = f"event-{tag}"
    async with client_for(app) as client:
        created = await client.post("/routes", json=spec(name))
        assert await next_message(subscription) == str(version_of(created))
        updated = await client.put(f"/routes/{name}", json=spec(name, retries=0))
        assert await next_message(subscription) == str(version_of(updated))
        deleted = await client.delete(f"/routes/{name}")
        assert await next_message(subscription) == str(version_of(deleted))
    await app.state.registry.events.close()


async def test_a_change_succeeds_when_redis_is_unreachable(
        pg_dsn: str, store: Store, tag: str) -> None:
    app = app_with_events(pg_dsn, store, f"redis://127.0.0.1:{free_port()}/0")
    async with client_for(app) as client:
        created = await client.post("/routes", json=spec(f"noredis-{tag}"))
        assert created.status_code == 201
        assert (await client.delete(f"/routes/noredis-{tag}")).status_code == 204
    await app.state.registry.events.close()
