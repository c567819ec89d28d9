"""API keys: made, looked up (through a short in-process cache), updated, rotated, revoked."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authsvc import credentials
from authsvc.batch import Batcher
from authsvc.cache import TTLCache
from authsvc.config import Config
from authsvc.decision import Network, Principal, deny
from authsvc.errors import Invalid, NotFound
from authsvc.events import RevocationEvents
from authsvc.store import KeyRecord, NewKey, Store

GRANT_RE = re.compile(r"^[a-z0-9_.-]{1,64}/[a-z0-9_.-]{1,64}$")
MAX_GRANTS = 64
MAX_IPS = 64
MAX_LABEL = 1024
MAX_GRACE = 30 * 86400
MAX_SHOWN = 80          # characters of a caller's value an error message repeats
ADMIN = "admin"         # `created_by` of keys made through the operators' admin API


@dataclass(frozen=True)
class CachedKey:
    hash: bytes
    revoked: bool
    principal: Principal


# -- validation of what callers send


def cut(value: Any, limit: int = MAX_SHOWN) -> str:
    """A caller's value as an error message may repeat it: never unbounded."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_grants(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_GRANTS:
        raise Invalid(f"`grants` must be a list of 1 to {MAX_GRANTS} grants")
    for grant in value:
        if not isinstance(grant, str) or not GRANT_RE.match(grant):
            raise Invalid(f"grant {cut(grant)!r} is not of the form `<resource>/<action>`")
    return tuple(dict.fromkeys(value))


