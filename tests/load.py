"""A small closed-loop load generator for tests: N concurrent clients for T seconds (or a
fixed number of requests), counting statuses. Bounded in count and time; loopback only."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping

import aiohttp


async def _drive(url: str, headers: Mapping[str, str], clients: int, seconds: float,
                 method: str, warmup: float = 0.0) -> Counter[int]:
    """`warmup`: seconds of load before the `seconds` that are counted (answers that come
    back during the warm-up are not counted)."""
    statuses: Counter[int] = Counter()
    counting_from = time.monotonic() + warmup
    deadline = counting_from + seconds
    conn = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        async def client() -> None:
            while time.monotonic() < deadline:
                try:
                    async with session.request(method, url, headers=dict(headers)) as resp:
                        await resp.read()
                        if time.monotonic() >= counting_from:
                            statuses[resp.status] += 1
                except (TimeoutError, aiohttp.ClientError):
                    statuses[0] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


def drive(url: str, headers: Mapping[str, str], clients: int = 50, seconds: float = 3.0,
          method: str = "GET", warmup: float = 0.0) -> Counter[int]:
    return asyncio.run(_drive(url, headers, clients, seconds, method, warmup))


async def drive_many(targets: list[tuple[str, Mapping[str, str]]], clients: int,
                     seconds: float, warmup: float = 0.0) -> list[Counter[int]]:
    return list(await asyncio.gather(*(_drive(u, h, clients, seconds, "GET", warmup)
                                       for u, h in targets)))
