"""HTTP: the lookup service and the list service. The only module that knows HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import asyncpg
from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from portcullis import bodies
from portcullis.context import (
    CONTEXT_HEADERS,
    DEFAULT_WINDOW,
    Context,
    ContextError,
    ContextKeys,
    GatewayContextMiddleware,
    canonical,
    context_of,
    request_uri,
    verify,
)
from portcullis.errors import APIError, error_response, exception_handlers
from portcullis.paths import IgnoreTrailingSlash, without_trailing_slash
from services.suppression import imports
from services.suppression.config import Config
from services.suppression.entries import MAX_BULK
from services.suppression.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    Unavailable,
    UnsupportedMediaType,
)
from services.suppression.export import export_rows, stream
from services.suppression.model import Scope
from services.suppression.service import Suppressions
from services.suppression.store import Store

OPENAPI = Path(__file__).with_name("openapi.json")
UI = Path(__file__).with_name("ui")  # the web UI: static files, public
Role = Literal["lookup", "list"]
BASE = "/api/v1/suppression-list"
# Bodies, bounded by endpoint before they are read or parsed (portcullis/bodies.py):
MAX_BULK_BODY = 50 * 1024 * 1024  # bulk PUT: SparkPost's own limit
MAX_BULK_CONTAINERS = MAX_BULK + 16  # one object per entry, and the envelope
MAX_LOOKUP_BODY = 4 * 1024 * 1024  # 10,000 recipients of at most 254 characters, quoted
MAX_LOOKUP_CONTAINERS = 16  # {"recipients": [...], ...}: strings, not objects
MAX_ONE_BODY = 64 * 1024  # one recipient's PUT or DELETE
MAX_ONE_CONTAINERS = 64
MAX_JOB_ID = 2**63 - 1  # bigint
# Paths below BASE that are never recipients (none of them holds an '@').
RESERVED = ("summary", "lookup", "imports", "export", "openapi.json")
OPENAPI_PATH = f"{BASE}/openapi.json"


def scope_of(request: Request) -> Scope:
    ctx: Context = request.state.context
    return Scope.of(ctx)


def suppressions(request: Request) -> Suppressions:
    found: Suppressions = request.app.state.suppressions
    return found


def too_many_recipients() -> InvalidRequest:
    return InvalidRequest(f"Too many recipients: at most {MAX_BULK:,} per request",
                          "The body holds more entries (objects and arrays) than that")


def not_json() -> InvalidRequest:
    return InvalidRequest("Problems parsing request as json", "The request body is not valid JSON")


async def json_body(request: Request, *, required: bool = True, limit: int = MAX_ONE_BODY,
                    containers: int = MAX_ONE_CONTAINERS) -> Any:
    """The JSON body, at most `limit` bytes and `containers` objects and arrays (counted
    before any is built); None when empty and not required."""
    ctype = request.headers.get("content-type", "")
    raw = await bodies.request_body(request, limit)
    if not raw or raw.isspace():  # (strip() would copy the whole body)
        if required:
            return {}
        return None
    if ctype and "json" not in ctype.lower():
        raise UnsupportedMediaType("Send the body as application/json")
    return bodies.json_value(raw, containers, too_many_recipients, not_json)


def ok(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


# --- lookup service ------------------------------------------------------------------------

async def get_recipient(request: Request) -> Response:
    recipient = request.path_params["recipient"]
    if recipient in RESERVED:
        raise NotFound("Not found", f"{BASE}/{recipient} is not served here")
    body = await suppressions(request).get_recipient(
        scope_of(request), recipient, request.query_params)
    return ok(body)


async def batch_lookup(request: Request) -> Response:
    body = await json_body(request, limit=MAX_LOOKUP_BODY, containers=MAX_LOOKUP_CONTAINERS)
    return Response(await suppressions(request).batch_lookup(scope_of(request), body),
                    media_type="application/json")


# --- list service --------------------------------------------------------------------------

async def put_recipient(request: Request) -> Response:
    recipient = request.path_params["recipient"]
    if recipient in RESERVED:
        raise NotFound("Not found", f"{BASE}/{recipient} is not a recipient")
    body = await json_body(request)
    return ok({"results": await suppressions(request).put_one(scope_of(request), recipient,
                                                               body)})


async def delete_recipient(request: Request) -> Response:
    recipient = request.path_params["recipient"]
    if recipient in RESERVED:
        raise NotFound("Not found", f"{BASE}/{recipient} is not a recipient")
    body = await json_body(request, required=False)
    list_id = request.query_params.get("list_id")  # None: absent; "": account-level only
    await suppressions(request).delete(scope_of(request), recipient, body, list_id)
    return Response(status_code=204)


async def put_bulk(request: Request) -> Response:
    body = await json_body(request, limit=MAX_BULK_BODY, containers=MAX_BULK_CONTAINERS)
    return ok({"results": await suppressions(request).put_bulk(scope_of(request), body)})


async def search(request: Request) -> Response:
    return ok(await suppressions(request).search(scope_of(request), request.query_params))


async def summary(request: Request) -> Response:
    return ok(await suppressions(request).summary(scope_of(request)))


async def post_import(request: Request) -> Response:
    fmt = imports.format_of(request.headers.get("content-type", ""),
                            request.query_params.get("format"))
    config: Config = request.app.state.config
    job_id = await imports.upload(request.app.state.store, scope_of(request), fmt,
                                  request.stream(), config.import_chunk_bytes)
    job = await request.app.state.store.job(scope_of(request), job_id)
    location = f"{BASE}/imports/{job_id}"
    return JSONResponse({"results": imports.job_json(job, BASE)}, status_code=202,
                        headers={"Location": location})


def job_id_of(request: Request) -> int:
    """The path's job id; one past PostgreSQL's bigint names no job (rather than a 500)."""
    job_id: int = request.path_params["job_id"]
    if job_id > MAX_JOB_ID:
        raise NotFound("Import job not found")
    return job_id


async def get_import(request: Request) -> Response:
    job = await request.app.state.store.job(scope_of(request), job_id_of(request))
    if job is None:
        raise NotFound("Import job not found")
    return ok({"results": imports.job_json(job, BASE)})


async def cancel_import(request: Request) -> Response:
    job_id = job_id_of(request)
    state = await request.app.state.store.cancel_job(scope_of(request), job_id)
    if state is None:
        raise NotFound("Import job not found")
    if state != "queued":
        raise Conflict(f"Import job is {state}", "Only a queued job can be cancelled")
    return Response(status_code=204)


async def list_imports(request: Request) -> Response:
    jobs = await request.app.state.store.jobs(scope_of(request), 100)
    return ok({"results": [imports.job_json(j, BASE) for j in jobs]})


async def get_rejects(request: Request) -> Response:
    store: Store = request.app.state.store
    job_id = job_id_of(request)
    if await store.job(scope_of(request), job_id) is None:
        raise NotFound("Import job not found")
    body = stream(lambda output: store.export_rejects(job_id, output))
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="import-{job_id}-rejects.csv"'})


async def export(request: Request) -> Response:
    media_type, body = export_rows(request.app.state.store, scope_of(request),
                                   request.query_params)
    suffix = "csv" if media_type.startswith("text/csv") else "ndjson"
    return StreamingResponse(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="suppression-list.{suffix}"'})


async def openapi(request: Request) -> Response:
    return Response(OPENAPI.read_bytes(), media_type="application/json")


async def healthz(request: Request) -> Response:
    store: Store = request.app.state.store
    try:
        await store.ping()
    except Exception:  # any failure to reach PostgreSQL
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return ok({"status": "ok"})


# PostgreSQL out of reach (down, restarting, out of connections): 503, retry later.
DB_DOWN = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
           asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
           # what a connection lost in the middle of an operation can leave behind
           asyncpg.InternalClientError)


async def unavailable(request: Request, exc: Exception) -> Response:
    return error_response(Unavailable())


def routes(role: Role) -> list[Route]:
    health = [Route("/healthz", healthz, methods=["GET"])]
    if role == "lookup":
        return [*health,
                Route(f"{BASE}/lookup", batch_lookup, methods=["POST"]),
                Route(f"{BASE}/{{recipient:path}}", get_recipient, methods=["GET", "HEAD"])]
    return [
        *health,
        Route(BASE, search, methods=["GET", "HEAD"]),
        Route(BASE, put_bulk, methods=["PUT"]),
        Route(f"{BASE}/summary", summary, methods=["GET", "HEAD"]),
        Route(f"{BASE}/imports", post_import, methods=["POST"]),
        Route(f"{BASE}/imports", list_imports, methods=["GET", "HEAD"]),
        Route(f"{BASE}/imports/{{job_id:int}}", get_import, methods=["GET", "HEAD"]),
        Route(f"{BASE}/imports/{{job_id:int}}", cancel_import, methods=["DELETE"]),
        Route(f"{BASE}/imports/{{job_id:int}}/rejects", get_rejects, methods=["GET", "HEAD"]),
        Route(f"{BASE}/export", export, methods=["GET", "HEAD"]),
        Route(f"{BASE}/openapi.json", openapi, methods=["GET", "HEAD"]),
        Route(f"{BASE}/{{recipient:path}}", get_recipient, methods=["GET", "HEAD"]),
        Route(f"{BASE}/{{recipient:path}}", put_recipient, methods=["PUT"]),
        Route(f"{BASE}/{{recipient:path}}", delete_recipient, methods=["DELETE"]),
    ]


def ui_routes(role: Role) -> list[BaseRoute]:
    if role != "list":
        return []
    # A relative Location: the gateway passes Host without its port.
    return [Route("/app", lambda _: RedirectResponse("/app/"), methods=["GET", "HEAD"]),
            Mount("/app", StaticFiles(directory=UI, html=True))]


# --- the lookup service's hot path ----------------------------------------------------------

log = logging.getLogger("services.suppression")
JSON_HEADERS = ((b"content-type", b"application/json"),)
RECIPIENT_PREFIX = f"{BASE}/"
LOOKUP_PATH = f"{BASE}/lookup"
NO_QUERY: dict[str, str] = {}
_CONTEXT_INDEX = {name.encode("latin-1"): i for i, name in enumerate(CONTEXT_HEADERS)}


def dumps(body: Any) -> bytes:
    """What JSONResponse would send."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


