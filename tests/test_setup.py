"""The set-up half of the two commands: system packages and the virtualenv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_system_check_is_silent_when_everything_is_installed() -> None:
    res = subprocess.run(["bash", "scripts/ensure-system.sh"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0
    assert res.stdout == ""


def test_missing_packages_without_root_are_named_and_exit_1(tmp_path: Path) -> None:
    env = {**os.environ, "ENSURE_SYSTEM_ROOT": str(tmp_path), "ENSURE_SYSTEM_DRY_RUN": "1"}
    res = subprocess.run(["bash", "scripts/ensure-system.sh"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1
    for pkg in ("nginx", "libnginx-mod-http-lua", "lua-resty-core", "lua-nginx-redis",
                "lua-cjson", "postgresql", "redis-server"):
        assert pkg in res.stderr
    assert "apt-get install" in res.stderr


def test_a_second_setup_with_nothing_changed_installs_nothing() -> None:
    res = subprocess.run(["make", "-s", "setup"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0
    assert res.stdout == ""
    dry = subprocess.run(["make", "-n", "setup"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert "pip install" not in dry.stdout
