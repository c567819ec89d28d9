"""The decision: may this credential do this method on this resource, for which
(sub)account? Pure policy over a resolved principal; credentials are resolved by
`keys.KeyService` (API keys) and `tokens.TokenVerifier` (JWTs)."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from authsvc.errors import Denial

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# reason -> (status, seconds the gateway may cache the denial)
REASONS: dict[str, tuple[int, int]] = {
    "request_malformed": (400, 0),
    "subaccount_malformed": (400, 60),
    "credential_missing": (401, 60),
    "credential_malformed": (401, 60),
    "key_unknown": (401, 10),
    "key_expired": (401, 300),
    "key_revoked": (401, 300),
    "credential_too_large": (401, 300),
    "jwt_malformed": (401, 300),
    "jwt_alg_none": (401, 300),
    "jwt_alg_not_allowed": (401, 300),
    "jwt_alg_confusion": (401, 300),
    "jwt_wrong_issuer": (401, 60),
    "jwt_wrong_audience": (401, 300),
    "jwt_expired": (401, 300),
    "jwt_not_yet_valid": (401, 1),
    "jwt_missing_claim": (401, 300),
    "jwt_unknown_kid": (401, 5),
    "jwt_bad_signature": (401, 300),
    "jwt_bad_claim": (401, 300),
    "ip_not_allowed": (403, 10),
    "subaccount_unknown": (403, 10),
    "subaccount_not_permitted": (403, 30),
    "grant_missing": (403, 10),
    "jwks_unavailable": (503, 0),
    "auth_unavailable": (503, 0),
}
SUBACCOUNT_RE = re.compile(r"^[0-9]{1,18}$")
METHOD_RE = re.compile(r"^[A-Z]{1,20}$")
READ_METHODS = frozenset({"GET", "HEAD"})
# The inputs of a question, besides the credential, resource, method, subaccount and route
# grants that every cache key holds, that a decision may depend on: a decision made with one
# of them answers `"vary": [...]` naming it, and a cache must key that answer by it too.
CLIENT_IP = "client_ip"


def deny(reason: str, description: str) -> Denial:
    status, ttl = REASONS[reason]
    return Denial(status, reason, description, ttl)


@dataclass(frozen=True)
class Principal:
    """Who a valid credential speaks for, and what it may do."""

    account_id: int
    subaccount_id: int | None   # the credential's own subaccount; None: a primary credential
    key_id: str
    grants: tuple[str, ...]
    networks: tuple[Network, ...] = ()
    expires_at: float | None = None  # unix seconds
    rate_limits: list[dict[str, Any]] | None = None
    # The key's place in the revocation log as read with it (the seq of its last logged
    # change; 0: none, or a token): an answer carries it, so a gateway that has heard of a
    # later change knows the answer was made from older data.
    change_seq: int = 0

    @property
    def vary(self) -> tuple[str, ...]:
        """What a decision about this principal depends on beyond the question's fixed
        parts: the client address, when the credential is bound to networks."""
        return (CLIENT_IP,) if self.networks else ()


@dataclass(frozen=True)
class Question:
    resource: str | None
    method: str
    token: str | None
    subaccount: str | None
    client_ip: str | None
    grants: tuple[str, ...] | None
    fresh: bool = False  # read the credential from the database, not a process cache

    @classmethod
    def from_body(cls, body: Any) -> Question:
        if not isinstance(body, dict):
            raise deny("request_malformed", "the body must be a JSON object")
        resource, method = body.get("resource"), body.get("method")
        token, sub, ip = body.get("token"), body.get("subaccount"), body.get("client_ip")
        grants, fresh = body.get("grants"), body.get("fresh", False)
        if isinstance(sub, int) and not isinstance(sub, bool):
            sub = str(sub)  # lenient: a gateway that sends the header as a number
        if not isinstance(method, str) or not METHOD_RE.match(method.upper()):
            raise deny("request_malformed", "`method` must be an HTTP method")
        if resource is not None and not isinstance(resource, str):
            raise deny("request_malformed", "`resource` must be a string")
        if grants is not None and (not isinstance(grants, list)
                                   or not all(isinstance(g, str) for g in grants)):
            raise deny("request_malformed", "`grants` must be a list of strings or null")
        if not isinstance(fresh, bool):
            raise deny("request_malformed", "`fresh` must be a boolean")
        if not grants and not resource:
            raise deny("request_malformed", "`resource` or `grants` is required")
        for name, value in (("token", token), ("subaccount", sub), ("client_ip", ip)):
            if value is not None and not isinstance(value, str):
                raise deny("request_malformed", f"`{name}` must be a string or null")
        assert sub is None or isinstance(sub, str)
        return cls(resource, method.upper(), token, sub, ip,
                   tuple(grants) if grants else None, fresh)

    def needed_grants(self) -> tuple[str, ...]:
        if self.grants:
            return self.grants
        if self.method in READ_METHODS:
            return (f"{self.resource}/view", f"{self.resource}/manage")
        return (f"{self.resource}/manage",)


def parse_subaccount(header: str | None) -> int | None:
    """The X-MSYS-SUBACCOUNT header: None (absent or empty), 0 or a subaccount id."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not SUBACCOUNT_RE.match(value):
        raise deny("subaccount_malformed", "X-MSYS-SUBACCOUNT must be a whole number")
    return int(value)


def client_allowed(principal: Principal, client_ip: str | None) -> bool:
    if not principal.networks:
        return True
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    # An IPv4 address and its IPv4-mapped IPv6 form are one client, whichever form the
    # address or the network is written in.
    forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        forms.append(address.ipv4_mapped)
    elif isinstance(address, ipaddress.IPv4Address):
        forms.append(ipaddress.IPv6Address(f"::ffff:{address}"))
    return any(form in net for form in forms for net in principal.networks)


SubaccountCheck = Callable[[int, int], Awaitable[bool]]


async def acting_subaccount(principal: Principal, wanted: int | None,
                            exists: SubaccountCheck) -> int | None:
    """The subaccount the request acts for, per SparkPost's rules."""
    own = principal.subaccount_id
    if own is not None:
        if wanted is None or wanted == own:
            return own
        raise deny("subaccount_not_permitted",
                   "a subaccount's credential cannot act for another subaccount or the primary")
    if wanted is None or wanted == 0:
        return wanted
    if not await exists(principal.account_id, wanted):
        raise deny("subaccount_unknown", f"subaccount {wanted} is not part of this account")
    return wanted


def decide(principal: Principal, question: Question, subaccount_id: int | None,
           decision_ttl: int, default_limits: list[dict[str, Any]],
           now: float | None = None) -> dict[str, Any]:
    needed = question.needed_grants()
    if not any(g in principal.grants for g in needed):
        raise deny("grant_missing", f"this credential needs one of: {', '.join(needed)}")
    ttl = decision_ttl
    if principal.expires_at is not None:
        left = principal.expires_at - (time.time() if now is None else now)
        ttl = max(1, min(ttl, int(left)))
    answer = {
        "account_id": principal.account_id,
        "subaccount_id": subaccount_id,
        "key_id": principal.key_id,
        "grants": list(principal.grants),
        "plan": {"rate_limits": principal.rate_limits
                 if principal.rate_limits is not None else default_limits},
        "ttl": ttl,
        "key_seq": principal.change_seq,
    }
    if principal.vary:
        answer["vary"] = list(principal.vary)
    return answer
