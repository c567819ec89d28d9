"""HTTP: the decision, health, the revocation log, and the wiring of the admin and
customer APIs. The only module (with admin.py and apikeys.py) that knows HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authsvc import admin, apikeys
from authsvc.config import Config
from authsvc.errors import Denial, Invalid, Unauthorized
from authsvc.events import RevocationEvents
from authsvc.failures import FailureCounter
from authsvc.keys import KeyService
from authsvc.runtime import Runtime
from authsvc.service import AuthService
from authsvc.store import Store
from authsvc.tokens import TokenService
from portcullis import bodies
from portcullis.context import GatewayContextMiddleware
from portcullis.errors import APIError, exception_handlers
from portcullis.paths import IgnoreTrailingSlash

log = logging.getLogger("authsvc")
FAILURES_HEADER = "X-Auth-Failures"
FAILURES_HEADER_RAW = FAILURES_HEADER.lower().encode()
# A question is a credential (at most 8 KB) and a few short fields.
MAX_QUESTION = 16 * 1024


def json_question(raw: bytearray) -> Any:
    """The question's JSON, or None (answered as a malformed question) when it is not."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


GATEWAY_ONLY = Unauthorized("this internal API answers the gateway only "
                            "(`Authorization: Bearer <gateway token>`)")


def from_gateway(config: Config, authorization: bytes | None) -> bool:
    """Whether the request shows one of the gateway tokens."""
    if not authorization or authorization[:7].lower() != b"bearer ":
        return False
    shown = authorization[7:].strip()
    found = False
    for token in config.gateway_tokens:  # every one compared: no early exit to time
        found |= hmac.compare_digest(shown, token.encode())
    return found


def gateway_only(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    header = request.headers.get("authorization")
    if not from_gateway(runtime.config, header.encode("latin-1") if header else None):
        raise GATEWAY_ONLY
    return runtime


async def healthz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        await runtime.store.ping()
    except Exception as exc:
        raise APIError(503, "Unavailable", "PostgreSQL is unreachable") from exc
    return JSONResponse({"status": "ok"})


async def revocations(request: Request) -> Response:
    runtime = gateway_only(request)
    since_raw = request.query_params.get("since", "0")
    if not since_raw.isdigit() or len(since_raw) > 18:
        raise Invalid("`since` must be a whole number")
    latest, entries = await runtime.store.revocations_since(int(since_raw))
    return JSONResponse({"seq": latest, "entries": entries})


def build_runtime(config: Config, store: Store, redis: Any) -> Runtime:
    events = RevocationEvents(redis)
    keys = KeyService(store, config, events)
    tokens = TokenService(store, config)
    failures = FailureCounter(config.failure_window, redis)
    auth = AuthService(store, config, keys, tokens, failures)
    tokens.subaccount_exists = auth.subaccount_exists
    return Runtime(config=config, store=store, events=events, keys=keys, tokens=tokens,
                   auth=auth)


class DecisionPath:
    """`POST /v1/authorize` straight to the service, around Starlette's routing and
    middleware: the hot path, taken once per cache miss on every gateway node, and the only
    handler of that path (the gateway's token checked first, then a question of at most
    16 KB read). Everything else goes to the Starlette app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != "/v1/authorize"
                or scope["method"] != "POST"):
            await self.app(scope, receive, send)
            return
        runtime: Runtime = self.app.state.runtime
        headers = [(b"content-type", b"application/json")]
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if not from_gateway(runtime.config, authorization):
            payload = json.dumps(GATEWAY_ONLY.body()).encode()
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        try:
            declared = next((v.decode("latin-1") for k, v in scope["headers"]
                             if k == b"content-length"), None)
            body = json_question(await bodies.read(bodies.receive_chunks(receive), declared,
                                                   MAX_QUESTION))
            answer = await runtime.auth.authorize(body)
            status = 200
        except Denial as denial:
            answer, status = denial.body(), denial.status
            if denial.failed_attempts is not None:
                headers.append((FAILURES_HEADER_RAW, str(denial.failed_attempts).encode()))
        except bodies.BodyTooLarge as exc:
            answer, status = exc.body(), exc.status
        except Exception:
            # PostgreSQL down, or a bug: never an allow; 503 lets the gateway serve a
            # recently expired decision (stale-if-error) or refuse.
            log.exception("decision failed")
            answer = {**APIError(503, "Unavailable", "The decision could not be made").body(),
                      "reason": "auth_unavailable", "ttl": 0}
            status = 503
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def create_app(config: Config, store: Store | None = None) -> ASGIApp:
    """The auth service. Without `store`, it connects to `config.database_url` on start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own_store = store is None
        active = store or await Store.connect(config.database_url, config.pool_min,
                                              config.pool_max, config.statement_timeout_ms)
        redis = aioredis.Redis.from_url(config.redis_url) if config.redis_url else None
        runtime = build_runtime(config, active, redis)
        app.state.runtime = runtime
        tasks = [asyncio.create_task(runtime.events.sweep_expiries(
            active, config.expiry_sweep_interval))]
        if redis is not None:
            await runtime.events.subscribe()
            tasks.append(asyncio.create_task(runtime.events.listen()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.tokens.close()
            if redis is not None:
                await redis.aclose()
            if own_store:
                await active.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/revocations", revocations, methods=["GET"]),
        *admin.routes,
        *apikeys.routes,
    ]
    middleware = [Middleware(IgnoreTrailingSlash),
                  Middleware(GatewayContextMiddleware, keys=config.context_keys,
                             open_paths=("/healthz",), open_prefixes=("/v1/", "/admin/"))]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers=exception_handlers(), lifespan=lifespan)
    app.router.redirect_slashes = False  # a trailing slash is ignored, never redirected
    return DecisionPath(app)


def app_from_env() -> ASGIApp:
    """The factory uvicorn's workers import (`authsvc.app:app_from_env`)."""
    return create_app(Config.from_env())
