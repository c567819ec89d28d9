"""SparkPost's API conventions: a trailing slash is ignored. The gateway routes `/a/b/` as
`/a/b` and passes the path on as sent (the signed context covers it as sent); each service
ignores it too, here, before its own routing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/"


def without_trailing_slash(path: str) -> str:
    """An API path without one trailing slash; any other path as it is (the web UI's
    `/app/` is a folder)."""
    if path.endswith("/") and path.startswith(API_PREFIX) and len(path) > len(API_PREFIX):
        return path[:-1]
    return path


class IgnoreTrailingSlash:
    """ASGI middleware: routes see API paths without a trailing slash. `raw_path`, which
    the gateway's signature covers, stays as sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            stripped = without_trailing_slash(path)
            if stripped is not path:
                scope = {**scope, "path": stripped}
        await self.app(scope, receive, send)
