"""JWT test material: signing keys, a tiny JWKS server, issuers, and token minting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from portcullis.procs import free_port
from tests.authsvc.conftest import Api, unique

AUDIENCE = "portcullis-api"
SECRET = "an-hmac-secret-that-is-long-enough-for-hs256!"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """An HS256 token made by hand, with any secret (PyJWT refuses PEM keys as secrets)."""
    signing_input = (b64(json.dumps(header).encode()) + "." +
                     b64(json.dumps(claims).encode()))
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    return (b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." +
            b64(json.dumps(claims).encode()) + ".")


@dataclass
class JwksServer:
    """Serves /jwks/<name> from `sets`, counting fetches; `failing` names answer 500."""

    base: str = ""
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: dict[str, int] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.fetches[name] = self.fetches.get(name, 0) + 1
        if name in self.failing or name not in self.sets:
            return web.json_response({"error": "down"}, status=500)
        return web.json_response(self.sets[name])

    def url(self, name: str) -> str:
        return f"{self.base}/jwks/{name}"


async def jwks_server() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    app = web.Application()
    app.router.add_get("/jwks/{name}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.base = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@dataclass
class Issuer:
    name: str
    iss: str
    alg: str
    key: Any            # what signs: a secret or a private key
    kid: str | None

    def claims(self, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {"iss": self.iss, "aud": AUDIENCE, "sub": "user-1",
                                "exp": now + 600, "iat": now,
                                "grants": ["suppression_lists/manage"]}
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, *, headers: dict[str, Any] | None = None, key: Any = None,
              alg: str | None = None, **claims: Any) -> str:
        hdr = {"kid": self.kid} if self.kid else {}
        hdr.update(headers or {})
        return jwt.encode(self.claims(**claims), self.key if key is None else key,
                          algorithm=alg or self.alg, headers=hdr)


async def add_issuer(api: Api, account: int, alg: str, key: Any, kid: str | None = None,
                     **config: Any) -> Issuer:
    name = unique(alg.lower())
    iss = f"https://{name}.example.com/"
    body = {"name": name, "issuer": iss, "account_id": account, "audience": AUDIENCE,
            "algorithms": [alg], **config}
    r = await api.admin("POST", "/admin/issuers", body)
    assert r.status_code == 201, r.text
    return Issuer(name, iss, alg, key, kid)
