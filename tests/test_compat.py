"""SparkPost compatibility, second pass (issue 18), through the gateway: each point as
SparkPost's public documentation states it."""

from __future__ import annotations

import httpx

from tests.stackfix import Tenant, unique

BASE = "/api/v1/suppression-list"


# -- API conventions: "a trailing slash is ignored" -----------------------------------------

def test_a_trailing_slash_is_ignored_on_every_public_path(gw: httpx.Client,
                                                          tenant: Tenant) -> None:
    key = {"Authorization": tenant.key}
    who = f"{unique('slash')}@example.com"
    bulk = gw.put(f"{BASE}/", json={"recipients": [{"recipient": who,
                                                    "type": "transactional"}]}, headers=key)
    assert bulk.status_code == 200, bulk.text
    found = gw.get(f"{BASE}/?per_page=1", headers=key)
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["recipient"] == who
    for path in (f"{BASE}/{who}", f"{BASE}/{who}/"):
        one = gw.get(path, headers=key)
        assert one.status_code == 200, (path, one.text)
        assert one.json()["results"][0]["recipient"] == who
    put = gw.put(f"{BASE}/{who}/", json={"type": "non_transactional"}, headers=key)
    assert put.status_code == 200, put.text
    assert gw.get(f"{BASE}/summary/", headers=key).status_code == 200
    lookup = gw.post(f"{BASE}/lookup/", json={"recipients": [who]}, headers=key)
    assert lookup.status_code == 200 and lookup.json()["results"]["suppressed"], lookup.text
    assert gw.get(f"{BASE}/imports/", headers=key).status_code == 200
    assert gw.delete(f"{BASE}/{who}/", headers=key).status_code == 204
    assert gw.get(f"{BASE}/{who}", headers=key).status_code == 404
    manager = tenant.new_key(["api_keys/manage"])
    assert gw.get("/api/v1/api-keys/", headers={"Authorization": manager}).status_code == 200
    # the web UI's folder keeps its slash
    page = gw.get("/app/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
