from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from portcullis.context import ContextError, signed_headers, verify

SECRET = "s3cret"


def test_signed_context_verifies_and_carries_the_caller() -> None:
    h = signed_headers(SECRET, "GET", "/a?b=1", account_id=7, subaccount_id=3,
                       key_id="k1", grants=["x/view", "x/manage"], request_id="r1")
    ctx = verify(SECRET, "GET", "/a?b=1", Headers(h))
    assert (ctx.account_id, ctx.subaccount_id, ctx.key_id) == (7, 3, "k1")
    assert ctx.grants == ("x/view", "x/manage")


@pytest.mark.parametrize(
    ("method", "uri", "secret", "ts_shift", "why"),
    [
        ("GET", "/other", SECRET, 0, "Bad gateway signature"),
        ("PUT", "/a", SECRET, 0, "Bad gateway signature"),
        ("GET", "/a", "wrong", 0, "Bad gateway signature"),
        ("GET", "/a", SECRET, -3600, "Stale gateway signature"),
    ],
)
def test_a_signature_bound_to_another_request_or_key_or_time_is_refused(
        method: str, uri: str, secret: str, ts_shift: int, why: str) -> None:
    import time
    h = signed_headers(secret, "GET", "/a", account_id=7,
                       timestamp=int(time.time()) + ts_shift)
    with pytest.raises(ContextError) as err:
        verify(SECRET, method, uri, Headers(h))
    assert err.value.entries[0]["description"] == why


def test_missing_signature_is_refused() -> None:
    with pytest.raises(ContextError):
        verify(SECRET, "GET", "/a", Headers({"X-Account-Id": "1"}))


def test_duplicated_context_header_is_refused() -> None:
    h = signed_headers(SECRET, "GET", "/a", account_id=7)
    raw = [(k.lower().encode(), v.encode()) for k, v in h.items()]
    raw.append((b"x-account-id", b"8"))
    with pytest.raises(ContextError):
        verify(SECRET, "GET", "/a", Headers(raw=raw))


def test_pg_fixture_gives_a_migrated_database(pg_dsn: str) -> None:
    import asyncio

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM public.schema_migrations"))
        finally:
            await conn.close()

    assert asyncio.run(count()) >= 0
