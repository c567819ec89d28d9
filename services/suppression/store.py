"""Every SQL statement of the suppression services, by hand, over asyncpg."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from portcullis.db import create_pool
from services.suppression.model import COMPLIANCE, MANUALLY_ADDED, Entry, Record, Scope
from services.suppression.recipient import domain_of
from services.suppression.search import Filters, Search

RECORD_COLUMNS = ("recipient, type, source, description, list_id, subaccount_id, created, "
                  "updated, id")
Output = Callable[[bytes], Coroutine[Any, Any, None]]
Conn = asyncpg.Connection | PoolConnectionProxy
KEY = "(account_id, recipient, subaccount_id, list_id, type)"
COUNT_CAP = 10_000  # search totals are exact up to this many (as far as pages reach)
NOTIFY_CHANNEL = "suppression_imports"



def record_of(row: asyncpg.Record) -> Record:
    return Record(**dict(row))


class Where:
    """A WHERE clause built from parameters, numbered as they are added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        names = []
        for value in values:
            self.args.append(value)
            names.append(f"${len(self.args)}")
        self.parts.append(template.format(*names))

    def sql(self) -> str:
        return " AND ".join(self.parts) or "true"


def scope_where(scope: Scope) -> Where:
    where = Where()
    where.add("account_id = {}", scope.account_id)
    if scope.subaccount_id is not None:
        where.add("subaccount_id = {}", scope.subaccount_id)
    return where


