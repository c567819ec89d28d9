"""JWT bearer tokens from configured issuers (placeholder until issuers land)."""

from __future__ import annotations

from typing import Any

from authsvc.decision import Principal, deny
from authsvc.errors import Invalid
from authsvc.store import IssuerRecord, Store


def check_issuer(body: dict[str, Any]) -> dict[str, Any]:
    raise Invalid("JWT issuers are not supported yet")


def describe_issuer(record: IssuerRecord) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "issuer": record.issuer}


class TokenService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def forget(self, iss: str) -> None:
        pass

    async def close(self) -> None:
        pass

    async def principal_for(self, token: str, now: float) -> Principal:
        raise deny("jwt_wrong_issuer", "no JWT issuer is configured")