class FastContext:
    """portcullis.context.verify over the raw ASGI headers, in one pass and with each key's
    HMAC schedule done once: the same checks in the same order, the same ContextError
    messages (tests/suppression/test_fastpath.py holds the two side by side)."""

    def __init__(self, keys: ContextKeys, window: int = DEFAULT_WINDOW) -> None:
        self.keys = keys
        self.window = window
        self.macs = {kid: hmac.new(key, digestmod=hashlib.sha256)
                     for kid, key in keys.keys.items()}

    def verify(self, scope: ASGIScope) -> Context:
        values: list[str | None] = [None] * len(CONTEXT_HEADERS)
        index = _CONTEXT_INDEX
        for name, value in scope["headers"]:
            i = index.get(name)
            if i is not None:
                if values[i] is not None:  # a duplicate: the reference names the first one
                    return verify(self.keys, scope["method"], request_uri(scope),
                                  Headers(scope=scope), self.window)
                values[i] = value.decode("latin-1")
        account, sub, key_id, grants, request_id, ts, sig = (v or "" for v in values)
        if not sig:
            raise ContextError("Request did not come through the gateway (no signature)")
        if not ts.isdigit():
            raise ContextError("Malformed gateway timestamp")
        if abs(time.time() - int(ts)) > self.window:
            raise ContextError("Stale gateway signature")
        kid, _, signature = sig.partition(":")
        template = self.macs.get(kid)
        if template is None:
            raise ContextError("Gateway signature by a key this service does not hold")
        mac = template.copy()
        mac.update(canonical(kid, self.keys.audience, scope["method"], request_uri(scope),
                             account, sub, key_id, grants, request_id, ts))
        if not hmac.compare_digest(mac.hexdigest(), signature.lower()):
            raise ContextError("Bad gateway signature")
        return context_of(account, sub, key_id, grants, request_id)


