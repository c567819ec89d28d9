"""Every secret a part of the stack holds, derived from the gateway's root secret, so that
each part holds only its own.

The root (`PORTCULLIS_SIGNING_SECRET`, kept by the gateway alone) never leaves the gateway
and the launcher. From it:

- each service's **context key**: the key the gateway signs that service's context with
  and the only one the service holds to verify it (`context_key(root, audience)`); a context
  made for one service is worthless at another, and a service cannot forge one for another;
- the **gateway token**: the credential the gateway shows the auth service's internal API
  (`/v1/authorize`, `/v1/revocations`), so no one else can ask for decisions or choose the
  `client_ip` a decision is made for (`gateway_token(root)`);
- the root's **key id**: names the root in every signature, so that two roots can be live
  at once while one is rotated out (`key_id(root)`).

Derivation is HKDF-Expand (RFC 5869) with SHA-256 and one output block,
`HMAC-SHA256(root, "portcullis/" + purpose + 0x01)`; the root is 256 random bits already, so
the extract step adds nothing. lua/gw/keys.lua derives the same; tests/test_derive.py holds
both to shared vectors.

`PORTCULLIS_SIGNING_SECRET` may list several roots, comma-separated: the first signs, and
services are given the keys of all of them (rotation: add the new root first, hand the
services their new key lists, then drop the old root).

    python -m portcullis.derive service-env AUDIENCE...   # PORTCULLIS_CONTEXT_KEYS lines
    python -m portcullis.derive gateway-token             # PORTCULLIS_GATEWAY_TOKEN=...
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys

AUDIENCE_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
KEY_ID_LENGTH = 8


def roots(value: str) -> list[str]:
    """The roots in a PORTCULLIS_SIGNING_SECRET value: the signing one first."""
    found = [r.strip() for r in value.split(",") if r.strip()]
    if not found:
        raise ValueError("no signing secret given")
    return found


def derive(root: str, purpose: str) -> bytes:
    info = f"portcullis/{purpose}".encode() + b"\x01"
    return hmac.new(root.encode(), info, hashlib.sha256).digest()


def key_id(root: str) -> str:
    return hashlib.sha256(b"portcullis/kid\x00" + root.encode()).hexdigest()[:KEY_ID_LENGTH]


def context_key(root: str, audience: str) -> bytes:
    if not AUDIENCE_RE.fullmatch(audience):
        raise ValueError(f"audience {audience!r} is not a service name")
    return derive(root, f"context/{audience}")


def context_keys_value(secret: str, audience: str) -> str:
    """The PORTCULLIS_CONTEXT_KEYS value of a service: `kid:hexkey` for each root."""
    return ",".join(f"{key_id(r)}:{context_key(r, audience).hex()}" for r in roots(secret))


def gateway_token(root: str) -> str:
    return derive(root, "gateway-token").hex()


def gateway_tokens_value(secret: str) -> str:
    """The PORTCULLIS_GATEWAY_TOKEN value of the auth service: every root's token."""
    return ",".join(gateway_token(r) for r in roots(secret))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    secret = os.environ.get("PORTCULLIS_SIGNING_SECRET", "")
    if not secret.strip():
        print("set PORTCULLIS_SIGNING_SECRET (the gateway's root secret)", file=sys.stderr)
        return 2
    if args[:1] == ["gateway-token"] and len(args) == 1:
        print(f"PORTCULLIS_GATEWAY_TOKEN={gateway_tokens_value(secret)}")
        return 0
    if args[:1] == ["service-env"] and len(args) > 1:
        for audience in args[1:]:
            try:
                value = context_keys_value(secret, audience)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 2
            name = re.sub(r"[^A-Z0-9]", "_", audience.upper())
            print(f"PORTCULLIS_CONTEXT_KEYS_{name}={value}")
        return 0
    print(__doc__.split("\n\n    ")[-1] if __doc__ else "", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
