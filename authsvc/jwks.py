"""Issuers' public keys fetched from their JWKS URLs, cached; an unknown `kid` causes at
most one refetch per interval, so forged kids cannot make us hammer the issuer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

log = logging.getLogger("authsvc.jwks")
MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """The JWKS could not be fetched and no copy is at hand."""


def key_set(data: Any) -> dict[str | None, jwt.PyJWK]:
    """kid -> key, for the usable keys of a JWK set (others are skipped)."""
    if not isinstance(data, dict):
        raise ValueError("a JWK set is a JSON object with `keys`")
    keys = jwt.PyJWKSet.from_dict(data).keys
    return {k.key_id: k for k in keys if k.public_key_use in (None, "sig")}


def pick(keys: dict[str | None, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None:
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


@dataclass
class Fetched:
    keys: dict[str | None, jwt.PyJWK]
    fetched_at: float


class JwksCache:
    def __init__(self, ttl: float, refetch_interval: float, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self.clock = clock
        self._sets: dict[str, Fetched] = {}
        self._attempted: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def key(self, url: str, kid: str | None) -> jwt.PyJWK | None:
        fetched = self._sets.get(url)
        if fetched is None or self.clock() - fetched.fetched_at >= self.ttl:
            fetched = await self._refresh(url)
        found = pick(fetched.keys, kid)
        if found is None and self._may_refetch(url):
            found = pick((await self._refresh(url)).keys, kid)
        return found

    def _may_refetch(self, url: str) -> bool:
        last = self._attempted.get(url)
        return last is None or self.clock() - last >= self.refetch_interval

    async def _refresh(self, url: str) -> Fetched:
        lock = self._locks.setdefault(url, asyncio.Lock())
        started = self.clock()
        async with lock:
            current = self._sets.get(url)
            # Someone refreshed while we waited: use theirs.
            if current is not None and current.fetched_at >= started:
                return current
            if current is not None and not self._may_refetch(url):
                return current
            self._attempted[url] = self.clock()
            try:
                keys = key_set(await self._get(url))
            except Exception as exc:
                log.warning("JWKS %s unavailable: %s", url, exc)
                if current is not None:
                    return current  # keep the old keys rather than refuse every token
                raise JwksUnavailable(url) from exc
            fresh = Fetched(keys, self.clock())
            self._sets[url] = fresh
            return fresh

    async def _get(self, url: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        async with self._session.get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise ValueError(f"status {resp.status}")
            body = await resp.content.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("JWKS over 256 KB")
            return json.loads(body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
