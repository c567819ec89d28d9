"""Revocation events: published on Redis (`portcullis:revocations`) when Redis is there,
always logged in PostgreSQL (`GET /v1/revocations?since=N` for gateways that poll).
Other auth-service instances listen too and drop the key from their cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from authsvc.store import Store

CHANNEL = "portcullis:revocations"
log = logging.getLogger("authsvc.events")


class RevocationEvents:
    def __init__(self, redis: Any = None) -> None:
        self.redis = redis
        self.listeners: list[Callable[[str], None]] = []
        self._pubsub: Any = None

    async def publish(self, key_id: str, seq: int, reason: str) -> None:
        if self.redis is None:
            return
        message = json.dumps({"key_id": key_id, "seq": seq, "reason": reason})
        try:
            await self.redis.publish(CHANNEL, message)
        except Exception as exc:  # the PostgreSQL log still carries it for pollers
            log.warning("could not publish revocation of %s: %s", key_id, exc)

    def notify(self, key_id: str) -> None:
        for listener in self.listeners:
            listener(key_id)

    async def subscribe(self) -> None:
        """Subscribe before serving, so no event published after start-up is missed."""
        if self.redis is None:
            return
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self._pubsub = pubsub
        except Exception as exc:
            log.warning("revocation listener cannot reach Redis yet: %s", exc)
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def listen(self) -> None:
        """Forget keys other instances revoked; reconnects until cancelled."""
        if self.redis is None:
            return
        while True:
            pubsub, self._pubsub = self._pubsub, None
            try:
                if pubsub is None:
                    pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        self.notify(str(json.loads(message["data"])["key_id"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation listener lost Redis: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    async def sweep_expiries(self, store: Store, interval: float) -> None:
        """Log and announce keys as they expire (each once, whichever instance sees it)."""
        while True:
            try:
                for key_id, seq in await store.log_expired():
                    self.notify(key_id)
                    await self.publish(key_id, seq, "expired")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("expiry sweep failed: %s", exc)
            await asyncio.sleep(interval)
