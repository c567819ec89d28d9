"""Command-line options of the load test; each also reads a LOCUST_* environment variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def default_admin_token() -> str:
    """PORTCULLIS_ADMIN_TOKEN, else the token `make run` keeps in var/admin-token."""
    token = os.environ.get("PORTCULLIS_ADMIN_TOKEN", "")
    if token:
        return token
    path = ROOT / "var" / "admin-token"
    return path.read_text().strip() if path.exists() else ""


def add_options(parser: Any) -> None:
    group = parser  # locust's web-UI flags exist on the parser, not on argument groups
    group.add_argument("--admin-url", env_var="LOCUST_ADMIN_URL",
                       default=os.environ.get("AUTHSVC_URL", "http://127.0.0.1:8100"),
                       help="the auth service's admin API (accounts and keys are made there)")
    # The token is not shown in the web UI and is best given by environment (argv is public).
    group.add_argument("--admin-token", env_var="LOCUST_ADMIN_TOKEN", default="",
                       include_in_web_ui=False,
                       help="admin bearer token [PORTCULLIS_ADMIN_TOKEN, else var/admin-token]")
    group.add_argument("--accounts", env_var="LOCUST_ACCOUNTS", type=int, default=2,
                       help="accounts made at start, each with one subaccount")
    group.add_argument("--seed", env_var="LOCUST_SEED", type=int, default=5000,
                       help="suppressions seeded per account, so that lookups hit")
    group.add_argument("--batch-size", env_var="LOCUST_BATCH_SIZE", type=int, default=200,
                       help="recipients per batch lookup")
    group.add_argument("--import-rows", env_var="LOCUST_IMPORT_ROWS", type=int, default=1000,
                       help="rows per import uploaded by a list manager")
    group.add_argument("--max-p99-ms", env_var="LOCUST_MAX_P99_MS", type=float, default=0.0,
                       help="fail the run when the p99 of all requests is above this (0: off)")
