"""Operators' command line over the admin API.

    python -m authsvc.cli create-account acme [--max-keys 5000]
    python -m authsvc.cli create-subaccount 12 acme-eu
    python -m authsvc.cli create-key 12 --grant suppression_lists/manage --label deploy
    python -m authsvc.cli rotate-key k_3f9a... --grace 3600
    python -m authsvc.cli revoke-key k_3f9a...
    python -m authsvc.cli create-issuer --name idp --issuer https://idp.example.com/ \\
        --account-id 12 --audience portcullis --alg RS256 --jwks-url https://idp/.well-known/jwks.json

`--url` (or AUTHSVC_URL, default http://127.0.0.1:8100) and `--token` (or
PORTCULLIS_ADMIN_TOKEN). Prints the answer's `results` as JSON; exits 1 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m authsvc.cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("AUTHSVC_URL", "http://127.0.0.1:8100"))
    p.add_argument("--token", default=os.environ.get("PORTCULLIS_ADMIN_TOKEN"))
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("create-account", help="create an account")
    c.add_argument("name")
    c.add_argument("--rate-limits", help="the plan's rate limits, as JSON")
    c.add_argument("--max-keys", type=int, help="live keys it may hold (default: the "
                   "service's AUTHSVC_MAX_KEYS)")

    c = sub.add_parser("create-subaccount", help="create a subaccount of an account")
    c.add_argument("account_id", type=int)
    c.add_argument("name")

    c = sub.add_parser("create-key", help="create an API key (shown once)")
    c.add_argument("account_id", type=int)
    c.add_argument("--grant", action="append", required=True, dest="grants")
    c.add_argument("--label", default="created by the CLI")
    c.add_argument("--subaccount", type=int, dest="subaccount_id")
    c.add_argument("--valid-ip", action="append", dest="valid_ips")
    c.add_argument("--expires-at", help="ISO-8601")

    for name, text in (("show-key", "show a key (never the key itself)"),
                       ("revoke-key", "revoke a key")):
        c = sub.add_parser(name, help=text)
        c.add_argument("key_id")
    c = sub.add_parser("rotate-key", help="a new key; the old one works for --grace seconds")
    c.add_argument("key_id")
    c.add_argument("--grace", type=int, dest="grace_seconds")

    c = sub.add_parser("create-issuer", help="trust a JWT issuer for an account")
    c.add_argument("--name", required=True)
    c.add_argument("--issuer", required=True, help="the `iss` its tokens carry")
    c.add_argument("--account-id", type=int, required=True)
    c.add_argument("--audience", required=True)
    c.add_argument("--alg", action="append", required=True, dest="algorithms")
    c.add_argument("--secret", help="HMAC secret (HS256)")
    c.add_argument("--jwks-url")
    c.add_argument("--public-key", action="append", default=[], metavar="KID=PEMFILE")
    c.add_argument("--allowed-grant", action="append", dest="allowed_grants")
    sub.add_parser("list-issuers", help="list the JWT issuers")
    return p


def request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    a = vars(args)
    if args.command == "create-account":
        body: dict[str, Any] = {"name": args.name}
        if args.rate_limits:
            body["rate_limits"] = json.loads(args.rate_limits)
        if args.max_keys is not None:
            body["max_keys"] = args.max_keys
        return "POST", "/admin/accounts", body
    if args.command == "create-subaccount":
        return "POST", f"/admin/accounts/{args.account_id}/subaccounts", {"name": args.name}
    if args.command == "create-key":
        fields = ("account_id", "subaccount_id", "label", "grants", "valid_ips", "expires_at")
        return "POST", "/admin/keys", {f: a[f] for f in fields if a[f] is not None}
    if args.command == "show-key":
        return "GET", f"/admin/keys/{args.key_id}", None
    if args.command == "revoke-key":
        return "DELETE", f"/admin/keys/{args.key_id}", None
    if args.command == "rotate-key":
        return "POST", f"/admin/keys/{args.key_id}/rotate", {"grace_seconds": args.grace_seconds}
    if args.command == "create-issuer":
        issuer_fields = ("name", "issuer", "account_id", "audience", "algorithms", "secret",
                         "jwks_url", "allowed_grants")
        body = {f: a[f] for f in issuer_fields if a[f] is not None}
        keys = []
        for item in args.public_key:
            kid, _, path = item.partition("=")
            keys.append({"kid": kid, "pem": Path(path).read_text()})
        if keys:
            body["public_keys"] = keys
        return "POST", "/admin/issuers", body
    return "GET", "/admin/issuers", None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        print("the admin token is needed: --token or PORTCULLIS_ADMIN_TOKEN", file=sys.stderr)
        return 2
    method, path, body = request(args)
    try:
        resp = httpx.request(method, args.url.rstrip("/") + path, json=body, timeout=10,
                             headers={"Authorization": f"Bearer {args.token}"})
    except httpx.HTTPError as exc:
        print(f"cannot reach the auth service at {args.url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code >= 400:
        print(f"{resp.status_code}: {resp.text}", file=sys.stderr)
        return 1
    if resp.status_code == 204:
        print(json.dumps({"ok": True}))
    else:
        print(json.dumps(resp.json()["results"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
