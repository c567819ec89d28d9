"""`python -m authsvc --host 127.0.0.1 --port 8100` (settings from the environment)."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from authsvc.app import create_app
from authsvc.config import Config
from portcullis import IDLE_KEEPALIVE_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m authsvc")
    parser.add_argument("--host", default=os.environ.get("AUTHSVC_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AUTHSVC_PORT", "8100")))
    parser.add_argument("--workers", type=int,
                        default=int(os.environ.get("AUTHSVC_WORKERS", "1")),
                        help="processes sharing the port (each with its own pool and cache)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = Config.from_env()  # fail fast, in the parent, on missing settings
    common = {"host": args.host, "port": args.port, "loop": "uvloop", "http": "httptools",
              "access_log": False, "proxy_headers": False, "log_level": "warning", "lifespan": "on",
              "timeout_keep_alive": IDLE_KEEPALIVE_SECONDS}
    if args.workers > 1:
        uvicorn.run("authsvc.app:app_from_env", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(config), **common)


if __name__ == "__main__":
    main()