def check_valid_ips(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_IPS:
        raise Invalid(f"`valid_ips` must be a list of at most {MAX_IPS} networks")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError as exc:
            raise Invalid(f"`valid_ips` entry {cut(item)!r} is not an address or CIDR"
                          ) from exc
    return tuple(out)


def check_label(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL:
        raise Invalid(f"`label` must be a non-empty string of at most {MAX_LABEL} characters")
    return value.strip()


def check_expires_at(value: Any, now: datetime | None = None) -> datetime | None:
    """None (never expires) or a time still to come: a key born expired is a mistake."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid("`expires_at` must be an ISO-8601 time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Invalid("`expires_at` must be an ISO-8601 time") from exc
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= (now or datetime.now(UTC)):
        raise Invalid(f"`expires_at` {when.isoformat()} is already past")
    return when


def check_grace(value: Any, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GRACE:
        raise Invalid(f"`grace_seconds` must be a whole number from 0 to {MAX_GRACE}")
    return value


def principal_of(record: KeyRecord) -> Principal:
    networks: tuple[Network, ...] = tuple(
        ipaddress.ip_network(n, strict=False) for n in record.valid_ips)
    return Principal(
        account_id=record.account_id, subaccount_id=record.subaccount_id, key_id=record.id,
        grants=record.grants, networks=networks,
        expires_at=None if record.expires_at is None else record.expires_at.timestamp(),
        rate_limits=record.rate_limits, change_seq=record.change_seq)


def describe(record: KeyRecord) -> dict[str, Any]:
    """A key as operators and customers see it: never the key, only its first characters."""
    return {
        "id": record.id,
        "label": record.label,
        "account_id": record.account_id,
        "subaccount_id": record.subaccount_id,
        "grants": list(record.grants),
        "valid_ips": list(record.valid_ips),
        "short_key": record.prefix,
        "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
        "revoked": record.revoked_at is not None,
        "rotated_to": record.rotated_to,
        "created_at": record.created_at.isoformat(),
        "created_by": record.created_by,
    }


class KeyService:
    def __init__(self, store: Store, config: Config, events: RevocationEvents) -> None:
        self.store = store
        self.config = config
        self.events = events
        self.cache: TTLCache[bytes, CachedKey] = TTLCache(config.key_cache_ttl,
                                                           config.key_cache_size)
        self._hash_of: dict[str, bytes] = {}
        self._lookups: Batcher[bytes, KeyRecord] = Batcher(store.keys_by_hash)
        events.listeners.append(self.forget)

    # -- the decision's path

    async def principal_for(self, key: str, now: float, fresh: bool = False) -> Principal:
        """The key's principal; `fresh` reads PostgreSQL, not this process's cache: a
        gateway asks so when this instance's answer predates a change it heard of, and key
        management acts on what the key is now, not what it was seconds ago."""
        if not credentials.looks_like_key(key):
            raise deny("key_unknown", "no such API key")
        digest = credentials.key_hash(key)
        entry = None if fresh else self.cache.get(digest)
        if entry is None:
            record = (await self.store.keys_by_hash([digest])).get(digest) if fresh else (
                await self._lookups.get(digest))
            if record is None:
                raise deny("key_unknown", "no such API key")
            entry = CachedKey(record.hash, record.revoked_at is not None, principal_of(record))
            self._remember(entry)
        if not credentials.hashes_match(entry.hash, digest):
            raise deny("key_unknown", "no such API key")
        if entry.revoked:
            raise deny("key_revoked", "this API key was revoked")
        expires = entry.principal.expires_at
        if expires is not None and expires <= now:
            raise deny("key_expired", "this API key has expired")
        return entry.principal

    def _remember(self, entry: CachedKey) -> None:
        if not self.cache.enabled:
            return
        if len(self._hash_of) > 2 * self.config.key_cache_size:
            self._hash_of.clear()
        self.cache.set(entry.hash, entry)
        self._hash_of[entry.principal.key_id] = entry.hash

    def forget(self, key_id: str) -> None:
        digest = self._hash_of.pop(key_id, None)
        if digest is not None:
            self.cache.pop(digest)

    # -- lifecycle

    async def create(self, account_id: int, subaccount_id: int | None, label: str,
                     grants: tuple[str, ...], valid_ips: tuple[str, ...],
                     expires_at: datetime | None,
                     created_by: str = ADMIN) -> tuple[KeyRecord, str]:
        """A new key, within the account's cap. `created_by` is the maker's id; when it is
        an API key, that key must still be live as the new one is inserted."""
        raw, new = self._new(account_id, subaccount_id, label, grants, valid_ips, expires_at,
                             created_by)
        maker_key = created_by if credentials.is_key_id(created_by) else None
        return await self.store.insert_key(new, self.config.max_keys, maker_key), raw

    async def rotate(self, key_id: str, grace_seconds: int,
                     old: KeyRecord | None = None) -> tuple[KeyRecord, str]:
        """A new key like `old` (read now when not given); refused (409) when the key
        changed since `old` was read, so what was checked is what the new key gets."""
        if old is None:
            old = await self.store.key_by_id(key_id)
        if old is None:
            raise NotFound(f"key {key_id}")
        raw, new = self._new(old.account_id, old.subaccount_id, old.label, old.grants,
                             old.valid_ips, old.expires_at, old.created_by)
        record, seq = await self.store.rotate_key(key_id, new, grace_seconds)
        self.forget(key_id)
        await self.events.publish(key_id, seq, "rotated")
        return record, raw

    async def revoke(self, key_id: str, reason: str = "revoked") -> list[str]:
        """Revoke the key and every live key it made, transitively (a leaked key's children
        are its finder's way back in); the ids revoked now."""
        revoked = await self.store.revoke_key(key_id, reason)
        self.forget(key_id)
        for revoked_id, seq, why in revoked:
            self.forget(revoked_id)
            await self.events.publish(revoked_id, seq, why)
        return [revoked_id for revoked_id, _, _ in revoked]

    async def update(self, before: KeyRecord, label: str, grants: tuple[str, ...],
                     valid_ips: tuple[str, ...], expires_at: datetime | None) -> KeyRecord:
        record, seq = await self.store.update_key(before, label, grants, valid_ips, expires_at)
        self.forget(before.id)
        # Gateways drop decisions made under the old grants, networks or expiry.
        await self.events.publish(before.id, seq, "updated")
        return record

    @staticmethod
    def _new(account_id: int, subaccount_id: int | None, label: str,
             grants: tuple[str, ...], valid_ips: tuple[str, ...],
             expires_at: datetime | None, created_by: str | None) -> tuple[str, NewKey]:
        raw = credentials.new_key()
        return raw, NewKey(
            id=credentials.new_key_id(), account_id=account_id, subaccount_id=subaccount_id,
            label=label, prefix=credentials.key_prefix(raw), hash=credentials.key_hash(raw),
            grants=grants, valid_ips=valid_ips, expires_at=expires_at, created_by=created_by)
