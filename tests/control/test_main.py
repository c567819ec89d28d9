"""`python -m gateway.control` refuses to start without its settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "PORTCULLIS_ADMIN_TOKEN"])
def test_the_control_plane_will_not_start_without_its_database_or_token(missing: str) -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://nowhere/x",
           "PORTCULLIS_ADMIN_TOKEN": "t"}
    del env[missing]
    result = subprocess.run([sys.executable, "-m", "gateway.control", "--port", "1"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 2
    assert f"{missing} must be set" in result.stderr
