"""portcullis/bodies.py: bodies bounded in bytes before they are read, and in objects and
arrays before they are parsed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portcullis import bodies
from portcullis.errors import APIError


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def read(*parts: bytes, declared: str | None = None, limit: int = 10) -> bytearray:
    return asyncio.run(bodies.read(chunks_of(*parts), declared, limit))


class Served(Exception):
    """Raised by a stream asked for more than it should have been."""


async def endless() -> AsyncIterator[bytes]:
    for _ in range(3):
        yield b"x" * 6
    raise Served("read past the limit")


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert read(b"12345", b"67890") == bytearray(b"1234567890")


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(bodies.BodyTooLarge) as err:
        asyncio.run(bodies.read(endless(), "11", 10))
    assert err.value.status == 413 and "10 bytes" in err.value.entries[0]["description"]


def test_a_streamed_body_is_refused_as_it_passes_the_limit_and_read_no_further() -> None:
    with pytest.raises(bodies.BodyTooLarge):
        asyncio.run(bodies.read(endless(), None, 10))


def test_a_body_that_lies_about_its_length_is_still_counted() -> None:
    with pytest.raises(bodies.BodyTooLarge):
        read(b"x" * 6, b"x" * 6, declared="3")


@pytest.mark.parametrize(("limit", "words"), [(50 << 20, "50 MB"), (64 << 10, "64 KB"),
                                              (1 << 30, "1 GB"), (1000, "1,000 bytes")])
def test_limits_are_said_in_words(limit: int, words: str) -> None:
    assert bodies.size_words(limit) == words


@pytest.mark.parametrize(("text", "count"), [
    (b'{"a": [1, 2, {"b": []}]}', 4),
    (b'{"a": "{[{[{[ not counted ]}]}"}', 1),
    (b'{"a": "a \\" quote then {["}', 1),
    (b'{"a": "\\\\", "b": [{}]}', 3),
    (b'[' * 50 + b']' * 50, 50),
])
def test_objects_and_arrays_are_counted_outside_strings(text: bytes, count: int) -> None:
    assert bodies.containers_at_most(text, count)
    assert not bodies.containers_at_most(text, count - 1)


def refusal(name: str) -> APIError:
    return APIError(400, name)


def test_a_body_of_too_many_objects_is_refused_before_it_is_parsed() -> None:
    raw = b'{"recipients": [' + b",".join([b"{}"] * 200_000) + b"]}"
    with pytest.raises(APIError) as err:
        bodies.json_value(raw, 10_016, lambda: refusal("many"), lambda: refusal("invalid"))
    assert err.value.entries[0]["message"] == "many"


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                 b"not json", b"\xff\xfe", b'{"a": 1'])
def test_invalid_or_too_deep_json_is_the_callers_invalid_error(raw: bytes) -> None:
    with pytest.raises(APIError) as err:
        bodies.json_value(raw, 1_000_000, lambda: refusal("many"), lambda: refusal("invalid"))
    assert err.value.entries[0]["message"] == "invalid"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=30))
def test_the_count_is_exact_for_any_json_value(value: object) -> None:
    raw = json.dumps(value).encode()
    exact = raw.count(b"{") + raw.count(b"[")
    inside_strings = sum(s.count("{") + s.count("[") for s in strings_in(value))
    assert bodies.containers_at_most(raw, exact - inside_strings)
    if exact - inside_strings > 0:
        assert not bodies.containers_at_most(raw, exact - inside_strings - 1)
    assert bodies.json_value(raw, 1000, lambda: refusal("m"), lambda: refusal("i")) == value


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [json.dumps(value)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    if isinstance(value, dict):
        return [json.dumps(k) for k in value] + [s for v in value.values()
                                                   for s in strings_in(v)]
    return []
