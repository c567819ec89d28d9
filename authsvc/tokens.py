"""JWT bearer tokens from configured issuers (PyJWT). Each issuer belongs to one account;
its tokens speak for that account, a subaccount named in a claim, and the grants in a claim.
Every refusal names its reason."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt

from authsvc.cache import TTLCache
from authsvc.config import Config
from authsvc.decision import Principal, SubaccountCheck, deny
from authsvc.issuers import SYMMETRIC
from authsvc.jwks import JwksCache, JwksUnavailable, key_set, pick
from authsvc.store import IssuerRecord, Store

ISSUER_CACHE_TTL = 30.0
# What becomes a header the gateway sends upstream (X-Key-Id is `jwt:<issuer>:<sub>`,
# X-Grants the grants): a subject or a grant that could not be sent as one is refused.
MAX_SUBJECT = 200
MAX_GRANT = 128
MAX_TOKEN_GRANTS = 64
UNSENDABLE = re.compile(r"[\x00-\x1f\x7f,]")  # control characters, DEL, the list separator
VISIBLE = re.compile(r"[\x21-\x24\x26-\x7e]")  # visible ASCII but %
SENDABLE_GRANT = re.compile(rf"[\x21-\x2b\x2d-\x7e]{{1,{MAX_GRANT}}}")  # visible, no comma


def subject_key(sub: str) -> str:
    """The subject as it goes into the key id: visible ASCII as it is, anything else (a
    space, non-ASCII, `%`) percent-encoded as UTF-8, so distinct subjects stay distinct and
    the value is always a valid header value."""
    return "".join(c if VISIBLE.fullmatch(c) else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
                   for c in sub)


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

    async def principal_for(self, token: str, now: float, fresh: bool = False) -> Principal:
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
            raise deny("jwt_unknown_kid", f"no key {str(kid)[:64]!r} for this issuer")
        return found

    async def _principal(self, record: IssuerRecord, claims: dict[str, Any]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise deny("jwt_bad_claim", "`sub` must be a string")
        if (len(sub) > MAX_SUBJECT or UNSENDABLE.search(sub)
                or len(subject_key(sub)) > 3 * MAX_SUBJECT):
            raise deny("jwt_bad_claim", f"`sub` must be at most {MAX_SUBJECT} characters, with "
                       "no control characters and no commas")
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
        # The token's life is `exp` itself: the leeway forgives clocks when verifying, it
        # does not lengthen the token (nor the decisions, nor the keys it may make).
        return Principal(
            account_id=record.account_id, subaccount_id=subaccount,
            key_id=f"jwt:{record.name}:{subject_key(sub)}", grants=grants,
            expires_at=float(exp) if isinstance(exp, int | float) else None,
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
        if len(raw) > MAX_TOKEN_GRANTS or not all(SENDABLE_GRANT.fullmatch(g) for g in raw):
            raise deny("jwt_bad_claim", f"`{record.grants_claim}` must list at most "
                       f"{MAX_TOKEN_GRANTS} grants of visible ASCII characters, no commas, "
                       f"each at most {MAX_GRANT}")
        allowed = record.allowed_grants
        return tuple(g for g in dict.fromkeys(raw) if allowed is None or g in allowed)

