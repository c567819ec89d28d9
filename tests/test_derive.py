"""Keys derived from the gateway's root secret (portcullis/derive.py), and the shared
vectors the gateway's Lua (tests/lua/context_spec.lua) must reproduce too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from portcullis import derive
from portcullis.context import ContextKeys, canonical, sign

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "tests" / "vectors" / "context.json").read_text())


def test_derivation_is_hkdf_expand_of_the_root() -> None:
    root = VECTORS["root"]
    for purpose in ("context/suppression", "gateway-token"):
        expected = HKDFExpand(hashes.SHA256(), 32, f"portcullis/{purpose}".encode()).derive(
            root.encode())
        assert derive.derive(root, purpose) == expected


def test_python_reproduces_the_shared_vectors() -> None:
    root = VECTORS["root"]
    assert derive.key_id(root) == VECTORS["kid"]
    assert derive.gateway_token(root) == VECTORS["gateway_token"]
    for case in VECTORS["contexts"]:
        keys = ContextKeys.for_roots(root, case["audience"])
        assert keys.signer() == (case["kid"], bytes.fromhex(case["key_hex"]))
        fields = [case[f] for f in ("method", "uri", "account", "subaccount", "key_id",
                                    "grants", "request_id", "timestamp")]
        assert canonical(case["kid"], case["audience"], *fields).decode() == case["canonical"]
        assert sign(keys, *fields) == case["signature"]


def test_each_service_gets_a_different_key_and_none_is_the_root() -> None:
    root = VECTORS["root"]
    keys = {a: derive.context_key(root, a) for a in ("auth", "suppression", "billing")}
    assert len(set(keys.values())) == 3
    assert root.encode() not in keys.values() and bytes.fromhex(root) not in keys.values()


def test_the_command_line_prints_each_services_environment() -> None:
    env = {**os.environ, "PORTCULLIS_SIGNING_SECRET": f"{VECTORS['root']},older-root"}
    out = subprocess.run([sys.executable, "-m", "portcullis.derive", "service-env", "auth",
                          "suppression"], env=env, capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.splitlines()
    assert out[0] == ("PORTCULLIS_CONTEXT_KEYS_AUTH="
                      + derive.context_keys_value(env["PORTCULLIS_SIGNING_SECRET"], "auth"))
    assert out[1].startswith("PORTCULLIS_CONTEXT_KEYS_SUPPRESSION=" + VECTORS["kid"] + ":")
    assert len(out[1].split(",")) == 2  # both roots' keys, the signing one first
    token = subprocess.run([sys.executable, "-m", "portcullis.derive", "gateway-token"],
                           env=env, capture_output=True, text=True, check=True,
                           cwd=ROOT).stdout.strip()
    assert token.startswith("PORTCULLIS_GATEWAY_TOKEN=" + VECTORS["gateway_token"] + ",")


@pytest.mark.parametrize("argv", [[], ["service-env"], ["service-env", "Bad Name"], ["other"]])
def test_the_command_line_refuses_bad_arguments(argv: list[str]) -> None:
    env = {**os.environ, "PORTCULLIS_SIGNING_SECRET": "root"}
    res = subprocess.run([sys.executable, "-m", "portcullis.derive", *argv], env=env,
                         capture_output=True, text=True, check=False, cwd=ROOT)
    assert res.returncode == 2 and res.stderr


def test_the_command_line_needs_the_root_from_the_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORTCULLIS_SIGNING_SECRET"}
    res = subprocess.run([sys.executable, "-m", "portcullis.derive", "gateway-token"], env=env,
                         capture_output=True, text=True, check=False, cwd=ROOT)
    assert res.returncode == 2 and "PORTCULLIS_SIGNING_SECRET" in res.stderr
