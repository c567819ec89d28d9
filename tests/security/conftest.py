"""Two tenants, each with a primary account and two subaccounts, keys of every kind and data
in every scope, made once per module through the real stack (gateway, auth service,
suppression services, PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.stack import Stack
from tests.stackfix import unique

BASE = "/api/v1/suppression-list"
ENTRY = {"type": "non_transactional", "description": "seeded"}
SUPPRESSION_MANAGE = ["suppression_lists/manage", "api_keys/manage"]


def auth(key: str, subaccount: int | str | None = None) -> dict[str, str]:
    headers = {"Authorization": key}
    if subaccount is not None:
        headers["X-MSYS-SUBACCOUNT"] = str(subaccount)
    return headers


def assert_sparkpost_error(resp: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    first: dict[str, Any] = body["errors"][0]
    assert {"message", "code"} <= set(first), first
    return first


@dataclass
class Scope:
    """Where seeded data lives: an account's primary (sub None) or one subaccount."""

    tenant: str        # "A" or "B"
    name: str          # "primary", "sub1", "sub2"
    account_id: int
    subaccount_id: int  # 0 for the primary
    recipient: str = ""
    import_id: str = ""
    key_id: str = ""    # an API key that belongs to this scope


@dataclass
class Account:
    name: str
    account_id: int
    sub1: int
    sub2: int
    keys: dict[str, str] = field(default_factory=dict)      # kind -> raw key
    key_ids: dict[str, str] = field(default_factory=dict)   # kind -> key id
    scopes: dict[str, Scope] = field(default_factory=dict)  # primary/sub1/sub2


@dataclass
class World:
    stack: Stack
    gw: httpx.Client
    accounts: dict[str, Account]

    def scope(self, ref: str) -> Scope:
        """"A.primary", "B.sub1"..."""
        tenant, name = ref.split(".")
        return self.accounts[tenant].scopes[name]

    def all_scopes(self) -> list[Scope]:
        return [s for a in self.accounts.values() for s in a.scopes.values()]


def make_account(stack: Stack, tenant: str) -> Account:
    account_id = stack.create_account(unique(f"sec-{tenant.lower()}"))
    acct = Account(tenant, account_id, stack.create_subaccount(account_id, unique("s1")),
                   stack.create_subaccount(account_id, unique("s2")))
    kinds: dict[str, tuple[list[str], int | None]] = {
        "manage": (SUPPRESSION_MANAGE, None),
        "view": (["suppression_lists/view"], None),
        "sub1": (SUPPRESSION_MANAGE, acct.sub1),
        "sub2": (SUPPRESSION_MANAGE, acct.sub2),
        "nogrant": (["api_keys/manage"], None),
    }
    for kind, (grants, sub) in kinds.items():
        made = stack.create_key(account_id, grants, sub, label=f"{tenant}-{kind}")
        acct.keys[kind], acct.key_ids[kind] = str(made["key"]), str(made["id"])
    for name, sub in (("primary", 0), ("sub1", acct.sub1), ("sub2", acct.sub2)):
        acct.scopes[name] = Scope(tenant, name, account_id, sub)
    acct.scopes["primary"].key_id = acct.key_ids["manage"]
    acct.scopes["sub1"].key_id = acct.key_ids["sub1"]
    acct.scopes["sub2"].key_id = acct.key_ids["sub2"]
    return acct


def seed(gw: httpx.Client, acct: Account) -> None:
    """One entry and one finished import job (with a rejected row) in every scope."""
    key = acct.keys["manage"]
    for scope in acct.scopes.values():
        scope.recipient = f"{unique(f'{acct.name}-{scope.name}')}@example.com".lower()
        put = gw.put(f"{BASE}/{scope.recipient}", json=ENTRY,
                     headers=auth(key, scope.subaccount_id))
        assert put.status_code == 200, put.text
        csv = f"recipient,type\nimp-{scope.recipient},transactional\nnot-an-address,x\n"
        job = gw.post(f"{BASE}/imports", content=csv.encode(),
                      headers={**auth(key, scope.subaccount_id), "Content-Type": "text/csv"})
        assert job.status_code == 202, job.text
        scope.import_id = job.json()["results"]["id"]
    for scope in acct.scopes.values():
        wait_import_done(gw, auth(key, scope.subaccount_id), scope.import_id)


def wait_import_done(gw: httpx.Client, headers: dict[str, str], job_id: str,
                     timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        resp = gw.get(f"{BASE}/imports/{job_id}", headers=headers)
        assert resp.status_code == 200, resp.text
        state = resp.json()["results"]["state"]
        if state in ("done", "failed", "cancelled"):
            assert state == "done", resp.text
            return
        assert time.monotonic() < deadline, f"import {job_id} still {state}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as gw:
        accounts = {t: make_account(stack, t) for t in ("A", "B")}
        for acct in accounts.values():
            seed(gw, acct)
        yield World(stack, gw, accounts)
