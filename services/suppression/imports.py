"""Bulk import: the upload (kept in PostgreSQL in chunks) and the parsing of its rows.

Rows are read in batches from a line buffer that is refilled from the stored chunks, so
memory holds a few megabytes whatever the size of the file. A row that cannot be written is
rejected with its line number and the reason; the others are merged (see worker.py).
"""

from __future__ import annotations

import codecs
import csv
import json
from bisect import bisect_right
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from services.suppression.entries import (
    MAX_DESCRIPTION,
    BadEntry,
    item_entries,
    recipient_of,
    truthy,
)
from services.suppression.errors import Unprocessable, UnsupportedMediaType
from services.suppression.model import NON_TRANSACTIONAL, TRANSACTIONAL, Scope, stamp
from services.suppression.recipient import MAX_ADDRESS, PLAIN, domain_of, valid_list_id
from services.suppression.store import Store

FORMATS = ("csv", "ndjson")
RECIPIENT_COLUMNS = ("recipient", "email")
KNOWN_COLUMNS = ("recipient", "email", "type", "transactional", "non_transactional",
                 "description", "list_id")
# A record is never longer than this (recipient 254 + description 1024 + flags, in UTF-8);
# the parser stops a batch while less than this is buffered, unless the file has ended.
MARGIN = 64 * 1024
MAX_RAW = 2048  # of a rejected row's text kept for the report
StagedRow = tuple[int, str, str, str, str, str]  # line, recipient, list, type, domain, desc
Reject = tuple[int, str, str]  # line, reason, raw
TYPE_CELLS: dict[str, tuple[str, ...]] = {
    TRANSACTIONAL: (TRANSACTIONAL,), NON_TRANSACTIONAL: (NON_TRANSACTIONAL,)}


def format_of(content_type: str, param: str | None) -> str:
    if param:
        if param not in FORMATS:
            raise UnsupportedMediaType("format must be csv or ndjson")
        return param
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("text/csv", "application/csv"):
        return "csv"
    if ctype in ("application/x-ndjson", "application/ndjson", "application/jsonl",
                 "application/x-jsonlines"):
        return "ndjson"
    raise UnsupportedMediaType("Send text/csv or application/x-ndjson (or ?format=csv|ndjson)")


def csv_header(line: str) -> list[str]:
    names = next(csv.reader([line.lstrip("\ufeff")]), [])
    header = [n.strip().lower() for n in names]
    if not any(c in header for c in RECIPIENT_COLUMNS):
        raise Unprocessable("CSV header has no recipient column",
                            "The first line must name the columns: recipient (or email), "
                            "type or transactional,non_transactional, description, list_id")
    return header


async def upload(store: Store, scope: Scope, fmt: str, body: AsyncIterator[bytes],
                 chunk_bytes: int) -> int:
    """Store the body in chunks and queue the job; the header is checked before any write."""
    buf = bytearray()
    job_id: int | None = None
    seq = 0
    total = 0
    try:
        async for piece in body:
            buf += piece
            total += len(piece)
            if job_id is None:
                if b"\n" not in buf and len(buf) < MARGIN:
                    continue
                if fmt == "csv":
                    csv_header(bytes(buf.split(b"\n", 1)[0]).decode("utf-8", "replace"))
                job_id = await store.create_job(scope, fmt)
            while len(buf) >= chunk_bytes:
                await store.add_chunk(job_id, seq, bytes(buf[:chunk_bytes]))
                del buf[:chunk_bytes]
                seq += 1
        if job_id is None:
            if not buf.strip():
                raise Unprocessable("The file is empty")
            if fmt == "csv":
                csv_header(bytes(buf).decode("utf-8", "replace"))
            job_id = await store.create_job(scope, fmt)
        if buf:
            await store.add_chunk(job_id, seq, bytes(buf))
        await store.queue_job(job_id, total)
    except BaseException:
        if job_id is not None:
            await store.fail_job(job_id, "The upload did not complete")
        raise
    return job_id


