"""What a caller presents: API keys (made, hashed, recognised) and the parsing of the
Authorization header the gateway passes on unchanged."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_BYTES = 20          # 160 bits from the OS's CSPRNG, written as 40 hex characters
PREFIX_LEN = 4          # SparkPost's `short_key`
MAX_TOKEN = 8192        # an Authorization header over 8 KB is refused unread
KEY_RE = re.compile(r"^[0-9a-f]{40}$")
KEY_ID_PREFIX = "k_"
JWT_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class ApiKeyCredential:
    key: str


@dataclass(frozen=True)
class JwtCredential:
    token: str


Credential = ApiKeyCredential | JwtCredential


class MalformedCredential(Exception):
    """The header is there but is neither a key, Basic with a key, nor a bearer token."""


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(8)


def is_key_id(value: str) -> bool:
    """An API key's id (a token's is `jwt:<issuer>:<sub>`, the admin API's `admin`)."""
    return value.startswith(KEY_ID_PREFIX)


def key_hash(key: str) -> bytes:
    # A key carries 160 random bits: nobody can search that space, so a fast hash is as
    # safe as a slow one here, and lets every decision cost one index lookup.
    return hashlib.sha256(key.encode()).digest()


def hashes_match(stored: bytes, presented: bytes) -> bool:
    return hmac.compare_digest(stored, presented)


def key_prefix(key: str) -> str:
    return key[:PREFIX_LEN]


def looks_like_key(key: str) -> bool:
    return KEY_RE.match(key) is not None


def parse(header: str | None) -> Credential | None:
    """The credential in an Authorization header; None when there is none."""
    if header is None:
        return None
    if len(header) > MAX_TOKEN:
        raise MalformedCredential("credential over 8 KB")
    value = header.strip()
    if not value:
        return None
    scheme, _, rest = value.partition(" ")
    lowered = scheme.lower()
    if lowered == "bearer":
        token = rest.strip()
        if not token:
            raise MalformedCredential("empty bearer token")
        if JWT_RE.match(token):
            return JwtCredential(token)
        return ApiKeyCredential(token)
    if lowered == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise MalformedCredential("Basic credential is not base64 of user:password") from exc
        # The key is the user name; the password is ignored (SparkPost: empty).
        user, sep, _ = decoded.partition(":")
        if not sep or not user:
            raise MalformedCredential("Basic credential carries no key as user name")
        return ApiKeyCredential(user)
    if rest:
        raise MalformedCredential(f"unknown authorization scheme {scheme[:20]!r}")
    return ApiKeyCredential(value)
