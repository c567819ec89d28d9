"""Search and export filters, pagination by page or by keyset cursor, and the links."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from services.suppression.entries import comma_list, parse_types
from services.suppression.errors import InvalidRequest
from services.suppression.model import SOURCES
from services.suppression.recipient import valid_list_id

SEARCH_PATH = "/api/v1/suppression-list"
DEFAULT_PER_PAGE = 1000
MAX_PER_PAGE = 10_000
MAX_PAGED_RESULTS = 10_000  # page numbers reach this far; cursors go anywhere
FILTER_NAMES = ("from", "to", "domain", "sources", "types", "description",
                "description_strict", "list_id")


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after (updated, id) in the sort order."""

    updated: datetime
    id: int
    total: int

    def token(self) -> str:
        raw = json.dumps([self.updated.isoformat(), self.id, self.total]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            updated, ident, total = json.loads(raw)
            return cls(datetime.fromisoformat(updated), int(ident), int(total))
        except (ValueError, TypeError, binascii.Error):
            raise InvalidRequest("Invalid cursor",
                                 "Use cursor=initial, then the links of each answer") from None


@dataclass(frozen=True)
class Filters:
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    domain: str | None = None
    sources: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    description: str | None = None
    description_strict: bool = False
    list_id: str | None = None
    ascending: bool = False


@dataclass(frozen=True)
class Search:
    filters: Filters
    per_page: int = DEFAULT_PER_PAGE
    page: int = 1
    cursor_mode: bool = False
    cursor: Cursor | None = None  # None with cursor_mode: the first page
    params: tuple[tuple[str, str], ...] = ()  # the filters as given, for links

    @property
    def offset(self) -> int:
        return 0 if self.cursor_mode else (self.page - 1) * self.per_page


def parse_time(name: str, value: str) -> datetime:
    text = value.strip().replace(" ", "+")  # a raw '+' in a query string reads as a space
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"Invalid {name} date",
                             f"{name} must look like YYYY-MM-DDTHH:mm:ssZ") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_bool(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidRequest(f"Invalid {name}", f"{name} must be true or false")


def parse_int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"Invalid {name}", f"{name} must be an integer") from None
    if not low <= number <= high:
        raise InvalidRequest(f"Invalid {name}", f"{name} must be between {low} and {high:,}")
    return number


def parse_filters(q: Mapping[str, str], now: datetime | None = None) -> Filters:
    for name in ("domain", "description"):  # PostgreSQL text cannot hold NUL
        if "\x00" in (q.get(name) or ""):
            raise InvalidRequest(f"Invalid {name}", f"{name} may not contain a NUL character")
    start = parse_time("from", q["from"]) if q.get("from") else None
    end = parse_time("to", q["to"]) if q.get("to") else (now or datetime.now(UTC))
    if start and start > end:
        raise InvalidRequest("from must be before to")
    sort = (q.get("sort") or "desc").lower()
    if sort not in ("asc", "desc"):
        raise InvalidRequest("Invalid sort", "sort must be asc or desc")
    list_id = q.get("list_id")
    if list_id is not None and list_id != "" and not valid_list_id(list_id):
        raise InvalidRequest("Invalid list_id",
                             "list_id must be 1-255 characters of letters, digits, '-', '_', '.'")
    domain = q.get("domain")
    return Filters(
        updated_from=start,
        updated_to=end,
        domain=domain.strip().lower() if domain else None,
        sources=comma_list(q.get("sources"), SOURCES, "sources"),
        types=parse_types(q.get("types")),
        description=q.get("description") or None,
        description_strict=parse_bool("description_strict", q.get("description_strict")),
        list_id=list_id,
        ascending=sort == "asc",
    )


def parse_paging(q: Mapping[str, str], filters: Filters, params: tuple[tuple[str, str], ...],
                 ) -> Search:
    per_page = DEFAULT_PER_PAGE
    if q.get("per_page"):
        per_page = parse_int("per_page", q["per_page"], 1, MAX_PER_PAGE)
    elif q.get("limit"):  # deprecated: the size of the (first) page
        per_page = parse_int("limit", q["limit"], 1, MAX_PER_PAGE)
    cursor_text = q.get("cursor")
    if cursor_text:  # page is ignored with a cursor
        cursor = None if cursor_text == "initial" else Cursor.parse(cursor_text)
        return Search(filters, per_page, 1, True, cursor, params)
    page = parse_int("page", q["page"], 1, MAX_PAGED_RESULTS) if q.get("page") else 1
    if (page - 1) * per_page >= MAX_PAGED_RESULTS:
        raise InvalidRequest("Page out of range",
                             f"Pages reach the first {MAX_PAGED_RESULTS:,} results; "
                             "use cursor=initial to go further")
    return Search(filters, per_page, page, False, None, params)


def parse_search(q: Mapping[str, str], now: datetime | None = None) -> Search:
    filters = parse_filters(q, now)
    kept = tuple((k, q[k]) for k in (*FILTER_NAMES, "sort") if q.get(k) is not None)
    return parse_paging(q, filters, kept)


def links(search: Search, total: int, shown: int, next_cursor: Cursor | None,
          path: str = SEARCH_PATH) -> list[dict[str, str]]:
    def href(**extra: str | int) -> str:
        pairs = [*search.params, *((k, str(v)) for k, v in extra.items())]
        return f"{path}?{urlencode(pairs)}"

    out: list[dict[str, str]] = []
    if search.cursor_mode:
        out.append({"href": href(cursor="initial", per_page=search.per_page), "rel": "first"})
        if next_cursor is not None:
            out.append({"href": href(cursor=next_cursor.token(), per_page=search.per_page),
                        "rel": "next"})
        return out
    reachable = min(total, MAX_PAGED_RESULTS)
    last = max(1, -(-reachable // search.per_page))
    out.append({"href": href(page=1, per_page=search.per_page), "rel": "first"})
    if search.page > 1:
        out.append({"href": href(page=search.page - 1, per_page=search.per_page),
                    "rel": "previous"})
    if search.page < last:
        out.append({"href": href(page=search.page + 1, per_page=search.per_page),
                    "rel": "next"})
    out.append({"href": href(page=last, per_page=search.per_page), "rel": "last"})
    return out


def with_total(cursor: Cursor | None, total: int) -> Cursor | None:
    return None if cursor is None else replace(cursor, total=total)
