"""`python -m gateway.control --host 127.0.0.1 --port 8001`"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from gateway.control.app import create_app
from gateway.control.config import Config, ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.control",
                                     description="Portcullis control plane (route registry)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("PORTCULLIS_CONTROL_PORT", "8001")))
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"control plane: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
