"""The control plane's settings, from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Config:
    database_url: str
    admin_token: str
    redis_url: str | None = None
    max_body: int = 1_048_576  # bytes of a request body

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        missing = [name for name in ("DATABASE_URL", "PORTCULLIS_ADMIN_TOKEN") if not env.get(name)]
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be set")
        return cls(database_url=env["DATABASE_URL"], admin_token=env["PORTCULLIS_ADMIN_TOKEN"],
                   redis_url=env.get("REDIS_URL") or None)
