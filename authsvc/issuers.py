"""JWT issuers as operators configure them: checked settings, PEM keys as JWKs, and the
view the admin API shows (never the HMAC secret)."""

from __future__ import annotations

import re
from typing import Any

from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from authsvc.errors import Invalid
from authsvc.jwks import key_set
from authsvc.keys import GRANT_RE
from authsvc.store import IssuerRecord

SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512"})
MIN_SECRET = 32  # bytes: RFC 7518 wants an HMAC key at least as long as the hash
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CLAIM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:./-]{0,63}$")


def check_issuer(body: dict[str, Any]) -> dict[str, Any]:
    name, iss, audience = body.get("name"), body.get("issuer"), body.get("audience")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise Invalid("`name` must match [a-z0-9][a-z0-9_.-]{0,63}")
    if not isinstance(iss, str) or not iss:
        raise Invalid("`issuer` (the `iss` the tokens carry) is required")
    if not isinstance(audience, str) or not audience:
        raise Invalid("`audience` (the `aud` the tokens must carry) is required")
    account_id = body.get("account_id")
    if isinstance(account_id, bool) or not isinstance(account_id, int):
        raise Invalid("`account_id` must be a whole number")
    algorithms = body.get("algorithms")
    if (not isinstance(algorithms, list) or not algorithms
            or not all(a in SYMMETRIC | ASYMMETRIC for a in algorithms)):
        raise Invalid(f"`algorithms` must list some of {sorted(SYMMETRIC | ASYMMETRIC)}")
    secret, jwks, jwks_url = body.get("secret"), body.get("jwks"), body.get("jwks_url")
    if any(a in SYMMETRIC for a in algorithms):
        if not isinstance(secret, str) or len(secret.encode()) < MIN_SECRET:
            raise Invalid(f"HMAC algorithms need a `secret` of at least {MIN_SECRET} bytes")
    elif secret is not None:
        raise Invalid("`secret` is only for HMAC algorithms")
    public_keys = body.get("public_keys")
    if public_keys is not None:
        jwks = {"keys": [*(jwks or {}).get("keys", []), *pem_jwks(public_keys)]}
    if jwks is not None:
        try:
            key_set(jwks)
        except Exception as exc:
            raise Invalid(f"`jwks` holds no usable public key: {exc}") from exc
    if jwks_url is not None and (not isinstance(jwks_url, str)
                                 or not jwks_url.startswith(("https://", "http://"))):
        raise Invalid("`jwks_url` must be an http(s) URL")
    if any(a in ASYMMETRIC for a in algorithms) and jwks is None and jwks_url is None:
        raise Invalid("RSA and EC algorithms need `jwks`, `public_keys` or `jwks_url`")
    allowed = body.get("allowed_grants")
    if allowed is not None and (not isinstance(allowed, list) or not all(
            isinstance(g, str) and GRANT_RE.match(g) for g in allowed)):
        raise Invalid("`allowed_grants` must be a list of grants")
    claims = {c: body.get(c) or default for c, default in
              (("subaccount_claim", "subaccount_id"), ("grants_claim", "grants"))}
    for field, claim in claims.items():
        if not isinstance(claim, str) or not CLAIM_RE.match(claim):
            raise Invalid(f"`{field}` must be a claim name")
    return {"name": name, "issuer": iss, "account_id": account_id, "audience": audience,
            "algorithms": list(dict.fromkeys(algorithms)), "secret": secret, "jwks": jwks,
            "jwks_url": jwks_url, "allowed_grants": allowed, **claims}


def pem_jwks(public_keys: Any) -> list[dict[str, Any]]:
    """`[{"kid", "pem"}]` as JWKs."""
    if not isinstance(public_keys, list):
        raise Invalid("`public_keys` must be a list of {kid, pem}")
    out = []
    for item in public_keys:
        if not isinstance(item, dict) or not isinstance(item.get("pem"), str):
            raise Invalid("each of `public_keys` needs a `pem`")
        pem = item["pem"].encode()
        try:
            jwk = RSAAlgorithm.to_jwk(RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(pem),
                                      as_dict=True)
        except Exception:
            try:
                jwk = ECAlgorithm.to_jwk(ECAlgorithm(ECAlgorithm.SHA256).prepare_key(pem),
                                         as_dict=True)
            except Exception as exc:
                raise Invalid("a `pem` is not an RSA or EC public key") from exc
        if "d" in jwk:
            raise Invalid("`public_keys` must hold public keys, never private ones")
        if item.get("kid"):
            jwk["kid"] = str(item["kid"])
        out.append(jwk)
    return out


def describe_issuer(record: IssuerRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "issuer": record.issuer,
            "account_id": record.account_id, "audience": record.audience,
            "algorithms": list(record.algorithms), "has_secret": record.secret is not None,
            "jwks": record.jwks, "jwks_url": record.jwks_url,
            "subaccount_claim": record.subaccount_claim, "grants_claim": record.grants_claim,
            "allowed_grants": None if record.allowed_grants is None
            else list(record.allowed_grants)}
