"""`make run`: start the whole stack in the foreground and keep it running: a part that exits
is restarted (portcullis/supervisor.py). Ctrl-C or SIGTERM stops it all, as does a part that
fails to start five times in a row (exit status 1)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.stack import ROOT, Stack, StackSettings, ports_from_env
from portcullis.procs import StartError
from portcullis.supervisor import RestartPolicy, Supervisor

# How often the supervisor looks at the stack's processes.
POLL_INTERVAL = 0.25
DEMO_GRANTS = ["suppression_lists/manage", "suppression_lists/view", "api_keys/manage"]


def demo_key_works(stack: Stack, key: str) -> bool:
    body = json.dumps({"resource": "suppression_lists", "method": "PUT", "token": key,
                       "subaccount": None, "client_ip": "127.0.0.1", "grants": None}).encode()
    req = urllib.request.Request(stack.url("auth") + "/v1/authorize", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {stack.gateway_token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError:
        return False


def ensure_demo_key(stack: Stack) -> str:
    path = stack.var / "demo-api-key"
    if path.exists():
        key = path.read_text().strip()
        if key and demo_key_works(stack, key):
            return key
    try:
        account = stack.create_account("demo")
    except urllib.error.HTTPError as err:
        if err.code != 409:
            raise
        # The demo account exists but its key file is gone (a new var/ on an old database):
        # make another demo account rather than guess at the old key.
        account = stack.create_account(f"demo-{secrets.token_hex(3)}")
    key = str(stack.create_key(account, DEMO_GRANTS, label="demo")["key"])
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    return key


class Stop(Exception):
    pass


def on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def tls_from_env() -> dict[str, Any]:
    """PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY (PEM files) turn on the TLS listener, on
    PORTCULLIS_TLS_PORT (8443)."""
    cert = os.environ.get("PORTCULLIS_TLS_CERT") or None
    key = os.environ.get("PORTCULLIS_TLS_KEY") or None
    if bool(cert) != bool(key):
        raise StartError("set both PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY, or neither")
    port = os.environ.get("PORTCULLIS_TLS_PORT", "8443")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise StartError(f"PORTCULLIS_TLS_PORT={port!r} is not a port number")
    for path in (cert, key):
        if path and not Path(path).is_file():
            raise StartError(f"TLS file not found: {path}")
    return {"tls_port": int(port), "tls_cert": cert, "tls_key": key}


def gateway_from_env() -> dict[str, Any]:
    """GatewaySettings overrides: PORTCULLIS_DNS_REFRESH, seconds between resolutions of
    route target names (default 5)."""
    value = os.environ.get("PORTCULLIS_DNS_REFRESH")
    if value is None:
        return {}
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if not 0.1 <= seconds <= 3600:
        raise StartError(f"PORTCULLIS_DNS_REFRESH={value!r} is not a number of seconds "
                         "from 0.1 to 3600")
    return {"dns_refresh": seconds}


def run(var: Path) -> int:
    settings = StackSettings(var=var, ports=ports_from_env(),
                             database_url=os.environ.get("DATABASE_URL") or None,
                             lookup_database_url=os.environ.get("LOOKUP_DATABASE_URL") or None,
                             redis_url=os.environ.get("REDIS_URL") or None,
                             redis_cluster=[n.strip() for n in os.environ.get(
                                 "PORTCULLIS_REDIS_CLUSTER", "").split(",") if n.strip()]
                             or None, gateway=gateway_from_env(),
                             **tls_from_env())
    stack = Stack(settings)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        key = ensure_demo_key(stack)
        (var / "admin-token").write_text(stack.admin_token + "\n")
        print(f"""
Portcullis is running ({stack.flavor.name} gateway).
  gateway        {stack.gateway_url}          (public API, e.g. /api/v1/suppression-list)
  gateway (TLS)  {tls_url(stack)}
  metrics        {stack.url('metrics')}/metrics
  control plane  {stack.url('control')}           (admin token in var/admin-token)
  auth service   {stack.url('auth')}
  lookup / list  {stack.url('lookup')} / {stack.url('list')}
  database       {stack.dsn}
  redis          {stack.redis_url or 'none (limits are per gateway node)'}
  logs           {stack.logs}/

Demo API key (suppression_lists/manage), also in var/demo-api-key:
  {key}

Try:
  curl -X PUT -H "Authorization: $(cat var/demo-api-key)" -H 'Content-Type: application/json' \\
    -d '{{"type":"non_transactional","description":"demo"}}' \\
    {stack.gateway_url}/api/v1/suppression-list/jane@example.com
  curl -H "Authorization: $(cat var/demo-api-key)" \\
    {stack.gateway_url}/api/v1/suppression-list/jane@example.com

A part that exits is restarted (docs/operations.md). Ctrl-C stops everything.""", flush=True)
        supervisor = Supervisor(stack.children(), RestartPolicy(), say=log)
        while True:
            supervisor.poll()  # raises GaveUp (a StartError) for a part that cannot start
            time.sleep(POLL_INTERVAL)
    except Stop as why:
        print(f"\n{why}: stopping...", flush=True)
        return 0
    except StartError as err:
        print(f"\nFAILED: {err}\nstopping what was started...", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("stopped.", flush=True)


def tls_url(stack: Stack) -> str:
    if not stack.s.tls_cert:
        return "off (set PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY)"
    return f"https://127.0.0.1:{stack.s.tls_port}"


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.launcher")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--var", type=Path, default=ROOT / "var")
    args = parser.parse_args()
    return run(args.var.resolve())


if __name__ == "__main__":
    sys.exit(main())