class LookupApp(Starlette):
    """The lookup service. Its two hot endpoints, GET one recipient and POST a batch, are
    answered here, ahead of Starlette's middleware stack and router (a fifth of a lookup's
    CPU): the same context check (FastContext), the same handlers, the same JSON bodies, and
    errors through the same exception handlers. Everything else (health, unknown paths,
    405s, the lifespan) goes through Starlette as before."""

    context: FastContext

    @staticmethod
    def answers_get(path: str) -> bool:
        """Whether a GET (or HEAD) of this path is one recipient's, answered by get_one."""
        return path.startswith(RECIPIENT_PREFIX) and path != OPENAPI_PATH

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = without_trailing_slash(scope["path"])
            if path is not scope["path"]:
                scope = {**scope, "path": path}
            method: str = scope["method"]
            if (method == "GET" or method == "HEAD") and self.answers_get(path):
                await self.fast(scope, receive, send, self.get_one)
                return
            if method == "POST" and path == LOOKUP_PATH:
                await self.fast(scope, receive, send, self.batch)
                return
        await super().__call__(scope, receive, send)

    async def get_one(self, scope: ASGIScope, receive: Receive, ctx: Context) -> bytes:
        recipient = scope["path"][len(RECIPIENT_PREFIX):]
        if recipient in RESERVED:
            raise NotFound("Not found", f"{BASE}/{recipient} is not served here")
        qs: bytes = scope["query_string"]
        query = QueryParams(qs) if qs else NO_QUERY
        found: Suppressions = self.state.suppressions
        return dumps(await found.get_recipient(Scope.of(ctx), recipient, query))

    async def batch(self, scope: ASGIScope, receive: Receive, ctx: Context) -> bytes:
        body = await json_body(Request(scope, receive), limit=MAX_LOOKUP_BODY,
                               containers=MAX_LOOKUP_CONTAINERS)
        found: Suppressions = self.state.suppressions
        return await found.batch_lookup(Scope.of(ctx), body)

    async def outcome(self, scope: ASGIScope, receive: Receive,
                      handler: Any) -> tuple[int, bytes]:
        """The status and JSON body of a hot request; an exception that is not an APIError
        goes on up, for `failed` to answer."""
        try:
            ctx = self.context.verify(scope)
            return 200, await handler(scope, receive, ctx)
        except APIError as exc:  # a ContextError as GatewayContextMiddleware answers it, the
            return exc.status, dumps(exc.body())  # rest as api_error_handler

    async def fast(self, scope: ASGIScope, receive: Receive, send: Send, handler: Any) -> None:
        try:
            status, payload = await self.outcome(scope, receive, handler)
        except Exception as exc:
            await self.failed(scope, receive, send, exc)
            return
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-length", str(len(payload)).encode()), *JSON_HEADERS]})
        await send({"type": "http.response.body", "body": payload})

    async def failed(self, scope: ASGIScope, receive: Receive, send: Send,
                     exc: Exception) -> None:
        """As Starlette would answer: the handler registered for the exception's class (its
        ExceptionMiddleware), else the one for Exception, and then the exception goes on up
        to the server to be logged (its ServerErrorMiddleware)."""
        handlers = self.exception_handlers
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in handlers:
                response = await handlers[cls](Request(scope, receive), exc)
                await response(scope, receive, send)
                return
        response = await handlers[Exception](Request(scope), exc)
        await response(scope, receive, send)
        raise exc


