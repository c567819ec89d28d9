"""Factories uvicorn imports by name (so --workers can start several processes)."""

from __future__ import annotations

from starlette.applications import Starlette

from services.suppression.app import create_app
from services.suppression.config import Config


def lookup_app() -> Starlette:
    return create_app(Config.from_env(), role="lookup")


def list_app() -> Starlette:
    return create_app(Config.from_env(), role="list")
