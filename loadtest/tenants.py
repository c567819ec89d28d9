"""Accounts, subaccounts, keys and seed suppressions, made once at test start.

Accounts come from the auth service's admin API with a plan far above what a load test
sends (the default plan, 1000 req/s per key, would turn a load test into a rate-limit
test); seed suppressions go in by bulk PUT through the gateway, so lookups hit."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per admin call is noise

BASE = "/api/v1/suppression-list"
PLAN = [{"dimension": "key", "limit": 1_000_000, "window": 1},
        {"dimension": "account", "limit": 1_000_000, "window": 1}]
DOMAINS = 100
BULK_MAX = 10_000  # entries per bulk PUT (the API's limit)


class SetupError(RuntimeError):
    pass


@dataclass
class Tenant:
    account_id: int
    subaccount_id: int
    sender_key: str   # suppression_lists/view: the sending pipeline only reads
    manage_key: str   # primary account, suppression_lists/manage
    sub_key: str      # the subaccount's own key, suppression_lists/manage
    seeded: int
    tag: str          # makes this run's recipients unique

    def seeded_recipient(self, rng: random.Random) -> str:
        i = rng.randrange(self.seeded)
        return f"seed{i}@d{i % DOMAINS}.{self.tag}.example"

    def unknown_recipient(self, rng: random.Random) -> str:
        return f"nobody{rng.randrange(10**9)}@d{rng.randrange(DOMAINS)}.{self.tag}.example"

    def domain(self, rng: random.Random) -> str:
        return f"d{rng.randrange(DOMAINS)}.{self.tag}.example"


@dataclass
class Tenants:
    tenants: list[Tenant] = field(default_factory=list)

    def pick(self, rng: random.Random) -> Tenant:
        if not self.tenants:
            raise SetupError("no tenants: the test-start set-up failed or has not run")
        return rng.choice(self.tenants)


class Admin:
    def __init__(self, url: str, token: str) -> None:
        if not token:
            raise SetupError("no admin token: set PORTCULLIS_ADMIN_TOKEN or --admin-token "
                             "(make run keeps it in var/admin-token)")
        self.http = httpx.Client(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise SetupError(f"admin API {self.http.base_url}{path}: {exc}") from exc
        if resp.status_code != 201:
            raise SetupError(f"admin API {path}: {resp.status_code} {resp.text[:300]}")
        result: dict[str, Any] = resp.json()["results"]
        return result

    def key(self, account_id: int, grants: list[str], subaccount_id: int | None,
            label: str) -> str:
        return str(self.post("/admin/keys", {"account_id": account_id, "label": label,
                                             "subaccount_id": subaccount_id,
                                             "grants": grants})["key"])


def seed(gateway: str, key: str, tag: str, count: int) -> None:
    with httpx.Client(base_url=gateway, timeout=120, headers={"Authorization": key}) as http:
        for start in range(0, count, BULK_MAX):
            entries = [{"recipient": f"seed{i}@d{i % DOMAINS}.{tag}.example",
                        "type": "transactional" if i % 2 else "non_transactional",
                        "description": f"loadtest seed {i}"}
                       for i in range(start, min(count, start + BULK_MAX))]
            resp = http.put(BASE, json={"recipients": entries})
            if resp.status_code != 200:
                raise SetupError(f"seeding {BASE}: {resp.status_code} {resp.text[:300]}")


def make_tenants(gateway: str, admin_url: str, admin_token: str, accounts: int,
                 seeded: int) -> Tenants:
    admin = Admin(admin_url, admin_token)
    out = Tenants()
    try:
        for n in range(accounts):
            tag = f"lt{uuid.uuid4().hex[:10]}"
            account = int(admin.post("/admin/accounts",
                                     {"name": f"loadtest-{tag}", "rate_limits": PLAN})["id"])
            sub = int(admin.post(f"/admin/accounts/{account}/subaccounts",
                                 {"name": f"loadtest-{tag}-sub"})["id"])
            tenant = Tenant(
                account_id=account, subaccount_id=sub,
                sender_key=admin.key(account, ["suppression_lists/view"], None, f"sender{n}"),
                manage_key=admin.key(account, ["suppression_lists/manage"], None, f"api{n}"),
                sub_key=admin.key(account, ["suppression_lists/manage"], sub, f"sub{n}"),
                seeded=max(1, seeded), tag=tag)
            seed(gateway, tenant.manage_key, tag, tenant.seeded)
            out.tenants.append(tenant)
    finally:
        admin.http.close()
    return out
