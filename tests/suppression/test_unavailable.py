"""PostgreSQL out of reach: 503 in SparkPost's shape, and /healthz says so."""

from __future__ import annotations

import httpx

from services.suppression.app import create_app
from services.suppression.config import Config
from services.suppression.store import Store
from tests.suppression.conftest import BASE, Api, new_account


async def test_a_lost_database_is_503_and_healthz_says_so(config: Config) -> None:
    store = await Store.connect(config.database_url, 1, 1)
    await store.close()
    for role in ("lookup", "list"):
        app = create_app(config, store=store, role=role)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://suppression.test") as client:
            api = Api({role: client, "lookup": client, "list": client}, new_account())
            resp = await api.call("GET", f"{BASE}/jane@example.com")
            assert resp.status_code == 503
            assert resp.json()["errors"][0]["message"] == "Service Unavailable"
            assert (await client.get("/healthz")).status_code == 503