def filter_where(scope: Scope, f: Filters) -> Where:
    where = scope_where(scope)
    if f.updated_from is not None:
        where.add("updated >= {}", f.updated_from)
    if f.updated_to is not None:
        where.add("updated <= {}", f.updated_to)
    if f.domain:
        where.add("domain = {}", f.domain)
    if f.sources:
        where.add("source = ANY({}::text[])", list(f.sources))
        if MANUALLY_ADDED not in f.sources:  # lets the planner use the partial index
            where.parts.append(f"source <> '{MANUALLY_ADDED}'")
    if f.types:
        where.add("type = ANY({}::text[])", list(f.types))
    if f.description:
        if f.description_strict:
            where.add("description = {}", f.description)
        else:
            escaped = (f.description.replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            where.add("description ILIKE {}", f"%{escaped}%")
        # Never true of an empty description either way; saying so lets the planner use the
        # trigram index, which covers only non-empty descriptions (without it the index,
        # which every import pays for, was never used).
        where.parts.append("description <> ''")
    if f.list_id is not None:
        where.add("list_id = {}", f.list_id)
        if f.list_id:
            where.parts.append("list_id <> ''")
    return where


# Positions in a row of RECORD_COLUMNS (the order of Record's fields).
TYPE = 1
SUBACCOUNT = 5
# One query for every recipient an account asked for since the last one went out.
LOOKUP_SQL = f"""SELECT {RECORD_COLUMNS} FROM suppression.entries
                 WHERE account_id = $1 AND recipient = ANY($2::text[])
                 ORDER BY subaccount_id, list_id, type"""
LOOKUPS_IN_FLIGHT = 2
BATCH_SQL = """SELECT recipient, type, list_id, subaccount_id, source
               FROM suppression.entries
               WHERE account_id = $1 AND recipient = ANY(string_to_array($2::text, E'\\n'))
                 AND ($3::bigint IS NULL OR subaccount_id = $3)
                 AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
                 AND ($5::text IS NULL OR list_id IN ($5, ''))"""


# An export runs as long as the client reads: no statement_timeout (the route's send timeout
# and the client bound it).
EXPORT_SETTINGS = ("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                   "SET LOCAL statement_timeout = 0")
CSV_HEADER = b"recipient,type,source,description,list_id,subaccount_id,created,updated\n"
EXPORT_SPLIT_PAGES = 1024  # 8 MB: below, one COPY


class Lookups:
    """Single-recipient lookups, coalesced. A lookup goes out at once while fewer than
    LOOKUPS_IN_FLIGHT queries are out; those that arrive meanwhile wait for one to come
    back and then go out together, one query per account (`recipient = ANY($2)`, the same
    primary-key range scans). Under load a query answers several requests: PostgreSQL's
    per-statement cost and the round trip's system calls are paid once for all of them.
    Idle, nothing waits. Each lookup gets the rows of its recipient, in the query's order
    (subaccount, list, type); the caller filters by scope, as the SQL did before."""

    def __init__(self, pool: asyncpg.Pool, in_flight: int = LOOKUPS_IN_FLIGHT) -> None:
        self.pool = pool
        self.limit = in_flight
        self.running = 0
        self.waiting: dict[int, dict[str, list[asyncio.Future[list[asyncpg.Record]]]]] = {}
        self.tasks: set[asyncio.Future[None]] = set()

    async def rows(self, account_id: int, recipient: str) -> list[asyncpg.Record]:
        fut: asyncio.Future[list[asyncpg.Record]] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(account_id, {}).setdefault(recipient, []).append(fut)
        if self.running < self.limit:
            self.running += 1
            task = asyncio.ensure_future(self.drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await fut

    async def drain(self) -> None:
        try:
            while self.waiting:
                account_id, wanted = next(iter(self.waiting.items()))
                del self.waiting[account_id]
                await self.answer(account_id, wanted)
        finally:
            self.running -= 1

    async def answer(self, account_id: int,
                     wanted: dict[str, list[asyncio.Future[list[asyncpg.Record]]]]) -> None:
        try:
            rows = await self.pool.fetch(LOOKUP_SQL, account_id, list(wanted))
        except Exception as exc:  # each lookup of the query fails as its own query would
            for futs in wanted.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(exc)
            return
        except BaseException:  # cancelled (shutting down)
            for futs in wanted.values():
                for fut in futs:
                    fut.cancel()
            raise
        found: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(row)
        for recipient, futs in wanted.items():
            mine = found.get(recipient, [])
            for fut in futs:
                if not fut.done():
                    fut.set_result(mine)


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.lookups = Lookups(pool)

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 10,
                      statement_timeout_ms: int = 0) -> Store:
        return cls(await create_pool(dsn, min_size, max_size, statement_timeout_ms))

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> bool:
        return bool(await self.pool.fetchval("SELECT true"))

    # --- single entries -------------------------------------------------------------------

    async def upsert(self, account_id: int, subaccount_id: int, entries: Sequence[Entry],
                     *, refuse_compliance: bool = False) -> int:
        """Insert or update entries; Compliance entries are never overwritten. With
        refuse_compliance, nothing is written when one of them is Compliance and -1 is
        returned. Otherwise the number of rows written."""
        cols = ([e.recipient for e in entries], [e.list_id for e in entries],
                [e.type for e in entries], [domain_of(e.recipient) for e in entries],
                [e.source for e in entries], [e.description for e in entries])
        async with self.pool.acquire() as conn, conn.transaction():
            if refuse_compliance:
                locked = await conn.fetchval(
                    """SELECT count(*) FROM suppression.entries e
                       JOIN unnest($3::text[], $4::text[], $5::text[]) AS u(r, l, t)
                         ON e.recipient = u.r AND e.list_id = u.l AND e.type = u.t
                       WHERE e.account_id = $1 AND e.subaccount_id = $2 AND e.source = $6""",
                    account_id, subaccount_id, cols[0], cols[1], cols[2], COMPLIANCE)
                if locked:
                    return -1
            status: str = await conn.execute(
                f"""INSERT INTO suppression.entries AS e
                        (account_id, subaccount_id, recipient, list_id, type, domain, source,
                         description)
                    SELECT $1, $2, u.r, u.l, u.t, u.d, u.s, u.x
                    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                $8::text[]) AS u(r, l, t, d, s, x)
                    ON CONFLICT {KEY} DO UPDATE
                    SET source = EXCLUDED.source, description = EXCLUDED.description,
                        updated = now()
                    WHERE e.source <> '{COMPLIANCE}'""",
                account_id, subaccount_id, *cols)
        return int(status.rsplit(" ", 1)[-1])

    async def recipient_records(self, scope: Scope, recipient: str,
                                types: Sequence[str] = ()) -> list[Record]:
        """Every entry of one recipient in scope (of these types, when named), ordered by
        subaccount, list and type."""
        rows = await self.lookups.rows(scope.account_id, recipient)
        sub = scope.subaccount_id
        return [Record(*r) for r in rows
                if (sub is None or r[SUBACCOUNT] == sub) and (not types or r[TYPE] in types)]

    async def delete(self, account_id: int, subaccount_id: int, recipient: str,
                     types: Sequence[str], list_id: str | None) -> tuple[int, int]:
        """Delete the matching entries unless one is Compliance.
        Returns (matched, compliance): nothing is deleted when compliance > 0."""
        row = await self.pool.fetchrow(
            f"""WITH matched AS (
                    SELECT recipient, subaccount_id, list_id, type, source
                    FROM suppression.entries
                    WHERE account_id = $1 AND recipient = $2 AND subaccount_id = $3
                      AND type = ANY($4::text[]) AND ($5::text IS NULL OR list_id = $5)
                    FOR UPDATE),
                gone AS (
                    DELETE FROM suppression.entries e USING matched m
                    WHERE e.account_id = $1 AND e.recipient = m.recipient
                      AND e.subaccount_id = m.subaccount_id AND e.list_id = m.list_id
                      AND e.type = m.type
                      AND NOT EXISTS (SELECT 1 FROM matched WHERE source = '{COMPLIANCE}')
                    RETURNING 1)
                SELECT (SELECT count(*) FROM matched) AS matched,
                       (SELECT count(*) FROM matched WHERE source = '{COMPLIANCE}')
                           AS compliance,
                       (SELECT count(*) FROM gone) AS gone""",
            account_id, recipient, subaccount_id, list(types), list_id)
        assert row is not None
        return int(row["matched"]), int(row["compliance"])

    # --- the sending path -----------------------------------------------------------------

    async def batch_lookup(self, scope: Scope, recipients: Sequence[str],
                           types: Sequence[str], list_id: str | None) -> list[asyncpg.Record]:
        """The entries of these recipients in scope (of these types, on this list or the
        account level).

        The generic plan, always: it probes the primary key once per recipient. A custom
        plan, which PostgreSQL makes for a statement's first five runs on each connection,
        sees 10,000 recipients and scans the account's whole partition in parallel instead,
        at five times the CPU. The recipients go sorted and without duplicates (the answer
        is the same), so the index scan's sort of the array finds it already in order, and
        as one text of lines (no recipient holds a line break): encoding 10,000 array
        elements one by one cost asyncpg more than the rest of the query's client side."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            return await conn.fetch(BATCH_SQL, scope.account_id,
                                    "\n".join(sorted(set(recipients))),
                                    scope.subaccount_id, list(types), list_id)

    # --- search and summary ---------------------------------------------------------------

    async def search(self, scope: Scope, search: Search) -> tuple[list[Record], int, bool,
                                                                  bool]:
        """One page, the total of the filtered set, whether it is exact, whether more follow.

        The total is counted up to COUNT_CAP matches; past that the planner's estimate
        stands in (counting millions of index entries for every first page would cost
        seconds). Cursor pages carry the first page's total."""
        where = filter_where(scope, search.filters)
        matching = f"SELECT 1 FROM suppression.entries WHERE {where.sql()}"
        count_args = list(where.args)
        desc = not search.filters.ascending
        cursor = search.cursor
        if cursor is not None:
            where.add("(updated, id) < ({}, {})" if desc else "(updated, id) > ({}, {})",
                      cursor.updated, cursor.id)
        order = "updated DESC, id DESC" if desc else "updated, id"
        page_sql = (f"SELECT {RECORD_COLUMNS} FROM suppression.entries WHERE {where.sql()} "
                    f"ORDER BY {order} LIMIT {search.per_page + 1} OFFSET {search.offset}")
        # No snapshot shared by the page and the count: a write between them moves the total
        # by the same amount a write just after the answer would; two round trips saved.
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(page_sql, *where.args)
            exact = True
            if cursor is not None:
                total = cursor.total
            else:
                total = int(await conn.fetchval(
                    f"SELECT count(*) FROM ({matching} LIMIT {COUNT_CAP + 1}) AS m",
                    *count_args))
                if total > COUNT_CAP:
                    plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {matching}",
                                                          *count_args))
                    total = max(total, int(plan[0]["Plan"]["Plan Rows"]))
                    exact = False
        more = len(rows) > search.per_page
        return [record_of(r) for r in rows[: search.per_page]], total, exact, more

    async def summary(self, scope: Scope) -> dict[str, int]:
        where = scope_where(scope)
        rows = await self.pool.fetch(
            f"SELECT source, count(*) AS n FROM suppression.entries WHERE {where.sql()} "
            "GROUP BY source", *where.args)
        return {r["source"]: int(r["n"]) for r in rows}

    # --- export -------------------------------------------------------------------------------

    async def export(self, scope: Scope, filters: Filters, fmt: str, ordered: bool,
                     output: Output) -> None:
        """COPY the filtered set out in one REPEATABLE READ snapshot; `output` gets chunks."""
        where = filter_where(scope, filters)
        order = ""
        if ordered:
            order = "ORDER BY updated" + ("" if filters.ascending else " DESC")
            order += ", id" + ("" if filters.ascending else " DESC")
        # ISO-8601 to the second in UTC ('2026-01-02T03:04:05+00:00'): the ISO text output
        # of the stamp truncated to the second, with TimeZone UTC and DateStyle ISO set for
        # the transaction below; a third of to_char's cost.
        stamp = "(replace(date_trunc('second', {})::text, ' ', 'T') || ':00')"
        if fmt == "csv":
            # suppression.csv_safe(), inlined, testing the first character's code rather
            # than making a string of it with left() for every cell: 61 '=', 43 '+',
            # 45 '-', 64 '@', 9 tab, 13 carriage return.
            safe = ("CASE WHEN ascii({0}) IN (61, 43, 45, 64, 9, 13) THEN '''' || {0} "
                    "ELSE {0} END")
            select = (f"SELECT {safe.format('recipient')} AS recipient, type, source, "
                      f"{safe.format('description')} AS description, list_id, subaccount_id, "
                      f"{stamp.format('created')} AS created, {stamp.format('updated')} AS updated"
                      f" FROM suppression.entries WHERE {where.sql()} {order}")
            quote, delimiter, header = '"', ",", True
        else:
            # Built by concatenation (twice as fast as json_build_object): type, source and
            # list_id come from closed alphabets; recipient and description go through
            # to_json, which quotes and escapes them.
            select = (f"""SELECT '{{"recipient":' || to_json(recipient)
                    || ',"type":"' || type || '","source":"' || source
                    || '","description":' || to_json(description)
                    || ',"list_id":' || CASE WHEN list_id = '' THEN 'null'
                                             ELSE '"' || list_id || '"' END
                    || ',"subaccount_id":' || subaccount_id
                    || ',"created":"' || {stamp.format('created')}
                    || '","updated":"' || {stamp.format('updated')} || '"}}'
                FROM suppression.entries WHERE {where.sql()} {order}""")
            # JSON text never holds raw control characters, so CSV mode with \x01 as the
            # quote and \x02 as the delimiter writes each object as it is, one a line.
            quote, delimiter, header = "\x01", "\x02", False
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            await conn.execute(EXPORT_SETTINGS)
            half = None if ordered else await self.export_split(conn, scope.account_id)
            if half is None:
                await conn.copy_from_query(select, *where.args, output=output, format="csv",
                                           header=header, quote=quote, delimiter=delimiter)
                return
            # Unordered and big enough: the two halves of the account's partition, by page,
            # COPY at once over two connections in the same snapshot (two backends, two
            # CPUs: formatting rows is what limits an export). PostgreSQL sends a row per
            # CopyData message and asyncpg hands over whole messages, so the two streams
            # interleave between rows. The header goes first, here.
            if header:
                await output(CSV_HEADER)
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            parts = [f"{select} AND ctid < '({half},0)'::tid",
                     f"{select} AND ctid >= '({half},0)'::tid"]

            async def copy(c: Conn, sql: str) -> None:
                await c.copy_from_query(sql, *where.args, output=output, format="csv",
                                        quote=quote, delimiter=delimiter)

            try:
                other = await self.pool.acquire(timeout=0.1)
            except TimeoutError:  # the pool is busy: both halves here, one after the other
                for sql in parts:
                    await copy(conn, sql)
                return
            try:
                async with other.transaction(isolation="repeatable_read", readonly=True):
                    await other.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'; "
                                        f"{EXPORT_SETTINGS}")
                    both = [asyncio.ensure_future(copy(conn, parts[0])),
                            asyncio.ensure_future(copy(other, parts[1]))]
                    try:
                        await asyncio.gather(*both)
                    finally:  # one failed (or the client left): the other stops too
                        for task in both:
                            task.cancel()
                        await asyncio.gather(*both, return_exceptions=True)
            finally:
                await self.pool.release(other)

    async def export_split(self, conn: Conn, account_id: int) -> int | None:
        """The page that splits the account's partition in two, or None when it is too small
        to be worth a second connection."""
        table = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM suppression.entries WHERE account_id = $1 "
            "LIMIT 1", account_id)
        if table is None:
            return None
        pages = int(await conn.fetchval(
            "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int",
            table))
        return pages // 2 if pages >= EXPORT_SPLIT_PAGES else None

    # --- import jobs -------------------------------------------------------------------------

    async def create_job(self, scope: Scope, fmt: str) -> int:
        return int(await self.pool.fetchval(
            """INSERT INTO suppression.import_jobs (account_id, subaccount_id, format)
               VALUES ($1, $2, $3) RETURNING id""",
            scope.account_id, scope.write_subaccount, fmt))

    async def add_chunk(self, job_id: int, seq: int, data: bytes) -> None:
        await self.pool.execute(
            """WITH chunk AS (
                   INSERT INTO suppression.import_chunks (job_id, seq, data)
                   VALUES ($1, $2, $3))
               UPDATE suppression.import_jobs SET touched = now() WHERE id = $1""",
            job_id, seq, data)

    async def queue_job(self, job_id: int, bytes_total: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE suppression.import_jobs
                   SET state = 'queued', queued = now(), bytes_total = $2 WHERE id = $1""",
                job_id, bytes_total)
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    async def fail_job(self, job_id: int, error: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE suppression.import_jobs
                   SET state = 'failed', error = $2, finished = now(), lease_until = NULL
                   WHERE id = $1""", job_id, error)
            await conn.execute("DELETE FROM suppression.import_chunks WHERE job_id = $1",
                               job_id)

    async def cancel_job(self, scope: Scope, job_id: int) -> str | None:
        """Cancel a queued job; returns the job's state before (None: no such job)."""
        where = scope_where(scope)
        where.add("id = {}", job_id)
        async with self.pool.acquire() as conn, conn.transaction():
            state = await conn.fetchval(
                f"SELECT state FROM suppression.import_jobs WHERE {where.sql()} FOR UPDATE",
                *where.args)
            if state == "queued":
                await conn.execute(
                    """UPDATE suppression.import_jobs
                       SET state = 'cancelled', finished = now() WHERE id = $1""", job_id)
                await conn.execute("DELETE FROM suppression.import_chunks WHERE job_id = $1",
                                   job_id)
        return None if state is None else str(state)

    async def job(self, scope: Scope, job_id: int) -> dict[str, Any] | None:
        where = scope_where(scope)
        where.add("id = {}", job_id)
        row = await self.pool.fetchrow(
            f"SELECT * FROM suppression.import_jobs WHERE {where.sql()}", *where.args)
        return None if row is None else dict(row)

    async def jobs(self, scope: Scope, limit: int) -> list[dict[str, Any]]:
        where = scope_where(scope)
        rows = await self.pool.fetch(
            f"SELECT * FROM suppression.import_jobs WHERE {where.sql()} "
            f"ORDER BY id DESC LIMIT {int(limit)}", *where.args)
        return [dict(r) for r in rows]

    async def export_rejects(self, job_id: int,
                             output: Output) -> None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                 readonly=True):
            await conn.copy_from_query(
                "SELECT line, reason, suppression.csv_safe(raw) AS row "
                "FROM suppression.import_rejects WHERE job_id = $1 ORDER BY line",
                job_id, output=output, format="csv", header=True)
