"""Customers' key management, SparkPost-compatible, reached through the gateway:
`/api/v1/api-keys`. The caller is the signed gateway context; a key never makes or grants
more than it holds itself."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authsvc import keys as keyrules
from authsvc.errors import Forbidden, NotFound
from authsvc.runtime import Runtime
from authsvc.store import KeyRecord
from authsvc.web import json_object
from portcullis.context import Context

MANAGE = "api_keys/manage"


def caller(request: Request) -> tuple[Runtime, Context]:
    ctx: Context = request.state.context
    if not ctx.has_grant(MANAGE):
        raise Forbidden(f"managing API keys needs the grant {MANAGE}")
    return request.app.state.runtime, ctx


def owner(ctx: Context) -> int | None:
    """Where a new key goes: the subaccount named, else the primary account."""
    return ctx.subaccount_id or None


def in_scope(ctx: Context, record: KeyRecord) -> bool:
    if record.account_id != ctx.account_id or record.revoked_at is not None:
        return False
    if ctx.subaccount_id is None:
        return True
    return record.subaccount_id == (ctx.subaccount_id or None)


def holds(ctx: Context, grant: str) -> bool:
    """Held outright, or a `view` covered by the same resource's `manage` (which already
    allows every read): giving a read-only key is no escalation."""
    if grant in ctx.grants:
        return True
    resource, _, action = grant.rpartition("/")
    return action == "view" and f"{resource}/manage" in ctx.grants


def at_most_held(ctx: Context, grants: tuple[str, ...]) -> tuple[str, ...]:
    extra = [g for g in grants if not holds(ctx, g)]
    if extra:
        raise Forbidden(f"a key cannot grant what it does not hold: {', '.join(extra)}")
    return grants


def view(record: KeyRecord) -> dict[str, Any]:
    shown = keyrules.describe(record)
    for hidden in ("account_id", "revoked", "rotated_to"):
        shown.pop(hidden)
    return shown


async def one_key(runtime: Runtime, ctx: Context, key_id: str) -> KeyRecord:
    record = await runtime.store.key_by_id(key_id)
    if record is None or not in_scope(ctx, record):
        raise NotFound(f"API key {key_id}")
    return record


async def create(request: Request) -> Response:
    runtime, ctx = caller(request)
    body = await json_object(request)
    grants = at_most_held(ctx, keyrules.check_grants(body.get("grants")))
    record, raw = await runtime.keys.create(
        ctx.account_id, owner(ctx), keyrules.check_label(body.get("label")), grants,
        keyrules.check_valid_ips(body.get("valid_ips")),
        keyrules.check_expires_at(body.get("expires_at")))
    return JSONResponse({"results": {**view(record), "key": raw}})


async def list_keys(request: Request) -> Response:
    runtime, ctx = caller(request)
    records = await runtime.store.list_keys(ctx.account_id, owner(ctx),
                                            everywhere=ctx.subaccount_id is None)
    return JSONResponse({"results": [view(r) for r in records]})


async def show(request: Request) -> Response:
    runtime, ctx = caller(request)
    record = await one_key(runtime, ctx, request.path_params["key_id"])
    return JSONResponse({"results": view(record)})


async def update(request: Request) -> Response:
    runtime, ctx = caller(request)
    record = await one_key(runtime, ctx, request.path_params["key_id"])
    body = await json_object(request)
    label = keyrules.check_label(body["label"]) if "label" in body else record.label
    grants = (at_most_held(ctx, keyrules.check_grants(body["grants"]))
              if "grants" in body else record.grants)
    valid_ips = (keyrules.check_valid_ips(body["valid_ips"])
                 if "valid_ips" in body else record.valid_ips)
    updated = await runtime.keys.update(record.id, label, grants, valid_ips)
    return JSONResponse({"results": view(updated)})


async def delete(request: Request) -> Response:
    runtime, ctx = caller(request)
    record = await one_key(runtime, ctx, request.path_params["key_id"])
    await runtime.keys.revoke(record.id)
    return Response(status_code=204)


routes = [
    Route("/api/v1/api-keys", create, methods=["POST"]),
    Route("/api/v1/api-keys", list_keys, methods=["GET"]),
    Route("/api/v1/api-keys/{key_id}", show, methods=["GET"]),
    Route("/api/v1/api-keys/{key_id}", update, methods=["PUT"]),
    Route("/api/v1/api-keys/{key_id}", delete, methods=["DELETE"]),
]
