"""A throwaway upstream for gateway tests: answers every request with what it received
(name, method, path, headers, and whether the gateway's signature verified).

`python -m tests.echo_upstream --port P [--host H] --name N [--context-keys=KID:HEX
[--audience A]] [--html-errors]` (the keys as `python -m portcullis.derive service-env`
prints them; the audience is the routes' `service`, "tests" unless said)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import uvicorn
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from portcullis import IDLE_KEEPALIVE_SECONDS
from portcullis.context import ContextError, ContextKeys, request_uri, verify


def make_app(name: str, keys: ContextKeys | None, html_errors: bool) -> object:
    store: dict[tuple[str, str], bytes] = {}  # (account, path) -> body, for /kv/ paths
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = Headers(scope=scope)
        path = scope["path"]
        verified: str | None = None
        if keys:
            try:
                ctx = verify(keys, scope["method"], request_uri(scope), headers)
                verified = f"account={ctx.account_id}"
            except ContextError as err:
                verified = "refused: " + err.entries[0]["description"]
        if "/kv/" in path:
            account = headers.get("x-account-id", "")
            if scope["method"] == "PUT":
                store[(account, path)] = body
                status, data = 200, b'{"stored": true}'
            else:
                value = store.get((account, path))
                status, data = (200, value) if value is not None else (404, b'{"errors": []}')
            extra = [(b"cache-control", b"no-store")] if "nostore" in path else []
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), *extra]})
            await send({"type": "http.response.body", "body": data})
            return
        if "/sleep/" in path:
            import asyncio

            await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
        if html_errors and "/status/" in path:
            status = int(path.rsplit("/", 1)[1])
            page = f"<html><body><h1>{status} from {name}</h1></body></html>".encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": page})
            return
        # An upstream that sends headers of the names the gateway sets itself.
        claims = [(b"x-request-id", b"upstream-id"), (b"ratelimit-limit", b"999")] \
            if "/claims/" in path else []
        out = {
            "upstream": name,
            "pid": os.getpid(),
            "method": scope["method"],
            "path": path,
            "uri": request_uri(scope),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                        for k, v in scope["headers"]],
            "body_length": len(body),
            "signature": verified,
            "t": time.monotonic(),  # when it was served, for tests that count by window
        }
        data = json.dumps(out).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), *claims]})
        await send({"type": "http.response.body", "body": data})

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--name", default="echo")
    p.add_argument("--context-keys")
    p.add_argument("--audience", default="tests")
    p.add_argument("--html-errors", action="store_true")
    a = p.parse_args()
    keys = ContextKeys.parse(a.audience, a.context_keys) if a.context_keys else None
    uvicorn.run(make_app(a.name, keys, a.html_errors),  # type: ignore[arg-type]
                host=a.host, port=a.port, log_level="warning", access_log=False,
                timeout_keep_alive=IDLE_KEEPALIVE_SECONDS)


if __name__ == "__main__":
    main()
