"""Concurrent key lookups share one query; a failure or a caller giving up harms no one."""

from __future__ import annotations

import asyncio

import pytest

from authsvc.batch import Batcher


class Source:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.release = asyncio.Event()

    async def fetch(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        return {k: k.upper() for k in keys if k != "missing"}


async def test_lookups_made_in_the_same_turn_share_one_query() -> None:
    source = Source()
    batcher: Batcher[str, str] = Batcher(source.fetch)
    waiting = [asyncio.create_task(batcher.get(k)) for k in ("a", "b", "a", "missing")]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*waiting) == ["A", "B", "A", None]
    assert source.calls == [["a", "b", "missing"]]


async def test_a_full_batch_goes_at_once() -> None:
    source = Source()
    source.release.set()
    batcher: Batcher[str, str] = Batcher(source.fetch, max_batch=2)
    assert await asyncio.gather(*(batcher.get(k) for k in "abcde")) == list("ABCDE")
    assert [len(c) for c in source.calls] == [2, 2, 1]


async def test_a_failed_query_fails_every_lookup_waiting_on_it() -> None:
    source = Source(fail=True)
    batcher: Batcher[str, str] = Batcher(source.fetch)
    waiting = [asyncio.create_task(batcher.get(k)) for k in "ab"]
    await asyncio.sleep(0)
    source.release.set()
    for task in waiting:
        with pytest.raises(RuntimeError):
            await task


async def test_one_caller_giving_up_does_not_cancel_the_others() -> None:
    source = Source()
    batcher: Batcher[str, str] = Batcher(source.fetch)
    quitter = asyncio.create_task(batcher.get("a"))
    stayer = asyncio.create_task(batcher.get("a"))
    await asyncio.sleep(0)
    quitter.cancel()
    source.release.set()
    assert await stayer == "A"
    with pytest.raises(asyncio.CancelledError):
        await quitter
