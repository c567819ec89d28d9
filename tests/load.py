"""A small closed-loop load generator for tests: N concurrent clients for T seconds (or a
fixed number of requests), counting statuses. Bounded in count and time; loopback only."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping

import aiohttp


async def _drive(url: str, headers: Mapping[str, str], clients: int, seconds: float,
                 method: str, warmup: float = 0.0, upstream_clock: bool = False) -> Counter[int]:
    """`warmup`: seconds of load before the `seconds` that are counted (answers that come
    back during the warm-up are not counted). `upstream_clock`: a 200 counts when the echo
    upstream (its JSON `t`, the same monotonic clock as ours) saw it inside the window, not
    when this client read it: on a loaded machine the client may read answers a good part
    of a second late, and a rate would then be counted over a longer window than `seconds`."""
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
                        body = await resp.read()
                        if upstream_clock and resp.status == 200:
                            seen = float(json.loads(body)["t"])
                            if counting_from <= seen < deadline:
                                statuses[200] += 1
                        elif time.monotonic() >= counting_from:
                            statuses[resp.status] += 1
                except (TimeoutError, aiohttp.ClientError):
                    statuses[0] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


def drive(url: str, headers: Mapping[str, str], clients: int = 50, seconds: float = 3.0,
          method: str = "GET", warmup: float = 0.0, upstream_clock: bool = False
          ) -> Counter[int]:
    return asyncio.run(_drive(url, headers, clients, seconds, method, warmup, upstream_clock))


async def drive_many(targets: list[tuple[str, Mapping[str, str]]], clients: int,
                     seconds: float, warmup: float = 0.0, upstream_clock: bool = False
                     ) -> list[Counter[int]]:
    return list(await asyncio.gather(*(_drive(u, h, clients, seconds, "GET", warmup,
                                              upstream_clock) for u, h in targets)))
