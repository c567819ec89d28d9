"""Settings from the environment, with defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from portcullis.context import ContextKeys

AUDIENCE = "suppression"  # the routes' `service`: whom the gateway signs contexts for


@dataclass(frozen=True)
class Config:
    database_url: str
    # Verifies the gateway's context; None only where nothing is served (the worker).
    context_keys: ContextKeys | None
    pool_min: int = 2
    pool_max: int = 10
    import_batch_rows: int = 50_000
    import_chunk_bytes: int = 1 << 20
    import_lease_seconds: int = 60
    upload_stall_seconds: int = 900
    # statement_timeout of each service's connections (ms; 0: none). The sending path's
    # lookups are primary-key reads: anything slower is a fault. Searches get longer;
    # imports (the worker) and exports (SET LOCAL in their transaction) are exempt: they are
    # bounded by their own leases and by the client reading.
    lookup_statement_timeout_ms: int = 2_000
    list_statement_timeout_ms: int = 30_000

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        src = dict(os.environ if env is None else env)
        return cls(
            database_url=src.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/portcullis"),
            context_keys=(ContextKeys.from_env(src, AUDIENCE)
                          if src.get("PORTCULLIS_CONTEXT_KEYS") else None),
            pool_min=int(src.get("SUPPRESSION_POOL_MIN", "2")),
            pool_max=int(src.get("SUPPRESSION_POOL_MAX", "10")),
            import_batch_rows=int(src.get("SUPPRESSION_IMPORT_BATCH_ROWS", "50000")),
            import_lease_seconds=int(src.get("SUPPRESSION_IMPORT_LEASE_SECONDS", "60")),
            lookup_statement_timeout_ms=int(
                src.get("SUPPRESSION_LOOKUP_STATEMENT_TIMEOUT_MS", "2000")),
            list_statement_timeout_ms=int(
                src.get("SUPPRESSION_LIST_STATEMENT_TIMEOUT_MS", "30000")),
        )
