"""JWT bearer tokens from configured issuers (PyJWT). Each issuer belongs to one account;
its tokens speak for that account, a subaccount named in a claim, and the grants in a claim.
Every refusal names its reason."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from authsvc.cache import TTLCache
from authsvc.config import Config
from authsvc.decision import Principal, deny
from authsvc.errors import Invalid
from authsvc.jwks import JwksCache, JwksUnavailable, key_set, pick
from authsvc.keys import GRANT_RE
from authsvc.store import IssuerRecord, Store

SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512"})
MIN_SECRET = 32  # bytes: RFC 7518 wants an HMAC key at least as long as the hash
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CLAIM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:./-]{0,63}$")
ISSUER_CACHE_TTL = 30.0
SubaccountCheck = Callable[[int, int], Awaitable[bool]]


# -- issuers as operators configure them


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


# -- verification


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified: only to choose the issuer and key. PyJWT then
    verifies the token from scratch."""
    try:
        head, body, _ = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise deny("jwt_malformed", "the bearer token is not a JWT") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise deny("jwt_malformed", "the bearer token is not a JWT")
    return header, claims


@dataclass(frozen=True)
class Issuer:
    record: IssuerRecord
    static_keys: dict[str | None, jwt.PyJWK]


ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "jwt_expired"),
    (jwt.ImmatureSignatureError, "jwt_not_yet_valid"),
    (jwt.InvalidAudienceError, "jwt_wrong_audience"),
    (jwt.InvalidIssuerError, "jwt_wrong_issuer"),
    (jwt.InvalidSignatureError, "jwt_bad_signature"),
    (jwt.MissingRequiredClaimError, "jwt_missing_claim"),
    (jwt.InvalidAlgorithmError, "jwt_alg_not_allowed"),
    (jwt.InvalidKeyError, "jwt_alg_not_allowed"),
)


class TokenService:
    def __init__(self, store: Store, config: Config,
                 subaccount_exists: SubaccountCheck | None = None) -> None:
        self.store = store
        self.config = config
        self.subaccount_exists = subaccount_exists
        self.jwks = JwksCache(config.jwks_ttl, config.jwks_refetch_interval,
                              config.jwks_timeout)
        self._issuers: TTLCache[str, tuple[Issuer | None]] = TTLCache(ISSUER_CACHE_TTL, 10_000)

    def forget(self, iss: str) -> None:
        self._issuers.pop(iss)

    async def close(self) -> None:
        await self.jwks.close()

    async def principal_for(self, token: str, now: float) -> Principal:
        header, unverified = peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise deny("jwt_malformed", "the token names no algorithm")
        if alg.lower() == "none":
            raise deny("jwt_alg_none", "unsigned tokens (alg none) are refused")
        iss = unverified.get("iss")
        if not isinstance(iss, str):
            raise deny("jwt_missing_claim", "the token has no `iss`")
        issuer = await self._issuer(iss)
        if issuer is None:
            raise deny("jwt_wrong_issuer", "the token's issuer is not configured")
        record = issuer.record
        if alg not in record.algorithms:
            if alg in SYMMETRIC and not any(a in SYMMETRIC for a in record.algorithms):
                raise deny("jwt_alg_confusion",
                           "an HMAC token for an issuer that signs with public keys")
            raise deny("jwt_alg_not_allowed", f"the issuer does not allow {alg}")
        key = await self._key(issuer, alg, header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=record.audience, issuer=record.issuer,
                leeway=self.config.jwt_leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False})
        except jwt.PyJWTError as exc:
            for kind, reason in ERRORS:
                if isinstance(exc, kind):
                    raise deny(reason, f"token refused: {exc}") from exc
            raise deny("jwt_malformed", f"token refused: {exc}") from exc
        return await self._principal(record, claims)

    async def _issuer(self, iss: str) -> Issuer | None:
        cached = self._issuers.get(iss)
        if cached is not None:
            return cached[0]
        record = await self.store.issuer_by_iss(iss)
        issuer = None
        if record is not None:
            issuer = Issuer(record, key_set(record.jwks) if record.jwks else {})
        self._issuers.set(iss, (issuer,))
        return issuer

    async def _key(self, issuer: Issuer, alg: str, kid: Any) -> Any:
        record = issuer.record
        if alg in SYMMETRIC:
            assert record.secret is not None
            return record.secret.encode()
        if kid is not None and not isinstance(kid, str):
            raise deny("jwt_malformed", "`kid` must be a string")
        found = pick(issuer.static_keys, kid)
        if found is None and record.jwks_url:
            try:
                found = await self.jwks.key(record.jwks_url, kid)
            except JwksUnavailable as exc:
                raise deny("jwks_unavailable", "the issuer's keys cannot be fetched") from exc
        if found is None:
            raise deny("jwt_unknown_kid", f"no key {kid!r} for this issuer")
        return found

    async def _principal(self, record: IssuerRecord, claims: dict[str, Any]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise deny("jwt_bad_claim", "`sub` must be a string")
        subaccount = claims.get(record.subaccount_claim)
        if subaccount is not None:
            if isinstance(subaccount, str) and subaccount.isdigit():
                subaccount = int(subaccount)
            if isinstance(subaccount, bool) or not isinstance(subaccount, int) or subaccount < 1:
                raise deny("jwt_bad_claim", f"`{record.subaccount_claim}` must be a subaccount id")
            if self.subaccount_exists is not None and not await self.subaccount_exists(
                    record.account_id, subaccount):
                raise deny("jwt_bad_claim", f"subaccount {subaccount} is not in the account")
        grants = self._grants(record, claims)
        exp = claims.get("exp")
        return Principal(
            account_id=record.account_id, subaccount_id=subaccount,
            key_id=f"jwt:{record.name}:{sub}", grants=grants,
            expires_at=float(exp) + self.config.jwt_leeway
            if isinstance(exp, int | float) else None,
            rate_limits=record.rate_limits)

    @staticmethod
    def _grants(record: IssuerRecord, claims: dict[str, Any]) -> tuple[str, ...]:
        raw = claims.get(record.grants_claim)
        if raw is None and record.grants_claim == "grants":
            raw = claims.get("scope")  # OAuth's space-separated scopes
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = raw.split()
        if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
            raise deny("jwt_bad_claim", f"`{record.grants_claim}` must list grants")
        allowed = record.allowed_grants
        return tuple(g for g in dict.fromkeys(raw) if allowed is None or g in allowed)

