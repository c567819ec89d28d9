"""Turning request bodies into entries: SparkPost's fields and its deprecated ones.

An item names its recipient as `recipient` (or the deprecated `email`) and its type as `type`
or the deprecated booleans `transactional` / `non_transactional` (both true: two entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.suppression.errors import InvalidRequest, invalid_entries
from services.suppression.model import (
    ACCOUNT_LEVEL,
    NON_TRANSACTIONAL,
    TRANSACTIONAL,
    TYPES,
    Entry,
)
from services.suppression.recipient import BadRecipient, canonical, valid_list_id

MAX_BULK = 10_000
MAX_DESCRIPTION = 1024
NO_TYPE = "Must supply a suppression type"


class BadEntry(ValueError):
    """Why one item cannot be written."""


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "t")
    if isinstance(value, int | float):
        return bool(value)
    return False


def types_of(item: Mapping[str, Any]) -> list[str]:
    """The types an item asks for, by `type` or by the deprecated booleans."""
    kind = item.get("type")
    if kind not in (None, ""):
        if kind not in TYPES:
            raise BadEntry(f"Invalid suppression type '{kind}': "
                           "must be transactional or non_transactional")
        return [str(kind)]
    found = []
    if truthy(item.get("transactional")):
        found.append(TRANSACTIONAL)
    if truthy(item.get("non_transactional")):
        found.append(NON_TRANSACTIONAL)
    if not found:
        raise BadEntry(NO_TYPE)
    return found


def list_id_of(item: Mapping[str, Any]) -> str:
    value = item.get("list_id")
    if value is None:
        return ACCOUNT_LEVEL
    if not isinstance(value, str) or not valid_list_id(value):
        raise BadEntry("list_id must be 1-255 characters of letters, digits, '-', '_' or '.'")
    return value


def description_of(item: Mapping[str, Any]) -> str:
    value = item.get("description")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEntry("description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise BadEntry(f"description is longer than {MAX_DESCRIPTION} characters")
    return value


def recipient_of(value: Any) -> str:
    if not isinstance(value, str):
        raise BadEntry("Recipient must be a string")
    try:
        return canonical(value)
    except BadRecipient as exc:
        raise BadEntry(str(exc)) from None


def item_entries(recipient: str, item: Mapping[str, Any]) -> list[Entry]:
    """The entries of one item whose recipient is already canonical."""
    list_id = list_id_of(item)
    description = description_of(item)
    return [Entry(recipient, kind, list_id, description) for kind in types_of(item)]


def single_entries(raw_recipient: str, body: Any) -> list[Entry]:
    """PUT /suppression-list/{recipient}."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    try:
        return item_entries(recipient_of(raw_recipient), body)
    except BadEntry as exc:
        raise InvalidRequest(str(exc)) from None


def bulk_entries(body: Any) -> list[Entry]:
    """PUT /suppression-list: every entry valid, or a 400 naming each bad one."""
    if not isinstance(body, dict) or not isinstance(body.get("recipients"), list):
        raise InvalidRequest("recipients must be an array",
                             'The body must be {"recipients": [...]}')
    items: list[Any] = body["recipients"]
    if not items:
        raise InvalidRequest("recipients must not be empty")
    if len(items) > MAX_BULK:
        raise InvalidRequest(f"Too many recipients: at most {MAX_BULK:,} per request",
                             f"{len(items):,} entries were sent")
    problems: list[tuple[str, str]] = []
    found: dict[tuple[str, str, str], Entry] = {}
    for index, item in enumerate(items):
        where = f"recipients[{index}]"
        try:
            if not isinstance(item, dict):
                raise BadEntry("Entry must be an object")
            raw = item.get("recipient", item.get("email"))
            if raw is None:
                raise BadEntry("Entry has no recipient")
            where = f"recipients[{index}] ({raw})" if isinstance(raw, str) else where
            for entry in item_entries(recipient_of(raw), item):
                found[entry.key] = entry  # the last of duplicates wins
        except BadEntry as exc:
            problems.append((where, str(exc)))
    if problems:
        raise invalid_entries(problems)
    return list(found.values())


def delete_types(body: Any) -> tuple[str, ...]:
    """DELETE's optional body {"type": ...}; without it both types go."""
    if body is None or body == {}:
        return TYPES
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    kind = body.get("type")
    if kind is None:
        return TYPES
    if kind not in TYPES:
        raise InvalidRequest(f"Invalid suppression type '{kind}'",
                             "type must be transactional or non_transactional")
    return (str(kind),)


def parse_types(value: str | None) -> tuple[str, ...]:
    """A `types` parameter: a comma list of types."""
    return comma_list(value, TYPES, "types")


def comma_list(value: str | None, allowed: Iterable[str], name: str) -> tuple[str, ...]:
    if value is None or value.strip() == "":
        return ()
    wanted = tuple(v.strip() for v in value.split(",") if v.strip())
    allowed_set = set(allowed)
    bad = [v for v in wanted if v not in allowed_set]
    if bad:
        raise InvalidRequest(f"Invalid {name}: {', '.join(bad)}",
                             f"{name} must be a comma list of: {', '.join(allowed)}")
    return wanted