def create_app(config: Config, store: Store | None = None, role: Role = "list") -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        timeout = (config.lookup_statement_timeout_ms if role == "lookup"
                   else config.list_statement_timeout_ms)
        active = store or await Store.connect(config.database_url, config.pool_min,
                                              config.pool_max, timeout)
        app.state.store = active
        app.state.suppressions = Suppressions(active)
        app.state.config = config
        try:
            yield
        finally:
            if own:
                await active.close()

    keys = config.context_keys
    if keys is None:
        raise ValueError("the lookup and list services need their context keys")
    app = (LookupApp if role == "lookup" else Starlette)(
        routes=[*routes(role), *ui_routes(role)],
        # The OpenAPI document and the UI's files are public (auth: none); all else is signed.
        middleware=[Middleware(IgnoreTrailingSlash),
                    Middleware(GatewayContextMiddleware, keys=keys,
                               open_paths=("/healthz", OPENAPI_PATH, "/app"),
                               open_prefixes=("/app/",))],
        exception_handlers={**exception_handlers(), **{e: unavailable for e in DB_DOWN}},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a trailing slash is ignored, never redirected
    if isinstance(app, LookupApp):
        app.context = FastContext(keys)
    if store is not None:  # ready without a lifespan (tests drive the app in-process)
        app.state.store = store
        app.state.suppressions = Suppressions(store)
        app.state.config = config
    return app
