"""python -m services.suppression lookup|list|worker [--host H] [--port P]"""

from __future__ import annotations

import argparse
import sys

from portcullis import IDLE_KEEPALIVE_SECONDS
from portcullis.context import ContextKeys
from services.suppression.config import AUDIENCE, Config

DEFAULT_PORTS = {"lookup": 8200, "list": 8210}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.suppression")
    parser.add_argument("role", choices=("lookup", "list", "worker"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
        if config.context_keys is None and args.role != "worker":
            ContextKeys.from_env({}, AUDIENCE)  # raises, saying what is missing
    except ValueError as exc:
        print(f"services.suppression: {exc}", file=sys.stderr)
        return 2
    if args.role == "worker":
        from services.suppression import worker

        worker.main(config)
        return 0
    import uvicorn

    port = args.port or DEFAULT_PORTS[args.role]
    # The lookup service answers small bodies at a high rate: its protocol sends each
    # answer's head and body in one write (asgi.LookupHttp).
    http = "services.suppression.asgi:LookupHttp" if args.role == "lookup" else "httptools"
    uvicorn.run(f"services.suppression.asgi:{args.role}_app", factory=True, host=args.host,
                port=port, workers=args.workers, loop="uvloop", http=http,
                access_log=False, log_level="warning",
                timeout_keep_alive=IDLE_KEEPALIVE_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
