"""The import worker's SQL: claiming jobs, reading their chunks, merging batches."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import asyncpg

from services.suppression.model import COMPLIANCE
from services.suppression.store import KEY, NOTIFY_CHANNEL

STAGING_COLUMNS = ("line", "recipient", "list_id", "type", "domain", "description")


class JobStore:
    """The worker's side of the queue, on one dedicated connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim(self, lease_seconds: int) -> dict[str, Any] | None:
        """Take the first runnable job in queue order: queued, or running with a lapsed lease
        (its worker died), with no earlier unfinished job of the same account (an account's
        jobs run one at a time, in the order their uploads completed)."""
        async with self.conn.transaction():
            row = await self.conn.fetchrow(
                """UPDATE suppression.import_jobs j
                   SET state = 'running', attempts = attempts + 1, started = now(),
                       lease_until = now() + make_interval(secs => $1),
                       rows_read = 0, rows_written = 0, rows_rejected = 0, bytes_read = 0
                   WHERE j.id = (
                       SELECT c.id FROM suppression.import_jobs c
                       WHERE (c.state = 'queued'
                              OR (c.state = 'running' AND c.lease_until < now()))
                         AND NOT EXISTS (
                             SELECT 1 FROM suppression.import_jobs o
                             WHERE o.account_id = c.account_id
                               AND (o.queued, o.id) < (c.queued, c.id)
                               AND o.state IN ('queued', 'running'))
                       ORDER BY c.queued, c.id
                       FOR UPDATE SKIP LOCKED
                       LIMIT 1)
                   RETURNING *""", float(lease_seconds))
            if row is None:
                return None
            await self.conn.execute(
                "DELETE FROM suppression.import_rejects WHERE job_id = $1", row["id"])
        return dict(row)

    async def fail_stalled_uploads(self, idle_seconds: int) -> list[int]:
        """Fail uploads that made no progress for idle_seconds; free their chunks."""
        async with self.conn.transaction():
            rows = await self.conn.fetch(
                """UPDATE suppression.import_jobs
                   SET state = 'failed', error = 'The upload stalled and was abandoned',
                       finished = now()
                   WHERE state = 'uploading'
                     AND touched < now() - make_interval(secs => $1)
                   RETURNING id""", float(idle_seconds))
            ids = [int(r["id"]) for r in rows]
            if ids:
                await self.conn.execute(
                    "DELETE FROM suppression.import_chunks WHERE job_id = ANY($1::bigint[])",
                    ids)
        return ids

    async def chunks(self, job_id: int, batch: int = 4) -> AsyncGenerator[bytes, None]:
        seq = -1
        while True:
            rows = await self.conn.fetch(
                """SELECT seq, data FROM suppression.import_chunks
                   WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
                job_id, seq, batch)
            if not rows:
                return
            for row in rows:
                seq = row["seq"]
                yield bytes(row["data"])

    async def ensure_staging(self) -> None:
        await self.conn.execute(
            """CREATE TEMP TABLE IF NOT EXISTS import_staging (
                   line bigint, recipient text, list_id text, type text, domain text,
                   description text)""")

    async def merge(self, job: dict[str, Any], rows: Sequence[tuple[Any, ...]],
                    rejects: Sequence[tuple[int, str, str]], progress: dict[str, int] | None,
                    lease_seconds: int) -> None:
        """One batch (or one recipient range of it), in one transaction: stage by COPY,
        merge, record rejects and, given `progress`, the job's counters and lease.
        Unchanged rows are not rewritten, so a re-run converges without churn."""
        async with self.conn.transaction():
            if rows:
                await self.conn.copy_records_to_table(
                    "import_staging", records=rows, columns=STAGING_COLUMNS)
                await self.conn.execute(
                    f"""INSERT INTO suppression.entries AS e
                            (account_id, subaccount_id, recipient, list_id, type, domain,
                             source, description)
                        SELECT DISTINCT ON (recipient, list_id, type)
                               $1::bigint, $2::bigint, recipient, list_id, type, domain,
                               'Manually Added', description
                        FROM import_staging
                        ORDER BY recipient, list_id, type, line DESC
                        ON CONFLICT {KEY} DO UPDATE
                        SET source = EXCLUDED.source, description = EXCLUDED.description,
                            updated = now()
                        WHERE e.source <> '{COMPLIANCE}'
                          AND (e.source, e.description)
                              IS DISTINCT FROM (EXCLUDED.source, EXCLUDED.description)""",
                    job["account_id"], job["subaccount_id"])
                await self.conn.execute("TRUNCATE import_staging")
            if rejects:
                await self.conn.copy_records_to_table(
                    "import_rejects", schema_name="suppression",
                    records=[(job["id"], *r) for r in rejects],
                    columns=("job_id", "line", "reason", "raw"))
            if progress is not None:
                await self.conn.execute(
                    """UPDATE suppression.import_jobs
                       SET bytes_read = $2, rows_read = $3, rows_written = $4,
                           rows_rejected = $5, lease_until = now() + make_interval(secs => $6)
                       WHERE id = $1""",
                    job["id"], progress["bytes_read"], progress["rows_read"],
                    progress["rows_written"], progress["rows_rejected"], float(lease_seconds))

    async def release(self, job_id: int) -> None:
        """Put a claimed job back in the queue, in its place (a stopping worker)."""
        await self.conn.execute(
            """UPDATE suppression.import_jobs SET state = 'queued', lease_until = NULL
               WHERE id = $1 AND state = 'running'""", job_id)
        await self.conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    async def finish(self, job_id: int, error: str | None) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                """UPDATE suppression.import_jobs
                   SET state = $2, error = $3, finished = now(), lease_until = NULL
                   WHERE id = $1""", job_id, "failed" if error else "done", error)
            await self.conn.execute("DELETE FROM suppression.import_chunks WHERE job_id = $1",
                                    job_id)
