"""The operators' CLI drives the admin API end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from authsvc import cli
from tests.authsvc.conftest import ADMIN_TOKEN, Api, unique
from tests.authsvc.jwtfix import AUDIENCE, public_pem, rsa_key


async def run(api: Api, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = await asyncio.to_thread(cli.main, ["--url", api.base, "--token", ADMIN_TOKEN,
                                              *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


async def test_the_cli_creates_accounts_subaccounts_keys_and_issuers_and_revokes(
        api: Api, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    account = await run(api, capsys, "create-account", unique("cli"), "--max-keys", "10")
    assert account["max_keys"] == 10
    sub = await run(api, capsys, "create-subaccount", str(account["id"]), "eu")
    key = await run(api, capsys, "create-key", str(account["id"]), "--subaccount",
                    str(sub["id"]), "--grant", "suppression_lists/view", "--valid-ip",
                    "127.0.0.0/8")
    decision = (await api.authorize(key["key"])).json()
    assert (decision["account_id"], decision["subaccount_id"]) == (account["id"], sub["id"])
    rotated = await run(api, capsys, "rotate-key", key["id"], "--grace", "0")
    assert (await api.authorize(rotated["key"])).status_code == 200
    await run(api, capsys, "revoke-key", rotated["id"])
    assert (await api.authorize(rotated["key"])).json()["reason"] == "key_revoked"
    shown = await run(api, capsys, "show-key", rotated["id"])
    assert shown["revoked"] is True and "key" not in shown and shown["created_by"] == "admin"
    pem = tmp_path / "idp.pem"
    pem.write_text(public_pem(rsa_key()))
    issuer = await run(api, capsys, "create-issuer", "--name", unique("idp"), "--issuer",
                       f"https://{unique('idp')}/", "--account-id", str(account["id"]),
                       "--audience", AUDIENCE, "--alg", "RS256", "--public-key",
                       f"k1={pem}")
    listed = await run(api, capsys, "list-issuers")
    assert issuer["id"] in [i["id"] for i in listed]


async def test_the_cli_says_what_went_wrong_and_exits_non_zero(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(cli.main, ["--url", api.base, "--token", "wrong",
                                              "revoke-key", "k_x"])
    assert code == 1 and "401" in capsys.readouterr().err