class LineBuffer:
    """Lines decoded from byte chunks; an iterator that csv.reader can resume after it ran
    dry (it does not end: the next feed brings more lines)."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque()
        self.partial = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.buffered = 0  # characters in self.lines
        self.fed = 0  # bytes fed
        self.eof = False
        self.line_no = 0

    def feed(self, data: bytes) -> None:
        self.fed += len(data)
        text = self.partial + self.decoder.decode(data)
        parts = text.split("\n")
        self.partial = parts.pop()
        for part in parts:
            self.lines.append(part + "\n")
            self.buffered += len(part) + 1

    def close(self) -> None:
        self.eof = True
        rest = self.partial + self.decoder.decode(b"", final=True)
        self.partial = ""
        if rest:
            self.lines.append(rest)
            self.buffered += len(rest)

    def ready(self) -> bool:
        """Whether a whole record is surely buffered."""
        return self.eof or self.buffered >= MARGIN

    @property
    def consumed(self) -> int:
        return max(0, self.fed - self.buffered - len(self.partial))

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.lines:
            raise StopIteration
        line = self.lines.popleft()
        self.buffered -= len(line)
        self.line_no += 1
        return line


def staged(line: int, item: Mapping[str, Any], raw_recipient: Any) -> list[StagedRow]:
    recipient = recipient_of(raw_recipient)
    if "\ufffd" in recipient:
        raise BadEntry("Recipient is not valid UTF-8")
    domain = domain_of(recipient)
    return [(line, e.recipient, e.list_id, e.type, domain, e.description)
            for e in item_entries(recipient, item)]


def csv_row(header: list[str], fields: list[str], line: int) -> list[StagedRow]:
    """The staged rows of one CSV row by the general rules; raises BadEntry."""
    if len(fields) > len(header):
        raise BadEntry(f"Row has {len(fields)} fields, the header {len(header)}")
    item = {name: value for name, value in zip(header, fields, strict=False)
            if value != "" and name in KNOWN_COLUMNS}
    return staged(line, item, item.get("recipient", item.get("email", "")))


class CsvLayout:
    """Column positions, for a shortcut through the common row: an address already in
    canonical form, a plain type, a valid list id. Anything else takes the general rules
    (csv_row), which give the same answer slower, and the reasons for rejects."""

    def __init__(self, header: list[str]) -> None:
        def at(name: str) -> int | None:
            return header.index(name) if name in header else None

        self.width = len(header)
        self.recipient = at("recipient") if "recipient" in header else at("email")
        self.type = at("type")
        self.transactional = at("transactional")
        self.non_transactional = at("non_transactional")
        self.list_id = at("list_id")
        self.description = at("description")

    def plain_row(self, fields: list[str], line: int) -> list[StagedRow] | None:
        if len(fields) != self.width or self.recipient is None:
            return None
        recipient = fields[self.recipient]
        if len(recipient) > MAX_ADDRESS or not PLAIN.fullmatch(recipient) \
                or "\ufffd" in recipient:
            return None
        kinds = TYPE_CELLS.get(fields[self.type]) if self.type is not None else None
        if kinds is None:
            if self.type is not None and fields[self.type] != "":
                return None
            kinds = self.flag_types(fields)
            if not kinds:
                return None
        list_id = fields[self.list_id] if self.list_id is not None else ""
        if list_id and not valid_list_id(list_id):
            return None
        description = fields[self.description] if self.description is not None else ""
        if len(description) > MAX_DESCRIPTION:
            return None
        domain = recipient[recipient.index("@") + 1:]
        return [(line, recipient, list_id, kind, domain, description) for kind in kinds]

    def flag_types(self, fields: list[str]) -> tuple[str, ...]:
        found: tuple[str, ...] = ()
        if self.transactional is not None and truthy(fields[self.transactional]):
            found += (TRANSACTIONAL,)
        if self.non_transactional is not None and truthy(fields[self.non_transactional]):
            found += (NON_TRANSACTIONAL,)
        return found


class RowReader:
    """Batches of staged rows and rejects from a LineBuffer, in CSV or NDJSON."""

    def __init__(self, fmt: str, buffer: LineBuffer) -> None:
        self.fmt = fmt
        self.buffer = buffer
        self.reader = csv.reader(buffer)
        self.header: list[str] | None = None
        self.layout = CsvLayout([])
        self.rows_read = 0

    def take(self, limit: int) -> tuple[list[StagedRow], list[Reject], bool]:
        """Up to `limit` rows; the flag says the input is exhausted."""
        rows: list[StagedRow] = []
        rejects: list[Reject] = []
        read = self.csv_rows if self.fmt == "csv" else self.ndjson_rows
        exhausted = read(limit, rows, rejects)
        return rows, rejects, exhausted

    def csv_rows(self, limit: int, rows: list[StagedRow], rejects: list[Reject]) -> bool:
        buffer, reader = self.buffer, self.reader
        taken = 0
        while taken < limit:
            if not buffer.ready():
                return False
            try:
                fields = next(reader)
            except StopIteration:
                return buffer.eof
            except csv.Error as exc:
                rejects.append((buffer.line_no, f"Malformed CSV: {exc}", ""))
                self.rows_read += 1
                taken += 1
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if self.header is None:
                fields[0] = fields[0].lstrip("\ufeff")
                self.header = [f.strip().lower() for f in fields]
                if not any(c in self.header for c in RECIPIENT_COLUMNS):
                    raise Unprocessable("CSV header has no recipient column")
                self.layout = CsvLayout(self.header)
                continue
            self.rows_read += 1
            taken += 1
            line = buffer.line_no
            fast = self.layout.plain_row(fields, line)
            if fast is not None:
                rows.extend(fast)
                continue
            try:
                rows.extend(csv_row(self.header, fields, line))
            except BadEntry as exc:
                rejects.append((line, str(exc), ",".join(fields)[:MAX_RAW]))
        return False

    def ndjson_rows(self, limit: int, rows: list[StagedRow], rejects: list[Reject]) -> bool:
        buffer = self.buffer
        taken = 0
        while taken < limit:
            if not buffer.ready():
                return False
            try:
                text = next(buffer)
            except StopIteration:
                return buffer.eof
            if not text.strip():
                continue
            self.rows_read += 1
            taken += 1
            line = buffer.line_no
            try:
                try:
                    item = json.loads(text)
                except ValueError:
                    raise BadEntry("Line is not valid JSON") from None
                if not isinstance(item, dict):
                    raise BadEntry("Line is not a JSON object")
                raw = item.get("recipient", item.get("email"))
                if raw is None:
                    raise BadEntry("Entry has no recipient")
                rows.extend(staged(line, item, raw))
            except BadEntry as exc:
                rejects.append((line, str(exc), text.rstrip("\r\n")[:MAX_RAW]))
        return False


def split_by_recipient(rows: list[StagedRow], parts: int) -> list[list[StagedRow]]:
    """`parts` lists of the rows by recipient range (pivots from a sample): disjoint keys,
    so they may be merged side by side; each keeps its rows in line order, so the last of
    duplicates still wins. Small batches stay whole."""
    if parts < 2 or len(rows) < 1000 * parts:
        return [rows] + [[] for _ in range(parts - 1)]
    sample = sorted(r[1] for r in rows[::max(1, len(rows) // (100 * parts))])
    pivots = [sample[len(sample) * i // parts] for i in range(1, parts)]
    if parts == 2:
        pivot = pivots[0]
        return [[r for r in rows if r[1] < pivot], [r for r in rows if r[1] >= pivot]]
    out: list[list[StagedRow]] = [[] for _ in range(parts)]
    for r in rows:
        out[bisect_right(pivots, r[1])].append(r)
    return out


def job_json(job: Mapping[str, Any], base: str) -> dict[str, Any]:
    total = int(job["bytes_total"]) or 0
    done = job["state"] == "done"
    progress = 1.0 if done else (round(int(job["bytes_read"]) / total, 4) if total else 0.0)
    out: dict[str, Any] = {
        "id": str(job["id"]),
        "state": job["state"],
        "format": job["format"],
        "subaccount_id": job["subaccount_id"],
        "rows_read": job["rows_read"],
        "rows_written": job["rows_written"],
        "rows_rejected": job["rows_rejected"],
        "bytes_total": job["bytes_total"],
        "bytes_read": job["bytes_total"] if done else job["bytes_read"],
        "progress": progress,
        "attempts": job["attempts"],
        "error": job["error"],
        "created": stamp_or_none(job["created"]),
        "started": stamp_or_none(job["started"]),
        "finished": stamp_or_none(job["finished"]),
        "links": [{"href": f"{base}/imports/{job['id']}", "rel": "self"},
                  {"href": f"{base}/imports/{job['id']}/rejects", "rel": "rejects"}],
    }
    return out


def stamp_or_none(value: Any) -> str | None:
    return None if value is None else stamp(value)
