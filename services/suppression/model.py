"""The domain's nouns: a scope, an entry to write, a stored record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portcullis.context import Context

TRANSACTIONAL = "transactional"
NON_TRANSACTIONAL = "non_transactional"
TYPES = (TRANSACTIONAL, NON_TRANSACTIONAL)
MANUALLY_ADDED = "Manually Added"
COMPLIANCE = "Compliance"
SOURCES = ("Spam Complaint", "List Unsubscribe", "Bounce Rule", "Unsubscribe Link",
           MANUALLY_ADDED, COMPLIANCE)
# Summary keys, as SparkPost names them.
SUMMARY_KEYS = {
    "Compliance": "compliance",
    "Manually Added": "manually_added",
    "Unsubscribe Link": "unsubscribe_link",
    "Bounce Rule": "bounce_rule",
    "List Unsubscribe": "list_unsubscribe",
    "Spam Complaint": "spam_complaint",
}
PRIMARY = 0
ACCOUNT_LEVEL = ""  # list_id of an entry that is not on any list


@dataclass(frozen=True)
class Scope:
    """Whose entries a request sees and writes, from the gateway's context.

    subaccount_id None: reads cover the primary account and every subaccount, writes go to
    the primary account. 0: the primary account only. N: subaccount N only.
    """

    account_id: int
    subaccount_id: int | None

    @classmethod
    def of(cls, ctx: Context) -> Scope:
        return cls(ctx.account_id, ctx.subaccount_id)

    @property
    def write_subaccount(self) -> int:
        return PRIMARY if self.subaccount_id is None else self.subaccount_id


@dataclass(frozen=True)
class Entry:
    """One suppression to write (a recipient in canonical form, one type, one list)."""

    recipient: str
    type: str
    list_id: str = ACCOUNT_LEVEL
    description: str = ""
    source: str = MANUALLY_ADDED

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.recipient, self.list_id, self.type)


@dataclass(frozen=True)
class Record:
    recipient: str
    type: str
    source: str
    description: str
    list_id: str
    subaccount_id: int
    created: datetime
    updated: datetime
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recipient": self.recipient,
            "type": self.type,
            "source": self.source,
            "description": self.description,
        }
        if self.list_id:
            out["list_id"] = self.list_id
        out |= {
            "subaccount_id": self.subaccount_id,
            "created": stamp(self.created),
            "updated": stamp(self.updated),
            "transactional": self.type == TRANSACTIONAL,
            "non_transactional": self.type == NON_TRANSACTIONAL,
        }
        return out


def stamp(value: datetime) -> str:
    """ISO-8601 with an offset, to the second, as SparkPost writes them."""
    return value.isoformat(timespec="seconds")
