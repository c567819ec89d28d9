"""The caller's context, set and signed by the gateway, verified by every service.

The gateway sets these headers after a positive auth decision and removes any the client sent:

    X-Account-Id          the account (an integer)
    X-Subaccount-Id       "" (none named: a primary key without X-MSYS-SUBACCOUNT),
                          "0" (the primary account only) or a subaccount id
    X-Key-Id              the credential's id (an API key id, or "jwt:<issuer>:<subject>")
    X-Grants              comma-separated grants of the credential
    X-Request-Id          the request id
    X-Gateway-Timestamp   unix seconds when the gateway signed
    X-Gateway-Signature   hex HMAC-SHA256 over the canonical string below

The canonical string binds the context to this request's method and URI, so a captured
signature cannot be replayed on another path:

    v1\n<METHOD>\n<request-uri>\n<account>\n<subaccount>\n<key_id>\n<grants>\n<request_id>\n<ts>

The Lua side lives in lua/gw/context.lua; tests/test_context.py checks both agree.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

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


def canonical(method: str, uri: str, account: str, subaccount: str, key_id: str,
              grants: str, request_id: str, timestamp: str) -> bytes:
    parts = ("v1", method.upper(), uri, account, subaccount, key_id, grants, request_id,
             timestamp)
    return "\n".join(parts).encode()


def sign(secret: str, method: str, uri: str, account: str, subaccount: str, key_id: str,
         grants: str, request_id: str, timestamp: str) -> str:
    msg = canonical(method, uri, account, subaccount, key_id, grants, request_id, timestamp)
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signed_headers(secret: str, method: str, uri: str, *, account_id: int,
                   subaccount_id: int | None = None, key_id: str = "test-key",
                   grants: Iterable[str] = (), request_id: str = "test-request",
                   timestamp: int | None = None) -> dict[str, str]:
    """Headers as the gateway would set them; for tests and internal callers."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sub = "" if subaccount_id is None else str(subaccount_id)
    grant_str = ",".join(grants)
    sig = sign(secret, method, uri, str(account_id), sub, key_id, grant_str, request_id, ts)
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


def verify(secret: str, method: str, uri: str, headers: Headers,
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
    account = headers.get("x-account-id", "")
    sub = headers.get("x-subaccount-id", "")
    key_id = headers.get("x-key-id", "")
    grants = headers.get("x-grants", "")
    request_id = headers.get("x-request-id", "")
    expected = sign(secret, method, uri, account, sub, key_id, grants, request_id, ts)
    if not hmac.compare_digest(expected, sig.lower()):
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

    def __init__(self, app: ASGIApp, secret: str, open_paths: Iterable[str] = ("/healthz",),
                 open_prefixes: Iterable[str] = (), window: int = DEFAULT_WINDOW) -> None:
        self.app = app
        self.secret = secret
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
            ctx = verify(self.secret, scope["method"], request_uri(scope), Headers(scope=scope),
                         self.window)
        except ContextError as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["context"] = ctx
        await self.app(scope, receive, send)
