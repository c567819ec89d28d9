"""Settings from the environment, with defaults."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portcullis.context import ContextKeys

AUDIENCE = "auth"  # the key-management route's `service`: whom the gateway signs it for

DEFAULT_RATE_LIMITS: list[dict[str, Any]] = [
    {"dimension": "key", "limit": 1000, "window": 1, "burst": 1000},
]


@dataclass(frozen=True)
class Config:
    database_url: str
    # Verifies the gateway's context on /api/v1/api-keys: this service's key only.
    context_keys: ContextKeys
    admin_token: str
    # What the gateway shows on /v1/authorize and /v1/revocations (several while rotating):
    # no one else may ask for decisions, or choose the client address one is made for.
    gateway_tokens: tuple[str, ...]
    redis_url: str | None = None
    decision_ttl: int = 30            # seconds the gateway may cache an allow
    key_cache_ttl: float = 5.0        # seconds a key lookup stays in process; 0 disables
    key_cache_size: int = 100_000
    jwt_leeway: int = 30              # seconds of clock skew allowed on exp/nbf
    jwks_ttl: float = 300.0           # seconds a fetched JWKS is trusted
    jwks_refetch_interval: float = 30.0  # least seconds between refetches for an unknown kid
    jwks_timeout: float = 3.0
    failure_window: int = 60          # seconds failed authentications are counted over
    expiry_sweep_interval: float = 1.0
    default_rate_limits: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(r) for r in DEFAULT_RATE_LIMITS])
    rotation_grace: int = 3600     # seconds a rotated key keeps working by default
    max_keys: int = 1000           # live keys an account may hold, unless it says otherwise
    pool_min: int = 2
    pool_max: int = 10
    statement_timeout_ms: int = 5_000  # every statement is a key or issuer read or write

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        e = os.environ if env is None else env
        missing = [n for n in ("DATABASE_URL", "PORTCULLIS_CONTEXT_KEYS",
                               "PORTCULLIS_ADMIN_TOKEN", "PORTCULLIS_GATEWAY_TOKEN")
                   if not e.get(n, "").strip()]
        if missing:
            raise SystemExit(f"authsvc: missing environment: {', '.join(missing)} (the "
                             "context keys and the gateway token are derived from the "
                             "gateway's root secret: python -m portcullis.derive)")
        try:
            context_keys = ContextKeys.from_env(e, AUDIENCE)
        except ValueError as exc:
            raise SystemExit(f"authsvc: {exc}") from exc
        tokens = tuple(t.strip() for t in e["PORTCULLIS_GATEWAY_TOKEN"].split(",") if t.strip())
        limits = e.get("AUTHSVC_DEFAULT_RATE_LIMITS")
        return cls(
            database_url=e["DATABASE_URL"],
            context_keys=context_keys,
            admin_token=e["PORTCULLIS_ADMIN_TOKEN"],
            gateway_tokens=tokens,
            redis_url=e.get("REDIS_URL") or None,
            decision_ttl=int(e.get("AUTHSVC_DECISION_TTL", "30")),
            key_cache_ttl=float(e.get("AUTHSVC_KEY_CACHE_TTL", "5")),
            jwt_leeway=int(e.get("AUTHSVC_JWT_LEEWAY", "30")),
            jwks_ttl=float(e.get("AUTHSVC_JWKS_TTL", "300")),
            jwks_refetch_interval=float(e.get("AUTHSVC_JWKS_REFETCH_INTERVAL", "30")),
            failure_window=int(e.get("AUTHSVC_FAILURE_WINDOW", "60")),
            default_rate_limits=json.loads(limits) if limits else
            [dict(r) for r in DEFAULT_RATE_LIMITS],
            rotation_grace=int(e.get("AUTHSVC_ROTATION_GRACE", "3600")),
            max_keys=int(e.get("AUTHSVC_MAX_KEYS", "1000")),
            pool_min=int(e.get("AUTHSVC_POOL_MIN", "2")),
            pool_max=int(e.get("AUTHSVC_POOL_MAX", "10")),
            statement_timeout_ms=int(e.get("AUTHSVC_STATEMENT_TIMEOUT_MS", "5000")),
        )
