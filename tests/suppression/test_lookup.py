"""The sending path's batch lookup: POST /api/v1/suppression-list/lookup."""

from __future__ import annotations

import pytest

from tests.suppression.conftest import Api, error_messages


async def test_batch_lookup_names_the_suppressed_with_type_and_list(api: Api) -> None:
    await api.bulk([
        {"recipient": "t@example.com", "type": "transactional"},
        {"recipient": "n@example.com", "type": "non_transactional", "list_id": "news"},
        {"recipient": "both@example.com", "transactional": True, "non_transactional": True},
    ])
    resp = await api.lookup({"recipients": ["t@example.com", " n@EXAMPLE.COM ",
                                            "both@Example.com", "free@example.com", "broken"]})
    assert resp.status_code == 200
    body = resp.json()["results"]
    assert body["checked"] == 4
    assert body["invalid"] == [{"recipient": "broken",
                                "reason": "Recipient must contain exactly one @"}]
    found = {(r["recipient"], r["type"], r["list_id"]) for r in body["suppressed"]}
    assert found == {("t@example.com", "transactional", None),
                     ("n@example.com", "non_transactional", "news"),
                     ("both@example.com", "transactional", None),
                     ("both@example.com", "non_transactional", None)}


async def test_batch_lookup_filters_by_type_and_list(api: Api) -> None:
    await api.bulk([
        {"recipient": "t@example.com", "type": "transactional"},
        {"recipient": "n@example.com", "type": "non_transactional", "list_id": "news"},
        {"recipient": "o@example.com", "type": "non_transactional", "list_id": "other"},
    ])
    everyone = ["t@example.com", "n@example.com", "o@example.com"]
    resp = await api.lookup({"recipients": everyone, "type": "non_transactional"})
    assert {r["recipient"] for r in resp.json()["results"]["suppressed"]} == {
        "n@example.com", "o@example.com"}
    # On a list: that list's entries and the account-level ones apply.
    resp = await api.lookup({"recipients": everyone, "list_id": "news"})
    assert {r["recipient"] for r in resp.json()["results"]["suppressed"]} == {
        "t@example.com", "n@example.com"}


async def test_batch_lookup_is_scoped_to_the_account_and_subaccount(api: Api,
                                                                    other_api: Api) -> None:
    await api.as_sub(2).bulk([{"recipient": "s@example.com", "type": "transactional"}])
    body = {"recipients": ["s@example.com"]}
    assert (await other_api.lookup(body)).json()["results"]["suppressed"] == []
    assert (await api.as_sub(0).lookup(body)).json()["results"]["suppressed"] == []
    assert len((await api.as_sub(2).lookup(body)).json()["results"]["suppressed"]) == 1
    assert len((await api.as_sub(None).lookup(body)).json()["results"]["suppressed"]) == 1


async def test_batch_lookup_takes_ten_thousand_recipients(api: Api) -> None:
    await api.bulk([{"recipient": f"r{i}@example.com", "type": "transactional"}
                    for i in range(0, 10_000, 10)])
    resp = await api.lookup({"recipients": [f"r{i}@example.com" for i in range(10_000)]})
    assert resp.status_code == 200
    assert len(resp.json()["results"]["suppressed"]) == 1000


@pytest.mark.parametrize(("body", "message"), [
    ({"recipients": [f"r{i}@example.com" for i in range(10_001)]},
     "Too many recipients: at most 10,000 per request"),
    ({"recipients": "a@example.com"}, "recipients must be an array"),
    ({"recipients": [], "type": "marketing"}, "Invalid suppression type 'marketing'"),
    ({"recipients": [], "list_id": "no spaces"}, "Invalid list_id"),
])
async def test_batch_lookup_refuses_bad_bodies(api: Api, body: object, message: str) -> None:
    resp = await api.lookup(body)
    assert resp.status_code == 400
    assert error_messages(resp) == [message]


@pytest.mark.parametrize("raw", [
    "plain@example.com", "Mixed.Case+tag@example.com", " padded@example.com ",
    "upper@EXAMPLE.COM", "a@b", "dots..local@example.com", "x@.example.com",
    "x@example.com.", "x@exa..mple.com", "x" * 64 + "@example.com", "x" * 65 + "@example.com",
    "a@" + "b" * 252, "a@" + "b" * 251, "tab\t@example.com", "two@at@example.com", "@example.com",
    "nodomain@", "ünï@exämple.com", "x@EXAMPLE.com",
])
def test_the_fast_canonical_path_agrees_with_the_full_rules(raw: str) -> None:
    from services.suppression.recipient import BadRecipient, canonical, canonical_fast

    def outcome(fn: object) -> str:
        try:
            return fn(raw)  # type: ignore[operator, no-any-return]
        except BadRecipient as exc:
            return f"error: {exc}"

    assert outcome(canonical_fast) == outcome(canonical)
