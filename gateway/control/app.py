"""The control plane's HTTP side: the admin API (`/routes`), the table the gateway polls
(`/table`) and `/healthz`. The only module that knows HTTP."""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as Endpoint
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.control.config import Config
from gateway.control.events import Events, events_for
from gateway.control.registry import Registry
from gateway.control.route import validate
from gateway.control.store import Store
from portcullis import bodies
from portcullis.errors import APIError, error_response, exception_handlers

OPEN_PATHS = frozenset({"/healthz"})
ACTOR_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,199}")


class AdminAuth:
    """Every path but /healthz needs `Authorization: Bearer <admin token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                error = APIError(401, "Unauthorized",
                                 "Authorization: Bearer <admin token> is required")
                response = error_response(error, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def actor_of(request: Request) -> str:
    actor = request.headers.get("x-actor", "").strip()
    if not actor:
        return "admin"
    if not ACTOR_RE.fullmatch(actor):
        raise APIError(400, "Invalid actor", "X-Actor: must be printable ASCII, at most 200")
    return actor


MAX_CONTAINERS = 10_000  # objects and arrays in one route (a route is a few dozen)


async def body_of(request: Request) -> Any:
    limit: int = request.app.state.config.max_body
    try:
        raw = await bodies.request_body(request, limit)
    except bodies.BodyTooLarge:
        raise APIError(413, "Body too large", f"body: at most {limit} bytes") from None
    return bodies.json_value(
        raw, MAX_CONTAINERS,
        lambda: APIError(413, "Body too large", f"body: at most {MAX_CONTAINERS} objects and "
                         "arrays"),
        lambda: APIError(400, "Invalid JSON", "body: must be a JSON object"))


def written(result: Any, status: int, version: int) -> Response:
    headers = {"X-Table-Version": str(version)}
    if result is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse({"results": result}, status_code=status, headers=headers)


async def healthz(request: Request) -> Response:
    try:
        await registry_of(request).store.ping()
    except Exception:
        return error_response(APIError(503, "Unavailable", "PostgreSQL is not reachable"))
    return JSONResponse({"status": "ok"})


async def list_routes(request: Request) -> Response:
    return JSONResponse({"results": await registry_of(request).store.routes()})


async def create_route(request: Request) -> Response:
    route = validate(await body_of(request))
    version = await registry_of(request).create(route, actor_of(request))
    response = written(route.to_dict(), 201, version)
    response.headers["Location"] = f"/routes/{route.name}"
    return response


async def get_route(request: Request) -> Response:
    return JSONResponse({"results": await registry_of(request).get(request.path_params["name"])})


async def put_route(request: Request) -> Response:
    name = request.path_params["name"]
    spec = await body_of(request)
    if isinstance(spec, dict):
        spec.setdefault("name", name)
        if spec["name"] != name:
            raise APIError(400, "Invalid route", "name: must match the name in the URL")
    route = validate(spec)
    created, version = await registry_of(request).put(route, actor_of(request))
    return written(route.to_dict(), 201 if created else 200, version)


async def delete_route(request: Request) -> Response:
    name = request.path_params["name"]
    _, version = await registry_of(request).delete(name, actor_of(request))
    return written(None, 204, version)


async def route_audit(request: Request) -> Response:
    name = request.path_params["name"]
    return JSONResponse({"results": await registry_of(request).store.audit(name)})


def etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


async def table(request: Request) -> Response:
    """The gateway's poll: a 304 costs one primary-key read."""
    store = registry_of(request).store
    wanted = etags(request.headers.get("if-none-match", ""))
    if wanted:
        version = await store.version()
        etag = f'"{version}"'
        if etag in wanted or "*" in wanted:
            return Response(status_code=304, headers={"ETag": etag})
    version, doc = await store.table()
    return Response(doc, media_type="application/json",
                    headers={"ETag": f'"{version}"', "Cache-Control": "no-cache"})


def create_app(config: Config, store: Store | None = None,
               events: Events | None = None) -> Starlette:
    """The control plane. Given a store (tests), it uses it; else it connects at start-up."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        own_events = events is None
        app.state.registry = Registry(
            store if store is not None else await Store.connect(config.database_url),
            events if events is not None else events_for(config.redis_url))
        try:
            yield
        finally:
            if own_events:
                await app.state.registry.events.close()
            if own_store:
                await app.state.registry.store.close()

    app = Starlette(
        routes=[
            Endpoint("/healthz", healthz, methods=["GET"]),
            Endpoint("/table", table, methods=["GET"]),
            Endpoint("/routes", list_routes, methods=["GET"]),
            Endpoint("/routes", create_route, methods=["POST"]),
            Endpoint("/routes/{name}", get_route, methods=["GET"]),
            Endpoint("/routes/{name}", put_route, methods=["PUT"]),
            Endpoint("/routes/{name}", delete_route, methods=["DELETE"]),
            Endpoint("/routes/{name}/audit", route_audit, methods=["GET"]),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.config = config
    if store is not None:  # usable without a lifespan (httpx's ASGITransport runs none)
        app.state.registry = Registry(store, events)
    app.add_middleware(AdminAuth, token=config.admin_token)
    return app
