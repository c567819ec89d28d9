"""SparkPost's writes: one PUT, bulk PUT, DELETE, their deprecated fields and their errors."""

from __future__ import annotations

import json

import pytest

from services.suppression.model import COMPLIANCE, Entry
from services.suppression.store import Store
from tests.suppression.conftest import BASE, Api, error_messages


async def records(api: Api, recipient: str) -> list[dict[str, object]]:
    resp = await api.get(recipient)
    return [] if resp.status_code == 404 else list(resp.json()["results"])


def kinds(found: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {(r["type"], r.get("list_id")) for r in found}


@pytest.mark.parametrize(("body", "expected"), [
    ({"type": "transactional"}, {("transactional", None)}),
    ({"type": "non_transactional", "list_id": "news.letter-1_a"},
     {("non_transactional", "news.letter-1_a")}),
    ({"transactional": True}, {("transactional", None)}),
    ({"non_transactional": True, "transactional": False}, {("non_transactional", None)}),
    ({"transactional": True, "non_transactional": True},
     {("transactional", None), ("non_transactional", None)}),
])
async def test_one_put_writes_the_types_asked_for(api: Api, body: dict[str, object],
                                                  expected: set[tuple[object, object]]) -> None:
    resp = await api.put("one@example.com", body)
    assert resp.status_code == 200, resp.text
    assert kinds(await records(api, "one@example.com")) == expected


@pytest.mark.parametrize(("recipient", "body", "status", "message"), [
    ("a@example.com", {}, 400, "Must supply a suppression type"),
    ("a@example.com", {"description": "x"}, 400, "Must supply a suppression type"),
    ("a@example.com", {"transactional": False, "non_transactional": False}, 400,
     "Must supply a suppression type"),
    ("a@example.com", {"type": "marketing"}, 400,
     "Invalid suppression type 'marketing': must be transactional or non_transactional"),
    ("a@example.com", {"type": "transactional", "list_id": ""}, 400,
     "list_id must be 1-255 characters of letters, digits, '-', '_' or '.'"),
    ("a@example.com", {"type": "transactional", "list_id": "a" * 256}, 400,
     "list_id must be 1-255 characters of letters, digits, '-', '_' or '.'"),
    ("a@example.com", {"type": "transactional", "list_id": "has space"}, 400,
     "list_id must be 1-255 characters of letters, digits, '-', '_' or '.'"),
    ("a@example.com", {"type": "transactional", "description": "x" * 1025}, 400,
     "description is longer than 1024 characters"),
    ("no-at-sign", {"type": "transactional"}, 400, "Recipient must contain exactly one @"),
    ("two@@example.com", {"type": "transactional"}, 400,
     "Recipient must contain exactly one @"),
    ("sp ace@example.com", {"type": "transactional"}, 400,
     "Recipient contains spaces or control characters"),
    ("x" * 65 + "@example.com", {"type": "transactional"}, 400,
     "Recipient local part must be 1-64 characters"),
    ("a@" + "d" * 250 + ".com", {"type": "transactional"}, 400,
     "Recipient is longer than 254 characters"),
    ("a@example..com", {"type": "transactional"}, 400, "Recipient domain is not valid"),
    ("a@example.com", [1, 2], 400, "Request body must be a JSON object"),
])
async def test_one_put_refuses_bad_input(api: Api, recipient: str, body: object, status: int,
                                         message: str) -> None:
    resp = await api.put(recipient, body)
    assert resp.status_code == status
    assert error_messages(resp) == [message]


async def test_one_put_updates_description_and_updated_in_place(api: Api) -> None:
    await api.put("upd@example.com", {"type": "transactional", "description": "first"})
    await api.put("upd@example.com", {"type": "transactional", "description": "second"})
    (record,) = await records(api, "upd@example.com")
    assert record["description"] == "second"
    assert record["updated"] >= record["created"]


async def test_malformed_json_is_400_and_other_media_types_are_415(api: Api) -> None:
    resp = await api.call("PUT", f"{BASE}/a@example.com", content=b"{nope",
                          headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert error_messages(resp) == ["Problems parsing request as json"]
    resp = await api.call("PUT", f"{BASE}/a@example.com", content=b"type=transactional",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 415


async def test_unsupported_methods_are_405_in_sparkposts_shape(api: Api) -> None:
    resp = await api.call("POST", f"{BASE}/a@example.com", json={})
    assert resp.status_code == 405
    assert error_messages(resp)
    resp = await api.call("DELETE", BASE)
    assert resp.status_code == 405


async def test_bulk_put_writes_every_entry_with_deprecated_fields(api: Api) -> None:
    resp = await api.bulk([
        {"recipient": "b1@example.com", "type": "transactional", "description": "one"},
        {"email": "b2@example.com", "transactional": True, "non_transactional": True},
        {"recipient": "b3@Example.COM", "non_transactional": "true", "list_id": "promo"},
    ])
    assert resp.status_code == 200
    assert resp.json() == {"results": {"message": "Suppression List successfully updated"}}
    assert kinds(await records(api, "b1@example.com")) == {("transactional", None)}
    assert kinds(await records(api, "b2@example.com")) == {("transactional", None),
                                                           ("non_transactional", None)}
    assert kinds(await records(api, "b3@example.com")) == {("non_transactional", "promo")}


async def test_bulk_put_names_each_bad_entry_and_writes_nothing(api: Api) -> None:
    resp = await api.bulk([
        {"recipient": "good@example.com", "type": "transactional"},
        {"recipient": "bad", "type": "transactional"},
        {"recipient": "notype@example.com"},
        {"type": "transactional"},
        "not an object",
    ])
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert [e["description"] for e in errors] == [
        "recipients[1] (bad): Recipient must contain exactly one @",
        "recipients[2] (notype@example.com): Must supply a suppression type",
        "recipients[3]: Entry has no recipient",
        "recipients[4]: Entry must be an object",
    ]
    assert await records(api, "good@example.com") == []


async def test_bulk_put_of_duplicates_keeps_the_last(api: Api) -> None:
    resp = await api.bulk([
        {"recipient": "dup@example.com", "type": "transactional", "description": "a"},
        {"recipient": "DUP@example.com", "type": "transactional", "description": "b"},
        {"recipient": "dup@example.com", "type": "transactional", "description": "c"},
    ])
    assert resp.status_code == 200
    found = await records(api, "dup@example.com")
    assert [r["description"] for r in found] == ["c"]
    assert len(await records(api, "DUP@example.com")) == 1


@pytest.mark.parametrize(("body", "message"), [
    ({"recipients": []}, "recipients must not be empty"),
    ({"recipients": "x"}, "recipients must be an array"),
    ({}, "recipients must be an array"),
])
async def test_bulk_put_refuses_a_malformed_body(api: Api, body: object, message: str) -> None:
    resp = await api.call("PUT", BASE, json=body)
    assert resp.status_code == 400
    assert error_messages(resp) == [message]


async def test_bulk_put_takes_ten_thousand_entries_and_refuses_more(api: Api) -> None:
    entries = [{"recipient": f"r{i}@bulk.example.com", "type": "transactional"}
               for i in range(10_000)]
    assert (await api.bulk(entries)).status_code == 200
    assert (await api.search(domain="bulk.example.com", per_page=1)).json()["total_count"] \
        == 10_000
    resp = await api.bulk([*entries, {"recipient": "x@example.com", "type": "transactional"}])
    assert resp.status_code == 400
    assert error_messages(resp) == ["Too many recipients: at most 10,000 per request"]


async def test_bodies_over_50_megabytes_are_413(api: Api) -> None:
    big = json.dumps({"recipients": [{"recipient": "a@example.com", "type": "transactional",
                                      "description": "x" * (51 * 1024 * 1024)}]}).encode()
    resp = await api.call("PUT", BASE, content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert error_messages(resp) == ["Request entity too large"]


async def test_writes_without_a_subaccount_go_to_the_primary_and_with_one_to_it(
        api: Api) -> None:
    await api.as_sub(None).bulk([{"recipient": "w@example.com", "type": "transactional"}])
    await api.as_sub(5).bulk([{"recipient": "w@example.com", "type": "non_transactional"}])
    found = await records(api.as_sub(None), "w@example.com")
    assert {(r["subaccount_id"], r["type"]) for r in found} == {
        (0, "transactional"), (5, "non_transactional")}
    assert len(await records(api.as_sub(0), "w@example.com")) == 1
    assert len(await records(api.as_sub(5), "w@example.com")) == 1


# --- DELETE --------------------------------------------------------------------------------

async def setup_lists(api: Api, recipient: str) -> None:
    for list_id in (None, "a", "b"):
        for kind in ("transactional", "non_transactional"):
            body = {"type": kind} | ({"list_id": list_id} if list_id else {})
            assert (await api.put(recipient, body)).status_code == 200


@pytest.mark.parametrize(("params", "body", "left"), [
    (None, None, set()),
    (None, {"type": "transactional"},
     {("non_transactional", None), ("non_transactional", "a"), ("non_transactional", "b")}),
    ({"list_id": "a"}, None,
     {("transactional", None), ("non_transactional", None), ("transactional", "b"),
      ("non_transactional", "b")}),
    ({"list_id": ""}, None,
     {("transactional", "a"), ("non_transactional", "a"), ("transactional", "b"),
      ("non_transactional", "b")}),
    ({"list_id": "b"}, {"type": "non_transactional"},
     {("transactional", None), ("non_transactional", None), ("transactional", "a"),
      ("non_transactional", "a"), ("transactional", "b")}),
])
async def test_delete_takes_the_type_body_and_the_list_id_parameter(
        api: Api, params: dict[str, str] | None, body: dict[str, str] | None,
        left: set[tuple[object, object]]) -> None:
    await setup_lists(api, "del@example.com")
    path = f"{BASE}/del@example.com"
    resp = await api.call("DELETE", path, params=params,
                          content=None if body is None else json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
    assert resp.status_code == 204, resp.text
    assert kinds(await records(api, "del@example.com")) == left


async def test_delete_of_a_list_with_no_entry_is_404(api: Api) -> None:
    await api.put("l@example.com", {"type": "transactional", "list_id": "a"})
    resp = await api.delete("l@example.com", params={"list_id": "zzz"})
    assert resp.status_code == 404
    resp = await api.delete("l@example.com", params={"list_id": ""})
    assert resp.status_code == 404


async def test_delete_refuses_a_bad_type_or_list_id(api: Api) -> None:
    await api.put("x@example.com", {"type": "transactional"})
    resp = await api.call("DELETE", f"{BASE}/x@example.com", content=b'{"type": "both"}',
                          headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    resp = await api.delete("x@example.com", params={"list_id": "no spaces"})
    assert resp.status_code == 400


async def test_compliance_entries_cannot_be_deleted_or_overwritten(api: Api,
                                                                   store: Store) -> None:
    await store.upsert(api.account_id, 0, [Entry("c@example.com", "transactional",
                                                  source=COMPLIANCE, description="legal")])
    resp = await api.delete("c@example.com")
    assert resp.status_code == 403
    assert error_messages(resp) == ["Recipient could not be removed - Compliance"]
    resp = await api.put("c@example.com", {"type": "transactional", "description": "mine"})
    assert resp.status_code == 403
    assert error_messages(resp) == ["Recipient could not be updated - Compliance"]
    await api.bulk([{"recipient": "c@example.com", "type": "transactional",
                     "description": "bulk"}])
    (record,) = await records(api, "c@example.com")
    assert (record["source"], record["description"]) == ("Compliance", "legal")
