"""PostgreSQL access for schema `auth`: hand-written SQL over an asyncpg pool."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from authsvc.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from portcullis.db import create_pool


@dataclass(frozen=True)
class KeyRecord:
    id: str
    account_id: int
    subaccount_id: int | None
    label: str
    prefix: str
    hash: bytes
    grants: tuple[str, ...]
    valid_ips: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_to: str | None
    created_at: datetime
    rate_limits: list[dict[str, Any]] | None
    created_by: str | None   # a key id, `jwt:<issuer>:<sub>`, `admin`; None: unknown
    change_seq: int = 0  # the seq of the key's last entry in auth.revocations, as read


@dataclass(frozen=True)
class IssuerRecord:
    id: int
    name: str
    issuer: str
    account_id: int
    audience: str | None
    algorithms: tuple[str, ...]
    secret: str | None
    jwks: dict[str, Any] | None
    jwks_url: str | None
    subaccount_claim: str
    grants_claim: str
    allowed_grants: tuple[str, ...] | None
    rate_limits: list[dict[str, Any]] | None


Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# change_seq is read in the same snapshot as the key: an answer made from this row is as new
# as the log up to that seq, whichever code path logged the change.
KEY_COLUMNS = """k.id, k.account_id, k.subaccount_id, k.label, k.prefix, k.hash, k.grants,
    k.valid_ips, k.expires_at, k.revoked_at, k.rotated_to, k.created_at, a.rate_limits,
    k.created_by,
    coalesce((SELECT max(r.seq) FROM auth.revocations r WHERE r.key_id = k.id), 0)
        AS change_seq"""

ISSUER_COLUMNS = """i.id, i.name, i.issuer, i.account_id, i.audience, i.algorithms, i.secret,
    i.jwks, i.jwks_url, i.subaccount_claim, i.grants_claim, i.allowed_grants, a.rate_limits"""


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


def _key(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        id=row["id"], account_id=row["account_id"], subaccount_id=row["subaccount_id"],
        label=row["label"], prefix=row["prefix"], hash=bytes(row["hash"]),
        grants=tuple(row["grants"]), valid_ips=tuple(row["valid_ips"]),
        expires_at=row["expires_at"], revoked_at=row["revoked_at"],
        rotated_to=row["rotated_to"], created_at=row["created_at"],
        rate_limits=_json(row["rate_limits"]), created_by=row["created_by"],
        change_seq=int(row["change_seq"]))


def _issuer(row: asyncpg.Record) -> IssuerRecord:
    allowed = row["allowed_grants"]
    return IssuerRecord(
        id=row["id"], name=row["name"], issuer=row["issuer"], account_id=row["account_id"],
        audience=row["audience"], algorithms=tuple(row["algorithms"]), secret=row["secret"],
        jwks=_json(row["jwks"]), jwks_url=row["jwks_url"],
        subaccount_claim=row["subaccount_claim"], grants_claim=row["grants_claim"],
        allowed_grants=None if allowed is None else tuple(allowed),
        rate_limits=_json(row["rate_limits"]))


@dataclass(frozen=True)
class NewKey:
    id: str
    account_id: int
    subaccount_id: int | None
    label: str
    prefix: str
    hash: bytes
    grants: tuple[str, ...]
    valid_ips: tuple[str, ...]
    expires_at: datetime | None
    created_by: str | None


# Live descendants of $1 (the keys it made, transitively) revoked and logged, in one
# statement. The walk goes through keys already dead: what a dead key made is still its.
REVOKE_DESCENDANTS = """
WITH RECURSIVE tree (id) AS (
    SELECT id FROM auth.api_keys WHERE created_by = $1
    UNION
    SELECT k.id FROM auth.api_keys k JOIN tree t ON k.created_by = t.id
), revoked AS (
    UPDATE auth.api_keys k SET revoked_at = now()
    FROM tree t
    WHERE k.id = t.id AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now())
    RETURNING k.id
)
INSERT INTO auth.revocations (key_id, reason)
SELECT id, 'parent_revoked' FROM revoked ORDER BY id
RETURNING key_id, seq"""


def refuse_if_dead(key_id: str, row: asyncpg.Record | None) -> asyncpg.Record:
    """The key's row; 404 for no such key, 409 for one revoked, expired or rotated (none can
    change)."""
    if row is None:
        raise NotFound(f"key {key_id}")
    if row["revoked_at"] is not None:
        raise Conflict(f"key {key_id} is revoked")
    if row["expired"]:
        raise Conflict(f"key {key_id} has expired")
    if row["rotated_to"] is not None:
        raise Conflict(f"key {key_id} was rotated to {row['rotated_to']}: change that one")
    return row


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 10,
                      statement_timeout_ms: int = 0) -> Store:
        return cls(await create_pool(dsn, min_size, max_size, statement_timeout_ms))

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # -- accounts and subaccounts

    async def create_account(self, name: str, rate_limits: list[dict[str, Any]] | None,
                             max_keys: int | None = None) -> dict[str, Any]:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO auth.accounts (name, rate_limits, max_keys)"
                " VALUES ($1, $2::jsonb, $3) RETURNING id, name, max_keys",
                name, None if rate_limits is None else json.dumps(rate_limits), max_keys)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"an account named {name!r} exists") from exc
        assert row is not None
        return dict(row)

    async def create_subaccount(self, account_id: int, name: str) -> dict[str, Any]:
        try:
            row = await self.pool.fetchrow(
                "INSERT INTO auth.subaccounts (account_id, name) VALUES ($1, $2)"
                " RETURNING id, account_id, name", account_id, name)
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"account {account_id}") from exc
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"account {account_id} has a subaccount named {name!r}") from exc
        assert row is not None
        return dict(row)

    async def subaccount_exists(self, account_id: int, subaccount_id: int) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM auth.subaccounts WHERE account_id = $1 AND id = $2",
            account_id, subaccount_id)
        return found is not None

    # -- keys

    async def insert_key(self, key: NewKey, max_keys: int,
                         maker_key: str | None = None) -> KeyRecord:
        """Insert a new key unless the account already holds its cap of live keys (the
        account's `max_keys`, else `max_keys`). `maker_key`, the API key making it, must
        still be live: it is locked, so a revocation running now either sees the new key
        as its descendant or makes this insert fail."""
        async with self.pool.acquire() as conn, conn.transaction():
            # The account row's lock serialises creations in one account: the count
            # below cannot be overtaken by a concurrent insert. NO KEY UPDATE, not UPDATE:
            # it must not block the foreign-key checks (KEY SHARE) of a rotation's insert,
            # which may hold the very key this insert locks next (a deadlock).
            cap = await conn.fetchrow(
                "SELECT coalesce(max_keys, $2) AS cap FROM auth.accounts WHERE id = $1"
                " FOR NO KEY UPDATE", key.account_id, max_keys)
            if cap is None:
                raise Invalid(f"account {key.account_id} does not exist")
            if maker_key is not None:
                maker = await conn.fetchrow(
                    "SELECT revoked_at, expires_at <= now() AS expired FROM auth.api_keys"
                    " WHERE id = $1 FOR SHARE", maker_key)
                if maker is None or maker["revoked_at"] is not None or maker["expired"]:
                    raise Unauthorized("the calling API key was revoked or has expired")
            live = await conn.fetchval(
                """SELECT count(*) FROM auth.api_keys WHERE account_id = $1
                   AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())""",
                key.account_id)
            if live >= cap["cap"]:
                raise Forbidden(
                    f"this account holds {live:,} live API keys, its limit is "
                    f"{cap['cap']:,}: revoke keys no longer used (DELETE /api/v1/api-keys/"
                    "{id}), or ask the operator to raise the account's max_keys")
            return await self._insert_key(conn, key)

    async def _insert_key(self, conn: Conn, key: NewKey) -> KeyRecord:
        try:
            await conn.execute(
                """INSERT INTO auth.api_keys (id, account_id, subaccount_id, label, prefix, hash,
                       grants, valid_ips, expires_at, created_by)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
                key.id, key.account_id, key.subaccount_id, key.label, key.prefix, key.hash,
                list(key.grants), list(key.valid_ips), key.expires_at, key.created_by)
        except asyncpg.ForeignKeyViolationError as exc:
            raise Invalid(f"account {key.account_id} or its subaccount "
                          f"{key.subaccount_id} does not exist") from exc
        record = await self._key_by_id(conn, key.id)
        assert record is not None
        return record

    async def keys_by_hash(self, digests: list[bytes]) -> dict[bytes, KeyRecord]:
        rows = await self.pool.fetch(
            f"SELECT {KEY_COLUMNS} FROM auth.api_keys k"
            " JOIN auth.accounts a ON a.id = k.account_id WHERE k.hash = ANY($1::bytea[])",
            digests)
        records = (_key(r) for r in rows)
        return {r.hash: r for r in records}

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        async with self.pool.acquire() as conn:
            return await self._key_by_id(conn, key_id)

    async def _key_by_id(self, conn: Conn, key_id: str) -> KeyRecord | None:
        row = await conn.fetchrow(
            f"SELECT {KEY_COLUMNS} FROM auth.api_keys k"
            " JOIN auth.accounts a ON a.id = k.account_id WHERE k.id = $1", key_id)
        return None if row is None else _key(row)

    async def list_keys(self, account_id: int, subaccount_id: int | None,
                        everywhere: bool) -> list[KeyRecord]:
        """Live keys of the account: all of them (`everywhere`), or those of one owner
        (`subaccount_id` None: the primary account)."""
        rows = await self.pool.fetch(
            f"""SELECT {KEY_COLUMNS} FROM auth.api_keys k
                JOIN auth.accounts a ON a.id = k.account_id
                WHERE k.account_id = $1 AND k.revoked_at IS NULL
                  AND (k.expires_at IS NULL OR k.expires_at > now())
                  AND ($2 OR k.subaccount_id IS NOT DISTINCT FROM $3)
                ORDER BY k.created_at, k.id""",
            account_id, everywhere, subaccount_id)
        return [_key(r) for r in rows]

    async def update_key(self, before: KeyRecord, label: str, grants: tuple[str, ...],
                         valid_ips: tuple[str, ...],
                         expires_at: datetime | None) -> tuple[KeyRecord, int]:
        """Change what a live, unrotated key may do, provided its grants, networks and
        expiry are still those of `before` (what the caller's rights were checked against);
        logged, so gateways drop their cached decisions."""
        key_id = before.id
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                """UPDATE auth.api_keys SET label = $2, grants = $3, valid_ips = $4,
                       expires_at = $5
                   WHERE id = $1 AND revoked_at IS NULL AND rotated_to IS NULL
                     AND (expires_at IS NULL OR expires_at > now())
                     AND grants = $6 AND valid_ips = $7
                     AND expires_at IS NOT DISTINCT FROM $8
                   RETURNING id""",
                key_id, label, list(grants), list(valid_ips), expires_at,
                list(before.grants), list(before.valid_ips), before.expires_at)
            if done is None:
                await self._why_unchangeable(conn, key_id)
            seq = await conn.fetchval(
                "INSERT INTO auth.revocations (key_id, reason) VALUES ($1, 'updated')"
                " RETURNING seq", key_id)
            record = await self._key_by_id(conn, key_id)
        assert record is not None
        return record, int(seq)

    async def _why_unchangeable(self, conn: Conn, key_id: str) -> None:
        row = await conn.fetchrow(
            "SELECT revoked_at, rotated_to, expires_at <= now() AS expired"
            " FROM auth.api_keys WHERE id = $1", key_id)
        refuse_if_dead(key_id, row)
        raise Conflict(f"key {key_id} was changed meanwhile: read it again and retry")

    async def revoke_key(self, key_id: str, reason: str) -> list[tuple[str, int, str]]:
        """Revoke the key and its live descendants, log each; (key id, seq, reason) of
        every key this call revoked (none again when the key was already revoked)."""
        attempts = 3
        while True:
            attempts -= 1
            try:
                return await self._revoke_key(key_id, reason)
            except asyncpg.DeadlockDetectedError:
                # Two revocations of overlapping families (a key and its parent) may lock
                # the same keys in different orders; PostgreSQL aborts one: run it again.
                if attempts == 0:
                    raise

    async def _revoke_key(self, key_id: str, reason: str) -> list[tuple[str, int, str]]:
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "UPDATE auth.api_keys SET revoked_at = now() WHERE id = $1"
                " AND revoked_at IS NULL RETURNING id", key_id)
            revoked: list[tuple[str, int, str]] = []
            if done is None:
                exists = await conn.fetchval("SELECT 1 FROM auth.api_keys WHERE id = $1", key_id)
                if exists is None:
                    raise NotFound(f"key {key_id}")
            else:
                seq = await conn.fetchval(
                    "INSERT INTO auth.revocations (key_id, reason) VALUES ($1, $2)"
                    " RETURNING seq", key_id, reason)
                revoked.append((key_id, int(seq), reason))
            # Again until nothing is left: each statement sees what committed before it, so
            # a child whose insert held its maker's row lock while the first walk ran is
            # found by the next (insert_key refuses a maker already revoked).
            while rows := await conn.fetch(REVOKE_DESCENDANTS, key_id):
                revoked.extend((r["key_id"], int(r["seq"]), "parent_revoked") for r in rows)
            return revoked

    async def rotate_key(self, old_id: str, new: NewKey,
                         grace_seconds: int) -> tuple[KeyRecord, int]:
        """Insert `new` and let the old key live `grace_seconds` more; log the rotation.
        `new` must carry the old key's grants, networks and expiry as they are now (they
        are what the caller's rights were checked against). The new key takes the old
        one's maker and children, so revoking either's lineage still reaches them."""
        async with self.pool.acquire() as conn, conn.transaction():
            old = refuse_if_dead(old_id, await conn.fetchrow(
                "SELECT revoked_at, rotated_to, expires_at <= now() AS expired, grants,"
                " valid_ips, expires_at, created_by"
                " FROM auth.api_keys WHERE id = $1 FOR UPDATE", old_id))
            if (tuple(old["grants"]), tuple(old["valid_ips"]), old["expires_at"]) != (
                    new.grants, new.valid_ips, new.expires_at):
                raise Conflict(f"key {old_id} was changed meanwhile: read it again and retry")
            record = await self._insert_key(conn, replace(new, created_by=old["created_by"]))
            await conn.execute("UPDATE auth.api_keys SET created_by = $2 WHERE created_by = $1",
                               old_id, new.id)
            await conn.execute(
                """UPDATE auth.api_keys SET rotated_to = $2,
                       expires_at = LEAST(coalesce(expires_at, 'infinity'),
                                          now() + make_interval(secs => $3))
                   WHERE id = $1""", old_id, new.id, float(grace_seconds))
            seq = await conn.fetchval(
                "INSERT INTO auth.revocations (key_id, reason) VALUES ($1, 'rotated')"
                " RETURNING seq", old_id)
            return record, int(seq)

    async def log_expired(self) -> list[tuple[str, int]]:
        """Log keys that expired since the last sweep, once each, whichever instance runs."""
        rows = await self.pool.fetch(
            """WITH expired AS (
                   UPDATE auth.api_keys SET expiry_logged = true
                   WHERE expires_at <= now() AND NOT expiry_logged AND revoked_at IS NULL
                   RETURNING id)
               INSERT INTO auth.revocations (key_id, reason)
               SELECT id, 'expired' FROM expired RETURNING key_id, seq""")
        return [(r["key_id"], int(r["seq"])) for r in rows]

    async def revocations_since(self, since: int,
                                limit: int = 10_000) -> tuple[int, list[tuple[int, str]]]:
        """The log after `since`, in seq order: (the highest seq returned, or the log's
        highest when none is, and the (seq, key_id) entries)."""
        rows = await self.pool.fetch(
            "SELECT seq, key_id FROM auth.revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
            since, limit)
        if rows:
            return int(rows[-1]["seq"]), [(int(r["seq"]), r["key_id"]) for r in rows]
        latest = await self.pool.fetchval("SELECT coalesce(max(seq), 0) FROM auth.revocations")
        return int(latest), []

    # -- JWT issuers

    async def create_issuer(self, fields: dict[str, Any]) -> IssuerRecord:
        try:
            iid = await self.pool.fetchval(
                """INSERT INTO auth.issuers (name, issuer, account_id, audience, algorithms,
                       secret, jwks, jwks_url, subaccount_claim, grants_claim, allowed_grants)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11) RETURNING id""",
                fields["name"], fields["issuer"], fields["account_id"], fields["audience"],
                fields["algorithms"], fields["secret"],
                None if fields["jwks"] is None else json.dumps(fields["jwks"]),
                fields["jwks_url"], fields["subaccount_claim"], fields["grants_claim"],
                fields["allowed_grants"])
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("an issuer with this name or `iss` exists") from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise Invalid(f"account {fields['account_id']} does not exist") from exc
        row = await self.pool.fetchrow(
            f"SELECT {ISSUER_COLUMNS} FROM auth.issuers i"
            " JOIN auth.accounts a ON a.id = i.account_id WHERE i.id = $1", iid)
        assert row is not None
        return _issuer(row)

    async def issuer_by_iss(self, iss: str) -> IssuerRecord | None:
        row = await self.pool.fetchrow(
            f"SELECT {ISSUER_COLUMNS} FROM auth.issuers i"
            " JOIN auth.accounts a ON a.id = i.account_id WHERE i.issuer = $1", iss)
        return None if row is None else _issuer(row)

    async def list_issuers(self) -> list[IssuerRecord]:
        rows = await self.pool.fetch(
            f"SELECT {ISSUER_COLUMNS} FROM auth.issuers i"
            " JOIN auth.accounts a ON a.id = i.account_id ORDER BY i.id")
        return [_issuer(r) for r in rows]
