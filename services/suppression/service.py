"""The API's operations, free of HTTP: validate, call the store, raise domain errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from services.suppression.entries import (
    MAX_BULK,
    bulk_entries,
    delete_types,
    parse_types,
    single_entries,
)
from services.suppression.errors import ComplianceLocked, InvalidRequest, NotFound
from services.suppression.model import SUMMARY_KEYS, TYPES, Scope
from services.suppression.recipient import (
    BadRecipient,
    all_plain,
    canonical,
    canonical_fast,
    valid_list_id,
)
from services.suppression.search import (
    MAX_PER_PAGE,
    SEARCH_PATH,
    Cursor,
    Search,
    links,
    parse_int,
    parse_search,
)
from services.suppression.store import Store

UPDATED = {"message": "Suppression List successfully updated"}
NO_RECIPIENT = "Recipient could not be found"


def recipient_or_400(raw: str) -> str:
    try:
        return canonical(raw)
    except BadRecipient as exc:
        raise InvalidRequest("Invalid recipient", str(exc)) from None


class Suppressions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def put_one(self, scope: Scope, raw_recipient: str, body: Any) -> dict[str, Any]:
        entries = single_entries(raw_recipient, body)
        written = await self.store.upsert(scope.account_id, scope.write_subaccount, entries,
                                          refuse_compliance=True)
        if written < 0:
            raise ComplianceLocked("updated")
        return UPDATED

    async def put_bulk(self, scope: Scope, body: Any) -> dict[str, Any]:
        entries = bulk_entries(body)
        await self.store.upsert(scope.account_id, scope.write_subaccount, entries)
        return UPDATED

    async def get_recipient(self, scope: Scope, raw_recipient: str,
                            q: Mapping[str, str]) -> dict[str, Any]:
        recipient = recipient_or_400(raw_recipient)
        records = await self.store.recipient_records(scope, recipient, parse_types(q.get("types")))
        if not records:
            raise NotFound(NO_RECIPIENT, f"No suppression entry for {recipient}")
        # At most (subaccounts x lists x 2) records: paged in memory, the cursor an offset.
        per_page = parse_int("per_page", q["per_page"], 1, MAX_PER_PAGE) \
            if q.get("per_page") else 1000
        cursor = q.get("cursor")
        if cursor and cursor != "initial":
            start = parse_int("cursor", cursor, 0, len(records))
        elif cursor:
            start = 0
        else:
            page = parse_int("page", q["page"], 1, 1_000_000) if q.get("page") else 1
            start = (page - 1) * per_page
        shown = records[start:start + per_page]
        path = f"{SEARCH_PATH}/{recipient}"
        out_links = []
        if start + per_page < len(records):
            nxt = f"cursor={start + per_page}" if cursor else f"page={start // per_page + 2}"
            out_links.append({"href": f"{path}?{nxt}&per_page={per_page}", "rel": "next"})
        return {"results": [r.to_json() for r in shown], "links": out_links,
                "total_count": len(records)}

    async def delete(self, scope: Scope, raw_recipient: str, body: Any,
                     list_id: str | None) -> None:
        recipient = recipient_or_400(raw_recipient)
        types = delete_types(body)
        if list_id and not valid_list_id(list_id):
            raise InvalidRequest("Invalid list_id",
                                 "list_id must be 1-255 characters of letters, digits, "
                                 "'-', '_' or '.'")
        matched, compliance = await self.store.delete(
            scope.account_id, scope.write_subaccount, recipient, types, list_id)
        if compliance:
            raise ComplianceLocked("removed")
        if not matched:
            raise NotFound(NO_RECIPIENT, f"No suppression entry for {recipient}")

    async def search(self, scope: Scope, q: Mapping[str, str]) -> dict[str, Any]:
        search: Search = parse_search(q)
        records, total, exact, more = await self.store.search(scope, search)
        next_cursor = None
        if search.cursor_mode and more and records:
            last = records[-1]
            next_cursor = Cursor(last.updated, last.id, total)
        out = {"results": [r.to_json() for r in records],
               "links": links(search, total, len(records), next_cursor),
               "total_count": total}
        if not exact:  # past store.COUNT_CAP matches: the planner's estimate
            out["total_count_estimated"] = True
        return out

    async def summary(self, scope: Scope) -> dict[str, Any]:
        counts = await self.store.summary(scope)
        out = {key: counts.get(source, 0) for source, key in SUMMARY_KEYS.items()}
        out["total"] = sum(counts.values())
        return {"results": out}

    async def batch_lookup(self, scope: Scope, body: Any) -> bytes:
        """Which of these recipients may not be sent to (of this type, on this list): the
        answer's JSON, as json.dumps would write it (compact, not ASCII-escaped), built
        record by record with the encoder's own string quoting (a batch's 10,000 records
        cost a third of what dicts and dumps did)."""
        if not isinstance(body, dict) or not isinstance(body.get("recipients"), list):
            raise InvalidRequest("recipients must be an array",
                                 'The body must be {"recipients": [...], "type": ...}')
        raw: list[Any] = body["recipients"]
        if len(raw) > MAX_BULK:
            raise InvalidRequest(f"Too many recipients: at most {MAX_BULK:,} per request")
        kind = body.get("type")
        if kind is not None and kind not in TYPES:
            raise InvalidRequest(f"Invalid suppression type '{kind}'",
                                 "type must be transactional or non_transactional")
        list_id = body.get("list_id")
        if list_id is not None and (not isinstance(list_id, str) or not valid_list_id(list_id)):
            raise InvalidRequest("Invalid list_id")
        wanted: list[str] = []
        invalid: list[dict[str, str]] = []
        if all_plain(raw):
            wanted = raw
        else:
            for value in raw:
                try:
                    if not isinstance(value, str):
                        raise BadRecipient("Recipient must be a string")
                    wanted.append(canonical_fast(value))
                except BadRecipient as exc:
                    invalid.append({"recipient": str(value), "reason": str(exc)})
        rows = await self.store.batch_lookup(scope, wanted, (kind,) if kind else (), list_id)
        quote = encode_basestring
        suppressed = ",".join([
            f'{{"recipient":{quote(r[0])},"type":{quote(r[1])},'
            f'"list_id":{quote(r[2]) if r[2] else "null"},"subaccount_id":{int(r[3])},'
            f'"source":{quote(r[4])}}}'
            for r in rows])
        invalid_json = json.dumps(invalid, ensure_ascii=False, separators=(",", ":"))
        return (f'{{"results":{{"checked":{len(wanted)},"suppressed":[{suppressed}],'
                f'"invalid":{invalid_json}}}}}').encode()
