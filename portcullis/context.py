"""The caller's context, set and signed by the gateway, verified by every service.

The gateway sets these headers after a positive auth decision and removes any the client sent:

    X-Account-Id          the account (an integer)
    X-Subaccount-Id       "" (none named: a primary key without X-MSYS-SUBACCOUNT),
                          "0" (the primary account only) or a subaccount id
    X-Key-Id              the credential's id (an API key id, or "jwt:<issuer>:<subject>")
    X-Grants              comma-separated grants of the credential
    X-Request-Id          the request id
    X-Gateway-Timestamp   unix seconds when the gateway signed
    X-Gateway-Signature   <kid>:<hex HMAC-SHA256 over the canonical string below>

A context is made for one service, its audience (the route's `service`). The gateway signs
it with that service's own key, derived from the gateway's root secret
(portcullis/derive.py); the service holds only its own key (or two, while the root is
rotated, told apart by the key id `kid`), so it can neither forge a context for another
service nor accept one made for another. The canonical string names the key and the
audience, and binds the context to this request's method and URI, so a captured signature
cannot be replayed on another path or at another service:

    v2\n<kid>\n<audience>\n<METHOD>\n<request-uri>\n<account>\n<subaccount>\n<key_id>\n<grants>\n<request_id>\n<ts>

The Lua side lives in lua/gw/context.lua; tests/test_derive.py holds both to shared vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from portcullis import derive
from portcullis.errors import APIError, error_response

CONTEXT_HEADERS = (
    "x-account-id",
    "x-subaccount-id",
    "x-key-id",
    "x-grants",
    "x-request-id",
    "x-gateway-timestamp",
    "x-gateway-signature",
)
DEFAULT_WINDOW = 60  # seconds a signature stays valid (clock skew plus queueing)


@dataclass(frozen=True)
class Context:
    account_id: int
    subaccount_id: int | None  # None: no subaccount named (primary key, no header)
    key_id: str
    grants: tuple[str, ...]
    request_id: str

    def has_grant(self, *wanted: str) -> bool:
        return any(g in self.grants for g in wanted)


class ContextError(APIError):
    def __init__(self, description: str) -> None:
        super().__init__(401, "Unauthorized", description, "1401")


KID_RE = re.compile(r"[0-9a-f]{1,32}")
HEX_KEY_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ContextKeys:
    """What a service verifies with: its audience and its keys by key id (the first signs,
    where this side signs: the gateway, and tests standing in for it)."""

    audience: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not derive.AUDIENCE_RE.fullmatch(self.audience):
            raise ValueError(f"audience {self.audience!r} is not a service name")
        if not self.keys:
            raise ValueError("no context key")

    @classmethod
    def parse(cls, audience: str, value: str) -> ContextKeys:
        """`kid:hexkey[,kid:hexkey]`, as PORTCULLIS_CONTEXT_KEYS carries it."""
        keys: dict[str, bytes] = {}
        for item in value.split(","):
            kid, _, hexkey = item.strip().partition(":")
            if not KID_RE.fullmatch(kid) or not HEX_KEY_RE.fullmatch(hexkey):
                raise ValueError("PORTCULLIS_CONTEXT_KEYS must be kid:hexkey[,kid:hexkey], "
                                 "as `python -m portcullis.derive service-env` prints")
            keys[kid] = bytes.fromhex(hexkey)
        return cls(audience, keys)

    @classmethod
    def from_env(cls, env: Mapping[str, str], audience: str) -> ContextKeys:
        """The keys a service was given: PORTCULLIS_CONTEXT_KEYS, for the audience
        PORTCULLIS_CONTEXT_AUDIENCE (default: the service's own name)."""
        value = env.get("PORTCULLIS_CONTEXT_KEYS", "")
        if not value.strip():
            raise ValueError("PORTCULLIS_CONTEXT_KEYS is not set (the service's context key; "
                             "`python -m portcullis.derive service-env <audience>` makes it "
                             "from the gateway's root secret)")
        return cls.parse(env.get("PORTCULLIS_CONTEXT_AUDIENCE") or audience, value)

    @classmethod
    def for_roots(cls, secret: str, audience: str) -> ContextKeys:
        """The keys derived from the gateway's root secret(s): for the launcher and tests."""
        return cls(audience, {derive.key_id(r): derive.context_key(r, audience)
                              for r in derive.roots(secret)})

    def signer(self) -> tuple[str, bytes]:
        kid = next(iter(self.keys))
        return kid, self.keys[kid]


def canonical(kid: str, audience: str, method: str, uri: str, account: str, subaccount: str,
              key_id: str, grants: str, request_id: str, timestamp: str) -> bytes:
    parts = ("v2", kid, audience, method.upper(), uri, account, subaccount, key_id, grants,
             request_id, timestamp)
    return "\n".join(parts).encode()


def sign(keys: ContextKeys, method: str, uri: str, account: str, subaccount: str,
         key_id: str, grants: str, request_id: str, timestamp: str) -> str:
    kid, key = keys.signer()
    msg = canonical(kid, keys.audience, method, uri, account, subaccount, key_id, grants,
                    request_id, timestamp)
    return f"{kid}:{hmac.new(key, msg, hashlib.sha256).hexdigest()}"


def signed_headers(keys: ContextKeys, method: str, uri: str, *, account_id: int,
                   subaccount_id: int | None = None, key_id: str = "test-key",
                   grants: Iterable[str] = (), request_id: str = "test-request",
                   timestamp: int | None = None) -> dict[str, str]:
    """Headers as the gateway would set them; for tests and internal callers."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sub = "" if subaccount_id is None else str(subaccount_id)
    grant_str = ",".join(grants)
    sig = sign(keys, method, uri, str(account_id), sub, key_id, grant_str, request_id, ts)
    return {
        "X-Account-Id": str(account_id),
        "X-Subaccount-Id": sub,
        "X-Key-Id": key_id,
        "X-Grants": grant_str,
        "X-Request-Id": request_id,
        "X-Gateway-Timestamp": ts,
        "X-Gateway-Signature": sig,
    }


def request_uri(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    qs = scope.get("query_string") or b""
    uri = raw.decode("latin-1")
    return f"{uri}?{qs.decode('latin-1')}" if qs else uri


def verify(keys: ContextKeys, method: str, uri: str, headers: Headers,
           window: int = DEFAULT_WINDOW, now: float | None = None) -> Context:
    """Return the verified context, or raise ContextError saying what is wrong."""
    for name in CONTEXT_HEADERS:
        if len(headers.getlist(name)) > 1:
            raise ContextError(f"Duplicate {name} header")
    sig = headers.get("x-gateway-signature")
    if not sig:
        raise ContextError("Request did not come through the gateway (no signature)")
    ts = headers.get("x-gateway-timestamp", "")
    if not ts.isdigit():
        raise ContextError("Malformed gateway timestamp")
    current = time.time() if now is None else now
    if abs(current - int(ts)) > window:
        raise ContextError("Stale gateway signature")
    kid, _, mac = sig.partition(":")
    key = keys.keys.get(kid)
    if key is None:
        raise ContextError("Gateway signature by a key this service does not hold")
    account = headers.get("x-account-id", "")
    sub = headers.get("x-subaccount-id", "")
    key_id = headers.get("x-key-id", "")
    grants = headers.get("x-grants", "")
    request_id = headers.get("x-request-id", "")
    msg = canonical(kid, keys.audience, method, uri, account, sub, key_id, grants,
                    request_id, ts)
    expected = hmac.new(key, msg, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac.lower()):
        raise ContextError("Bad gateway signature")
    return context_of(account, sub, key_id, grants, request_id)


def context_of(account: str, sub: str, key_id: str, grants: str, request_id: str) -> Context:
    """The Context of verified header values (they are checked for shape here)."""
    if not account.isdigit() or (sub and not sub.isdigit()):
        raise ContextError("Malformed account context")
    return Context(
        account_id=int(account),
        subaccount_id=int(sub) if sub else None,
        key_id=key_id,
        grants=tuple(g for g in grants.split(",") if g),
        request_id=request_id,
    )


class GatewayContextMiddleware:
    """Refuses (401) any request without a valid gateway signature, except `open_paths`;
    puts the verified Context in `scope["state"]["context"]` (`request.state.context`)."""

    def __init__(self, app: ASGIApp, keys: ContextKeys,
                 open_paths: Iterable[str] = ("/healthz",),
                 open_prefixes: Iterable[str] = (), window: int = DEFAULT_WINDOW) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)
        self.window = window

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or (
            self.open_prefixes and scope["path"].startswith(self.open_prefixes)
        ):
            await self.app(scope, receive, send)
            return
        try:
            ctx = verify(self.keys, scope["method"], request_uri(scope), Headers(scope=scope),
                         self.window)
        except ContextError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["context"] = ctx
        await self.app(scope, receive, send)
