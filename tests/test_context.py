"""The signed context (portcullis/context.py): bound to the request, the time, the key and
the audience it was made for."""

from __future__ import annotations

import time

import pytest
from starlette.datastructures import Headers

from portcullis.context import ContextError, ContextKeys, signed_headers, verify

ROOT = "s3cret"
KEYS = ContextKeys.for_roots(ROOT, "billing")


def test_signed_context_verifies_and_carries_the_caller() -> None:
    h = signed_headers(KEYS, "GET", "/a?b=1", account_id=7, subaccount_id=3,
                       key_id="k1", grants=["x/view", "x/manage"], request_id="r1")
    ctx = verify(KEYS, "GET", "/a?b=1", Headers(h))
    assert (ctx.account_id, ctx.subaccount_id, ctx.key_id) == (7, 3, "k1")
    assert ctx.grants == ("x/view", "x/manage")


@pytest.mark.parametrize(
    ("method", "uri", "signer", "ts_shift", "why"),
    [
        ("GET", "/other", KEYS, 0, "Bad gateway signature"),
        ("PUT", "/a", KEYS, 0, "Bad gateway signature"),
        ("GET", "/a", ContextKeys.for_roots("wrong", "billing"), 0,
         "Gateway signature by a key this service does not hold"),
        # the same root, made for another service: its key is not this one's
        ("GET", "/a", ContextKeys.for_roots(ROOT, "payments"), 0, "Bad gateway signature"),
        ("GET", "/a", KEYS, -3600, "Stale gateway signature"),
    ],
)
def test_a_signature_bound_to_another_request_key_audience_or_time_is_refused(
        method: str, uri: str, signer: ContextKeys, ts_shift: int, why: str) -> None:
    h = signed_headers(signer, "GET", "/a", account_id=7, timestamp=int(time.time()) + ts_shift)
    with pytest.raises(ContextError) as err:
        verify(KEYS, method, uri, Headers(h))
    assert err.value.entries[0]["description"] == why


def test_a_service_given_two_roots_keys_accepts_either_while_a_root_is_rotated() -> None:
    both = ContextKeys.for_roots("new-root,old-root", "billing")
    for signer in (ContextKeys.for_roots("new-root", "billing"),
                   ContextKeys.for_roots("old-root", "billing")):
        h = signed_headers(signer, "GET", "/a", account_id=7)
        assert verify(both, "GET", "/a", Headers(h)).account_id == 7
    # ... and signs with the first
    assert both.signer() == next(iter(ContextKeys.for_roots("new-root", "billing").keys.items()))


def test_missing_signature_is_refused() -> None:
    with pytest.raises(ContextError):
        verify(KEYS, "GET", "/a", Headers({"X-Account-Id": "1"}))


def test_duplicated_context_header_is_refused() -> None:
    h = signed_headers(KEYS, "GET", "/a", account_id=7)
    raw = [(k.lower().encode(), v.encode()) for k, v in h.items()]
    raw.append((b"x-account-id", b"8"))
    with pytest.raises(ContextError):
        verify(KEYS, "GET", "/a", Headers(raw=raw))


@pytest.mark.parametrize("value", ["", "nocolon", "zz:" + "ab" * 32, "0a1b2c3d:" + "ab" * 31,
                                   "0a1b2c3d:" + "AB" * 32])
def test_context_keys_refuse_a_malformed_setting(value: str) -> None:
    with pytest.raises(ValueError):
        ContextKeys.parse("billing", value)


@pytest.mark.parametrize("audience", ["", "Billing", "a b", "x" * 65, "-lead"])
def test_an_audience_is_a_service_name(audience: str) -> None:
    with pytest.raises(ValueError):
        ContextKeys.for_roots(ROOT, audience)


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
