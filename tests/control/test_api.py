"""The admin API: CRUD, the table version, the audit, the table the gateway polls, auth."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from gateway.control.store import Store
from tests.control.api import TARGET, create, description, spec, version_of
from tests.control.conftest import client_for


async def test_healthz_answers_without_a_token(control_app: Starlette) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=control_app),
                                 base_url="http://control") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/routes"), ("POST", "/routes"), ("GET", "/routes/any"), ("PUT", "/routes/any"),
    ("DELETE", "/routes/any"), ("GET", "/table"),
])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "control-test-token"])
async def test_every_admin_call_without_the_right_token_is_a_json_401(
        control_app: Starlette, method: str, path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=control_app),
                                 base_url="http://control") as client:
        response = await client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["code"] == "1401"


async def test_a_created_route_is_returned_with_its_defaults_filled_in(
        admin: httpx.AsyncClient, tag: str) -> None:
    response = await admin.post("/routes", json=spec(f"crud-{tag}", f"/crud/{tag}"))
    assert response.status_code == 201
    assert response.headers["Location"] == f"/routes/crud-{tag}"
    route = response.json()["results"]
    assert route == {
        "name": f"crud-{tag}", "paths": [f"/crud/{tag}"], "methods": None, "hosts": None,
        "upstream": {"targets": [TARGET], "balance": "round_robin",
                     "health": {"failures": 3, "cooldown": 10, "path": None, "interval": 5}},
        "resource": "tests", "auth": "required", "grants": None, "rate_limits": [],
        "cache": None, "timeouts": {"connect": 2000, "send": 10000, "read": 30000},
        "retries": 1, "cors": None, "owner": None, "service": f"crud-{tag}",
        "forward_credentials": False, "max_request_body": 1048576,
    }
    fetched = await admin.get(f"/routes/crud-{tag}")
    assert fetched.json() == {"results": route}
    listed = (await admin.get("/routes")).json()["results"]
    assert route in listed


async def test_a_route_can_be_replaced_and_deleted(admin: httpx.AsyncClient, tag: str) -> None:
    name = f"crud-{tag}"
    await create(admin, name, f"/crud/{tag}")
    replaced = await admin.put(f"/routes/{name}",
                               json=spec(name, f"/crud/{tag}", retries=3, owner="tests"))
    assert replaced.status_code == 200
    assert (await admin.get(f"/routes/{name}")).json()["results"]["retries"] == 3

    deleted = await admin.delete(f"/routes/{name}")
    assert deleted.status_code == 204
    missing = await admin.get(f"/routes/{name}")
    assert missing.status_code == 404
    assert description(missing) == f"no route named '{name}'"


async def test_put_creates_a_missing_route_and_takes_the_name_from_the_url(
        admin: httpx.AsyncClient, tag: str) -> None:
    body = spec(f"put-{tag}", f"/put/{tag}")
    del body["name"]
    response = await admin.put(f"/routes/put-{tag}", json=body)
    assert response.status_code == 201
    assert response.json()["results"]["name"] == f"put-{tag}"


async def test_put_with_another_name_in_the_body_is_refused(
        admin: httpx.AsyncClient, tag: str) -> None:
    response = await admin.put(f"/routes/put-{tag}", json=spec(f"other-{tag}"))
    assert response.status_code == 400
    assert description(response).startswith("name:")


async def test_deleting_an_unknown_route_is_a_json_404(admin: httpx.AsyncClient) -> None:
    response = await admin.delete("/routes/no-such-route")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "1404"


async def test_an_unknown_admin_path_is_a_json_404(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


async def test_every_change_raises_the_table_version(admin: httpx.AsyncClient, tag: str) -> None:
    name = f"version-{tag}"
    start = int((await admin.get("/table")).json()["version"])
    created = version_of(await create(admin, name, f"/version/{tag}"))
    updated = version_of(await admin.put(f"/routes/{name}",
                                         json=spec(name, f"/version/{tag}", retries=0)))
    deleted = version_of(await admin.delete(f"/routes/{name}"))
    assert start < created < updated < deleted
    assert int((await admin.get("/table")).json()["version"]) >= deleted


async def test_putting_an_identical_route_changes_nothing(
        admin: httpx.AsyncClient, tag: str) -> None:
    name = f"same-{tag}"
    created = version_of(await create(admin, name, f"/same/{tag}"))
    again = await admin.put(f"/routes/{name}", json=spec(name, f"/same/{tag}"))
    assert again.status_code == 200
    assert version_of(again) >= created
    history = (await admin.get(f"/routes/{name}/audit")).json()["results"]
    assert [h["action"] for h in history] == ["create"]


async def test_each_change_leaves_an_audit_row_with_actor_and_before_and_after(
        control_app: Starlette, store: Store, tag: str) -> None:
    name = f"audit-{tag}"
    async with client_for(control_app, **{"X-Actor": "alice@suppression"}) as alice:
        v1 = version_of(await create(alice, name, f"/audit/{tag}"))
        v2 = version_of(await alice.put(f"/routes/{name}",
                                         json=spec(name, f"/audit/{tag}", retries=2)))
    async with client_for(control_app) as anonymous:
        v3 = version_of(await anonymous.delete(f"/routes/{name}"))
    rows = await store.audit(name)
    assert [(r["version"], r["action"], r["actor"]) for r in rows] == [
        (v1, "create", "alice@suppression"),
        (v2, "update", "alice@suppression"),
        (v3, "delete", "admin"),
    ]
    assert rows[0]["before"] is None and rows[0]["after"]["retries"] == 1
    assert rows[1]["before"]["retries"] == 1 and rows[1]["after"]["retries"] == 2
    assert rows[2]["before"]["retries"] == 2 and rows[2]["after"] is None
    assert all(r["at"] for r in rows)


async def test_the_table_carries_the_version_as_etag_and_every_route(
        admin: httpx.AsyncClient, tag: str) -> None:
    created = await create(admin, f"table-{tag}", f"/table/{tag}")
    response = await admin.get("/table")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert response.headers["ETag"] == f'"{doc["version"]}"'
    assert doc["version"] >= version_of(created)
    assert created.json()["results"] in doc["routes"]
    names = [r["name"] for r in doc["routes"]]
    assert names == sorted(names)


async def test_the_table_is_304_while_the_version_is_unchanged(
        admin: httpx.AsyncClient, tag: str) -> None:
    etag = (await admin.get("/table")).headers["ETag"]
    unchanged = await admin.get("/table", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["ETag"] == etag
    assert unchanged.content == b""
    await create(admin, f"etag-{tag}", f"/etag/{tag}")
    changed = await admin.get("/table", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert any(r["name"] == f"etag-{tag}" for r in changed.json()["routes"])


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\"text\""])
async def test_a_body_that_is_not_a_json_object_is_a_400(
        admin: httpx.AsyncClient, body: bytes) -> None:
    response = await admin.post("/routes", content=body,
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["description"].split(":")[0] in {"body", "route"}


async def test_a_body_over_the_limit_is_a_413(admin: httpx.AsyncClient, tag: str) -> None:
    body = spec(f"big-{tag}", owner="x" * 2_000_000)
    response = await admin.post("/routes", json=body)
    assert response.status_code == 413
    assert response.json()["errors"][0]["description"].startswith("body:")


async def test_a_malformed_actor_is_refused(control_app: Starlette, tag: str) -> None:
    async with client_for(control_app, **{"X-Actor": "x" * 300}) as client:
        response = await client.post("/routes", json=spec(f"actor-{tag}"))
    assert response.status_code == 400
    assert description(response).startswith("X-Actor:")
