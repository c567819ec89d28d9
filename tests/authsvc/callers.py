"""Customers of /api/v1/api-keys as the gateway presents them: a real credential (an API key
or a JWT) in `Authorization`, and the signed context the gateway set after deciding about
it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from portcullis.context import signed_headers
from tests.authsvc.conftest import CONTEXT_KEYS, Api
from tests.authsvc.jwtfix import Issuer

PATH = "/api/v1/api-keys"
MANAGE = "api_keys/manage"
ALL = (MANAGE, "suppression_lists/manage", "suppression_lists/view")


@dataclass
class Caller:
    """One credential calling the customer API; `subaccount_id` is the context's (what
    the gateway decided the request acts for: None, 0 or a subaccount)."""

    api: Api
    account_id: int
    key_id: str
    grants: tuple[str, ...]
    authorization: str | None
    subaccount_id: int | None = None
    key: dict[str, Any] = field(default_factory=dict)  # the admin API's answer, for a key

    async def call(self, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        sent = signed_headers(CONTEXT_KEYS, method, path, account_id=self.account_id,
                              subaccount_id=self.subaccount_id, key_id=self.key_id,
                              grants=self.grants)
        if self.authorization is not None:
            sent["Authorization"] = self.authorization
        sent.update(headers or {})
        return await self.api.client.request(method, self.api.base + path, json=json,
                                             headers=sent)

    async def create(self, grants: list[str], label: str = "made by a customer",
                     **extra: Any) -> httpx.Response:
        return await self.call("POST", PATH, {"label": label, "grants": grants, **extra})

    async def made(self, grants: list[str], **extra: Any) -> dict[str, Any]:
        """A key this caller creates (which must succeed)."""
        r = await self.create(grants, **extra)
        assert r.status_code == 200, r.text
        results: dict[str, Any] = r.json()["results"]
        return results

    def acting_for(self, subaccount_id: int | None) -> Caller:
        """The same credential under another context subaccount."""
        return Caller(self.api, self.account_id, self.key_id, self.grants, self.authorization,
                      subaccount_id, self.key)


async def key_caller(api: Api, account_id: int, subaccount_id: int | None = None,
                     grants: tuple[str, ...] = ALL, *, own_subaccount: int | None = None,
                     **key_fields: Any) -> Caller:
    """A caller holding a real key made by the admin API with these grants and fields
    (`valid_ips`, `expires_at`); the key is primary unless `own_subaccount` is given."""
    key = await api.key(account_id, list(grants), subaccount_id=own_subaccount, **key_fields)
    return of_key(api, account_id, key, subaccount_id)


def of_key(api: Api, account_id: int, key: dict[str, Any],
           subaccount_id: int | None = None) -> Caller:
    """A caller holding `key` (an answer that carries `key`, from either API)."""
    if key.get("subaccount_id") is not None and subaccount_id is None:
        subaccount_id = key["subaccount_id"]  # a subaccount's key always acts for it
    return Caller(api, account_id, key["id"], tuple(key["grants"]), key["key"],
                  subaccount_id, key)


def jwt_caller(api: Api, account_id: int, issuer: Issuer, sub: str = "user-1",
               **claims: Any) -> Caller:
    token = issuer.token(sub=sub, **claims)
    grants = tuple(claims.get("grants", issuer.claims()["grants"]))
    return Caller(api, account_id, f"jwt:{issuer.name}:{sub}", grants, f"Bearer {token}")
