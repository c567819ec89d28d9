"""The authorize use case: from the gateway's question to an allow or a Denial."""

from __future__ import annotations

import time
from typing import Any, Protocol

from authsvc import credentials
from authsvc.cache import TTLCache
from authsvc.config import Config
from authsvc.decision import (
    Principal,
    Question,
    acting_subaccount,
    client_allowed,
    decide,
    deny,
    parse_subaccount,
)
from authsvc.errors import Denial
from authsvc.failures import FailureCounter
from authsvc.keys import KeyService
from authsvc.store import Store

SUBACCOUNT_TTL = 300.0


class TokenVerifier(Protocol):
    async def principal_for(self, token: str, now: float, fresh: bool = False) -> Principal:
        ...


class AuthService:
    def __init__(self, store: Store, config: Config, keys: KeyService,
                 tokens: TokenVerifier, failures: FailureCounter) -> None:
        self.store = store
        self.config = config
        self.keys = keys
        self.tokens = tokens
        self.failures = failures
        # Subaccounts are never deleted, so knowing one exists may be kept a while.
        self._subaccounts: TTLCache[tuple[int, int], bool] = TTLCache(SUBACCOUNT_TTL, 100_000)

    async def authorize(self, body: Any) -> dict[str, Any]:
        question = Question.from_body(body)
        try:
            wanted = parse_subaccount(question.subaccount)
            principal = await self.principal(question.token, fresh=question.fresh)
        except Denial as denial:
            # A guess counts; a request with no credential at all guesses nothing.
            if (denial.status == 401 and denial.reason != "credential_missing"
                    and question.client_ip):
                denial.failed_attempts = await self.failures.record(question.client_ip)
            raise
        try:
            if not client_allowed(principal, question.client_ip):
                raise deny("ip_not_allowed", "this credential may not be used from this address")
            subaccount_id = await acting_subaccount(principal, wanted, self.subaccount_exists)
            return decide(principal, question, subaccount_id, self.config.decision_ttl,
                          self.config.default_rate_limits)
        except Denial as denial:
            # Named, so a gateway can drop this cached denial when the key's grants change;
            # and keyed like an allow would be (one address refused is not every address).
            denial.key_id = principal.key_id
            denial.key_seq = principal.change_seq
            denial.vary = principal.vary
            raise

    async def principal(self, header: str | None, *, fresh: bool = False) -> Principal:
        """Who the Authorization header speaks for, or a Denial saying why nobody. `fresh`
        bypasses the in-process key cache (key management reads the key as it is now)."""
        try:
            credential = credentials.parse(header)
        except credentials.MalformedCredential as exc:
            if header is not None and len(header) > credentials.MAX_TOKEN:
                raise deny("credential_too_large", "the credential is over 8 KB") from exc
            raise deny("credential_malformed", str(exc)) from exc
        if credential is None:
            raise deny("credential_missing", "no credential in the Authorization header")
        now = time.time()
        if isinstance(credential, credentials.JwtCredential):
            return await self.tokens.principal_for(credential.token, now, fresh)
        return await self.keys.principal_for(credential.key, now, fresh=fresh)

    async def subaccount_exists(self, account_id: int, subaccount_id: int) -> bool:
        known = self._subaccounts.get((account_id, subaccount_id))
        if known is not None:
            return known
        found = await self.store.subaccount_exists(account_id, subaccount_id)
        if found:
            self._subaccounts.set((account_id, subaccount_id), True)
        return found
