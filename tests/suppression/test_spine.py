"""PUT, GET and DELETE of one recipient, scoped by the gateway's context."""

from __future__ import annotations

import httpx

from tests.suppression.conftest import BASE, Api, error_messages


async def test_put_then_get_returns_the_entry(api: Api) -> None:
    resp = await api.put("jane@example.com", {"type": "non_transactional",
                                               "description": "demo"})
    assert resp.status_code == 200
    assert resp.json() == {"results": {"message": "Suppression List successfully updated"}}
    resp = await api.get("jane@example.com")
    assert resp.status_code == 200
    body = resp.json()
    assert body["total_count"] == 1
    (record,) = body["results"]
    assert record["recipient"] == "jane@example.com"
    assert record["type"] == "non_transactional"
    assert record["source"] == "Manually Added"
    assert record["description"] == "demo"
    assert record["non_transactional"] is True and record["transactional"] is False
    assert record["subaccount_id"] == 0
    assert "list_id" not in record
    assert record["created"].endswith("+00:00")


async def test_get_of_an_unknown_recipient_is_404(api: Api) -> None:
    resp = await api.get("nobody@example.com")
    assert resp.status_code == 404
    assert error_messages(resp) == ["Recipient could not be found"]


async def test_delete_removes_the_entry_and_a_second_delete_is_404(api: Api) -> None:
    await api.put("gone@example.com", {"type": "transactional"})
    assert (await api.delete("gone@example.com")).status_code == 204
    assert (await api.get("gone@example.com")).status_code == 404
    assert (await api.delete("gone@example.com")).status_code == 404


async def test_lookups_canonicalise_the_domain_but_keep_the_local_part(api: Api) -> None:
    await api.put("  Mixed.Case@EXAMPLE.Com ", {"type": "transactional"})
    resp = await api.get("Mixed.Case@example.com")
    assert resp.status_code == 200
    assert resp.json()["results"][0]["recipient"] == "Mixed.Case@example.com"
    assert (await api.get("mixed.case@example.com")).status_code == 404


async def test_an_account_never_sees_or_deletes_another_accounts_entry(api: Api,
                                                                       other_api: Api) -> None:
    await api.put("private@example.com", {"type": "transactional"})
    assert (await other_api.get("private@example.com")).status_code == 404
    assert (await other_api.delete("private@example.com")).status_code == 404
    assert (await api.get("private@example.com")).status_code == 200


async def test_subaccount_scoping_follows_the_context(api: Api) -> None:
    primary, everyone, sub7, sub8 = api.as_sub(0), api.as_sub(None), api.as_sub(7), api.as_sub(8)
    await everyone.put("p@example.com", {"type": "transactional"})  # no header: primary
    await sub7.put("s@example.com", {"type": "transactional"})
    assert (await primary.get("p@example.com")).json()["results"][0]["subaccount_id"] == 0
    assert (await primary.get("s@example.com")).status_code == 404
    assert (await sub7.get("s@example.com")).json()["results"][0]["subaccount_id"] == 7
    assert (await sub8.get("s@example.com")).status_code == 404
    assert (await sub7.get("p@example.com")).status_code == 404
    # No subaccount named: reads cover the primary and every subaccount.
    assert (await everyone.get("s@example.com")).json()["results"][0]["subaccount_id"] == 7
    # ...but writes go to the primary only.
    assert (await everyone.delete("s@example.com")).status_code == 404
    assert (await sub7.delete("s@example.com")).status_code == 204


async def test_requests_without_the_gateway_signature_are_refused(
        clients: dict[str, httpx.AsyncClient]) -> None:
    for client in clients.values():
        resp = await client.get(f"{BASE}/jane@example.com")
        assert resp.status_code == 401
        assert error_messages(resp)


async def test_a_signature_for_another_path_is_refused(api: Api) -> None:
    resp = await api.call("GET", f"{BASE}/a@example.com", sign_uri=f"{BASE}/b@example.com")
    assert resp.status_code == 401


async def test_healthz_is_open_and_reports_ok(clients: dict[str, httpx.AsyncClient]) -> None:
    for client in clients.values():
        resp = await client.get("/healthz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok"}
