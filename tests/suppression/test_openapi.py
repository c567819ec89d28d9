"""The served OpenAPI document describes the API: each answer checked against its schema."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from services.suppression import worker
from services.suppression.config import Config
from tests.suppression.conftest import BASE, KEYS, Api

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float)}


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def check(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """A small JSON Schema check: the keywords the document uses, no more."""
    schema = resolve(doc, schema)
    for part in schema.get("allOf", []):
        check(doc, part, value, where)
    if value is None:
        assert schema.get("nullable"), f"{where}: null not allowed"
        return
    kind = schema.get("type")
    if kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
    elif kind in TYPES:
        assert isinstance(value, TYPES[kind]), f"{where}: {value!r} is not {kind}"
        if kind == "number":
            assert not isinstance(value, bool)
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{where}: {value!r}"
    if "minimum" in schema:
        assert value >= schema["minimum"], where
    if "maximum" in schema:
        assert value <= schema["maximum"], where
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}: {name} missing"
        for name, item in value.items():
            if name in props:
                check(doc, props[name], item, f"{where}.{name}")
            else:
                assert schema.get("additionalProperties", True) is not False, \
                    f"{where}: unexpected {name}"
    if isinstance(value, list):
        if "maxItems" in schema:
            assert len(value) <= schema["maxItems"], where
        for i, item in enumerate(value):
            check(doc, schema.get("items", {}), item, f"{where}[{i}]")


def operation(doc: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The operation whose template matches; literal templates win over {recipient}."""
    candidates = sorted(doc["paths"], key=lambda t: ("{recipient}" in t, t))
    for template in candidates:
        pattern = re.escape(template).replace(r"\{id\}", "[0-9]+").replace(
            r"\{recipient\}", ".+")
        if re.fullmatch(pattern, path) and method.lower() in doc["paths"][template]:
            return template, doc["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path} is not in the document")


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    resp = await api.call("GET", f"{BASE}/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    assert doc["openapi"].startswith("3.")
    return doc


@pytest.fixture(scope="module")
def api(clients: dict[str, httpx.AsyncClient]) -> Api:  # one account for the whole module
    from tests.suppression.conftest import new_account

    return Api(clients, new_account())


async def test_every_answer_matches_the_document(document: dict[str, Any], api: Api,
                                                 config: Config) -> None:
    seen: set[tuple[str, str]] = set()

    async def expect(method: str, path: str, status: int, **kw: Any) -> httpx.Response:
        resp = await api.call(method, path, **kw)
        assert resp.status_code == status, (method, path, resp.text)
        template, op = operation(document, method, path.split("?")[0])
        seen.add((template, method.lower()))
        assert str(status) in op["responses"], f"{method} {template} {status} undocumented"
        spec = op["responses"][str(status)]
        ctype = resp.headers.get("content-type", "").split(";")[0]
        if "content" in spec:
            assert ctype in spec["content"], f"{method} {template}: {ctype}"
            if ctype == "application/json":
                check(document, spec["content"][ctype]["schema"], resp.json())
        return resp

    await expect("PUT", f"{BASE}/a@example.com", 200,
                 json={"type": "transactional", "list_id": "news"})
    await expect("PUT", f"{BASE}/a@example.com", 400, json={})
    await expect("PUT", f"{BASE}/a@example.com", 415, content=b"x",
                 headers={"Content-Type": "text/plain"})
    await expect("PUT", BASE, 200, json={"recipients": [
        {"email": "b@example.com", "transactional": True, "non_transactional": True}]})
    await expect("PUT", BASE, 400, json={"recipients": [{"recipient": "x"}, {}]})
    await expect("GET", f"{BASE}/a@example.com", 200)
    await expect("GET", f"{BASE}/nobody@example.com", 404)
    await expect("GET", BASE, 200, params={"cursor": "initial", "per_page": 1})
    await expect("GET", BASE, 200, params={"page": 1, "per_page": 1, "types": "transactional"})
    await expect("GET", BASE, 400, params={"per_page": 0})
    await expect("GET", f"{BASE}/summary", 200)
    await expect("POST", f"{BASE}/lookup", 200,
                 json={"recipients": ["a@example.com", "bad"], "type": "transactional"})
    await expect("POST", f"{BASE}/lookup", 400, json={"recipients": 1})
    await expect("GET", f"{BASE}/export", 200, params={"format": "ndjson"})
    await expect("GET", f"{BASE}/export", 200, params={"format": "csv"})
    await expect("GET", f"{BASE}/export", 400, params={"format": "xml"})
    await expect("GET", f"{BASE}/openapi.json", 200)
    await expect("POST", f"{BASE}/imports", 415, content=b"x",
                 headers={"Content-Type": "image/png"})
    await expect("POST", f"{BASE}/imports", 422, content=b"nope\n",
                 headers={"Content-Type": "text/csv"})
    job = (await expect("POST", f"{BASE}/imports", 202,
                        content=b"recipient,type\nc@example.com,transactional\nbad,x\n",
                        headers={"Content-Type": "text/csv"})).json()["results"]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(config, stop))
    try:
        while (await api.call("GET", f"{BASE}/imports/{job['id']}")).json()["results"][
                "state"] not in ("done", "failed"):
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
    await expect("GET", f"{BASE}/imports/{job['id']}", 200)
    await expect("GET", f"{BASE}/imports/{job['id']}/rejects", 200)
    await expect("GET", f"{BASE}/imports/0", 404)
    await expect("DELETE", f"{BASE}/imports/{job['id']}", 409)
    await expect("DELETE", f"{BASE}/imports/0", 404)
    await expect("GET", f"{BASE}/imports", 200)
    await expect("DELETE", f"{BASE}/a@example.com", 204, params={"list_id": "news"})
    await expect("DELETE", f"{BASE}/a@example.com", 404)
    resp = await api.call("POST", f"{BASE}/a@example.com", json={})
    assert resp.status_code == 405  # no such operation: the error shape still holds
    check(document, {"$ref": "#/components/schemas/Errors"}, resp.json())
    documented = {(t, m) for t, ops in document["paths"].items() for m in ops
                  if m in ("get", "put", "post", "delete")}
    assert documented - seen == set(), "documented but never exercised"


def test_every_route_of_both_services_is_documented(document: dict[str, Any]) -> None:
    from starlette.routing import Mount, Route

    from services.suppression.app import create_app

    for role in ("lookup", "list"):
        app = create_app(Config("postgresql://unused", KEYS), role=role)
        for route in app.routes:
            if isinstance(route, Mount | Route) and route.path in ("/healthz", "/app"):
                continue  # not the API: health, and the web UI's files
            assert isinstance(route, Route)
            template = route.path.replace("{recipient:path}", "{recipient}").replace(
                "{job_id:int}", "{id}")
            assert template in document["paths"], template
            for method in route.methods or ():
                if method != "HEAD":
                    assert method.lower() in document["paths"][template], (method, template)


async def test_the_document_is_public(clients: dict[str, httpx.AsyncClient]) -> None:
    resp = await clients["list"].get(f"{BASE}/openapi.json")
    assert resp.status_code == 200
    assert resp.json()["openapi"].startswith("3.")
