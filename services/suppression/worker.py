"""Import workers: take jobs from the queue in PostgreSQL and merge their rows in batches.

While PostgreSQL merges one batch, the worker parses the next in a thread (one connection
reads the stored chunks, others stage and merge), so parsing and merging overlap. Each batch
is split by recipient into disjoint key ranges, one per merging connection
(SUPPRESSION_IMPORT_MERGERS, default 2), merged side by side: PostgreSQL's merge takes one
CPU per connection, and the index work of one batch is what an import waits for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from portcullis.errors import APIError
from services.suppression.config import Config
from services.suppression.imports import LineBuffer, RowReader, StagedRow, split_by_recipient
from services.suppression.jobstore import JobStore
from services.suppression.store import NOTIFY_CHANNEL

log = logging.getLogger("suppression.worker")
FILL_BYTES = 4 << 20  # keep this much of the file decoded ahead of the parser
IDLE_POLL = 1.0  # seconds between polls when no notification arrives
RECONNECT_DELAY = 1.0


def mergers_from_env() -> int:
    return max(1, int(os.environ.get("SUPPRESSION_IMPORT_MERGERS", "2")))


class Interrupted(Exception):
    """The worker is stopping: the job goes back to the queue for another worker."""


async def merge_batch(job: dict[str, Any], stores: Sequence[JobStore], rows: list[StagedRow],
                      rejects: list[tuple[int, str, str]], progress: dict[str, int],
                      lease_seconds: int) -> None:
    """One batch, split by recipient over the merging connections (one transaction each;
    the first also records the rejects and the progress). Every part is awaited before an
    error is raised, so no connection is left mid-statement."""
    parts = split_by_recipient(rows, len(stores))
    results = await asyncio.gather(
        stores[0].merge(job, parts[0], rejects, progress, lease_seconds),
        *(store.merge(job, part, (), None, lease_seconds)
          for store, part in zip(stores[1:], parts[1:], strict=False) if part),
        return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def process(job: dict[str, Any], jobs: JobStore, reader_conn: asyncpg.Connection,
                  config: Config, stop: asyncio.Event,
                  helpers: Sequence[JobStore] = ()) -> None:
    source = JobStore(reader_conn).chunks(job["id"])
    buffer = LineBuffer()
    rows_reader = RowReader(job["format"], buffer)
    progress = {"bytes_read": 0, "rows_read": 0, "rows_written": 0, "rows_rejected": 0}
    pending: asyncio.Task[None] | None = None
    exhausted = False
    timing = {"parse": 0.0, "wait": 0.0}
    stores = [jobs, *helpers]
    batch_rows = config.import_batch_rows * len(stores)  # import_batch_rows per transaction
    try:
        while not exhausted:
            while not buffer.eof and buffer.buffered < FILL_BYTES:
                chunk = await anext(source, None)
                if chunk is None:
                    buffer.close()
                else:
                    buffer.feed(chunk)
            started = time.perf_counter()
            # Parsing runs in a thread so that the event loop keeps driving the previous
            # batch's merge (several statements) meanwhile.
            rows, rejects, exhausted = await asyncio.to_thread(rows_reader.take, batch_rows)
            parsed = time.perf_counter()
            timing["parse"] += parsed - started
            if pending is not None:
                await pending
                pending = None
            timing["wait"] += time.perf_counter() - parsed
            if stop.is_set():
                raise Interrupted
            progress["rows_read"] = rows_reader.rows_read
            progress["rows_rejected"] += len(rejects)
            progress["rows_written"] = progress["rows_read"] - progress["rows_rejected"]
            progress["bytes_read"] = buffer.fed if exhausted else buffer.consumed
            pending = asyncio.create_task(merge_batch(
                job, stores, rows, rejects, dict(progress), config.import_lease_seconds))
        if pending is not None:
            await pending
            pending = None
        log.info("import %s: %s rows, parsing %.1fs, waiting for merges %.1fs", job["id"],
                 progress["rows_read"], timing["parse"], timing["wait"])
    finally:
        if pending is not None:
            pending.cancel()
        await source.aclose()


async def run_one(config: Config, jobs: JobStore, reader_conn: asyncpg.Connection,
                  stop: asyncio.Event, helpers: Sequence[JobStore] = ()) -> bool:
    """Claim and run one job; False when none was waiting."""
    job = await jobs.claim(config.import_lease_seconds)
    if job is None:
        return False
    log.info("import %s: account %s, %s", job["id"], job["account_id"], job["format"])
    try:
        await process(job, jobs, reader_conn, config, stop, helpers)
    except Interrupted:
        log.info("import %s: stopping; back to the queue", job["id"])
        await jobs.release(job["id"])
    except APIError as exc:
        await jobs.finish(job["id"], exc.entries[0]["message"])
    except (asyncpg.PostgresError, ValueError, UnicodeError) as exc:
        log.exception("import %s failed", job["id"])
        await jobs.finish(job["id"], f"{type(exc).__name__}: {exc}")
    else:
        await jobs.finish(job["id"], None)
    return True


async def pause(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Until a notification, a stop or the timeout, whichever comes first."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def serve(config: Config, stop: asyncio.Event, wake: asyncio.Event,
                mergers: int | None = None) -> None:
    mergers = mergers_from_env() if mergers is None else mergers
    conns = [await asyncpg.connect(config.database_url) for _ in range(2 + mergers)]
    reader_conn, listener, conn, *others = conns
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
        jobs = JobStore(conn)
        helpers = [JobStore(c) for c in others]
        for store in (jobs, *helpers):
            await store.ensure_staging()
        while not stop.is_set():
            if await run_one(config, jobs, reader_conn, stop, helpers):
                continue
            for job_id in await jobs.fail_stalled_uploads(config.upload_stall_seconds):
                log.warning("import %s: upload stalled, abandoned", job_id)
            wake.clear()
            await pause(wake, stop, IDLE_POLL)
    finally:
        for c in conns:
            if not c.is_closed():
                await c.close()


async def run(config: Config, stop: asyncio.Event) -> None:
    """Work until `stop` is set; a lost database connection means reconnecting (a job cut
    short is claimed again once its lease lapses)."""
    wake = asyncio.Event()
    while not stop.is_set():
        try:
            await serve(config, stop, wake)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("worker lost the database; reconnecting")
            await pause(asyncio.Event(), stop, RECONNECT_DELAY)


def main(config: Config) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(config, stop)

    asyncio.run(runner())
