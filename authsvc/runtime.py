"""Everything a request handler needs, built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from authsvc.config import Config
from authsvc.events import RevocationEvents
from authsvc.keys import KeyService
from authsvc.service import AuthService
from authsvc.store import Store
from authsvc.tokens import TokenService


@dataclass
class Runtime:
    config: Config
    store: Store
    events: RevocationEvents
    keys: KeyService
    tokens: TokenService
    auth: AuthService
