"""Customers' key management, SparkPost-compatible, reached through the gateway:
`/api/v1/api-keys`. The caller is the credential the gateway forwards, read fresh and
matched against the signed gateway context; a key never makes, changes or rotates a key
wider than itself (authsvc/delegation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authsvc import keys as keyrules
from authsvc.decision import Principal
from authsvc.delegation import expiry_of, may_manage, networks_of, within_bounds
from authsvc.errors import Denial, Forbidden, NotFound, Unauthorized
from authsvc.runtime import Runtime
from authsvc.store import KeyRecord
from authsvc.web import json_object
from portcullis.context import Context
from portcullis.errors import APIError

MANAGE = "api_keys/manage"


@dataclass(frozen=True)
class Caller:
    runtime: Runtime
    ctx: Context            # what the gateway signed: account, acting subaccount, key id
    principal: Principal    # the credential as it is now: grants, networks, expiry


async def principal_of(runtime: Runtime, header: str | None) -> Principal:
    if header is None or not header.strip():
        raise Unauthorized("key management needs the caller's credential (the gateway "
                           "forwards its Authorization header on this route)")
    try:
        return await runtime.auth.principal(header, fresh=True)
    except Denial as denial:
        description = denial.entries[0]["description"]
        if denial.status == 401:
            raise Unauthorized(f"the caller's credential is refused: {description}") from denial
        raise APIError(denial.status, denial.entries[0]["message"], description) from denial


def matches(ctx: Context, principal: Principal) -> bool:
    """The forwarded credential is the one the gateway decided about."""
    if (principal.key_id, principal.account_id) != (ctx.key_id, ctx.account_id):
        return False
    # A subaccount's credential always acts for its subaccount (decision.acting_subaccount).
    return principal.subaccount_id is None or ctx.subaccount_id == principal.subaccount_id


async def caller(request: Request) -> Caller:
    runtime: Runtime = request.app.state.runtime
    ctx: Context = request.state.context
    principal = await principal_of(runtime, request.headers.get("authorization"))
    if not matches(ctx, principal):
        raise Unauthorized("the credential does not match the gateway context")
    if not (ctx.has_grant(MANAGE) and MANAGE in principal.grants):
        raise Forbidden(f"managing API keys needs the grant {MANAGE}")
    return Caller(runtime, ctx, principal)


def owner(ctx: Context) -> int | None:
    """Where a new key goes: the subaccount named, else the primary account."""
    return ctx.subaccount_id or None


def in_scope(ctx: Context, record: KeyRecord) -> bool:
    if record.account_id != ctx.account_id or record.revoked_at is not None:
        return False
    if ctx.subaccount_id is None:
        return True
    return record.subaccount_id == (ctx.subaccount_id or None)


def view(record: KeyRecord) -> dict[str, Any]:
    shown = keyrules.describe(record)
    for hidden in ("account_id", "revoked", "rotated_to"):
        shown.pop(hidden)
    return shown


async def one_key(who: Caller, key_id: str) -> KeyRecord:
    record = await who.runtime.store.key_by_id(key_id)
    if record is None or not in_scope(who.ctx, record):
        raise NotFound(f"API key {keyrules.cut(key_id)}")
    return record


async def managed_key(request: Request) -> tuple[Caller, KeyRecord]:
    """The caller and the key it names, which it may manage (in scope, no grant it lacks)."""
    who = await caller(request)
    record = await one_key(who, request.path_params["key_id"])
    may_manage(who.principal, record)
    return who, record


async def create(request: Request) -> Response:
    who = await caller(request)
    body = await json_object(request)
    label = keyrules.check_label(body.get("label"))
    grants = keyrules.check_grants(body.get("grants"))
    # Left out, networks and expiry are the caller's own: the widest key it may give.
    valid_ips = (keyrules.check_valid_ips(body["valid_ips"]) if "valid_ips" in body
                 else networks_of(who.principal))
    expires_at = (keyrules.check_expires_at(body["expires_at"]) if "expires_at" in body
                  else expiry_of(who.principal))
    within_bounds(who.principal, grants, valid_ips, expires_at)
    record, raw = await who.runtime.keys.create(
        who.ctx.account_id, owner(who.ctx), label, grants, valid_ips, expires_at,
        created_by=who.principal.key_id)
    return JSONResponse({"results": {**view(record), "key": raw}})


async def list_keys(request: Request) -> Response:
    who = await caller(request)
    records = await who.runtime.store.list_keys(who.ctx.account_id, owner(who.ctx),
                                                everywhere=who.ctx.subaccount_id is None)
    return JSONResponse({"results": [view(r) for r in records]})


async def show(request: Request) -> Response:
    who = await caller(request)
    record = await one_key(who, request.path_params["key_id"])
    return JSONResponse({"results": view(record)})


async def update(request: Request) -> Response:
    who, record = await managed_key(request)
    body = await json_object(request)
    # Left out, a field keeps the key's value; the key as changed must still be within
    # the caller's bounds (a restricted caller cannot lift valid_ips or extend a key).
    label = keyrules.check_label(body["label"]) if "label" in body else record.label
    grants = keyrules.check_grants(body["grants"]) if "grants" in body else record.grants
    valid_ips = (keyrules.check_valid_ips(body["valid_ips"]) if "valid_ips" in body
                 else record.valid_ips)
    expires_at = (keyrules.check_expires_at(body["expires_at"]) if "expires_at" in body
                  else record.expires_at)
    within_bounds(who.principal, grants, valid_ips, expires_at)
    updated = await who.runtime.keys.update(record, label, grants, valid_ips, expires_at)
    return JSONResponse({"results": view(updated)})


async def rotate(request: Request) -> Response:
    who, record = await managed_key(request)
    body = await json_object(request)
    grace = keyrules.check_grace(body.get("grace_seconds"), who.runtime.config.rotation_grace)
    # The new key is the old one's copy: rotating a key wider than the caller would give it.
    within_bounds(who.principal, record.grants, record.valid_ips, record.expires_at)
    new, raw = await who.runtime.keys.rotate(record.id, grace, old=record)
    return JSONResponse({"results": {**view(new), "key": raw}}, status_code=201)


async def delete(request: Request) -> Response:
    who, record = await managed_key(request)
    await who.runtime.keys.revoke(record.id)
    return Response(status_code=204)


routes = [
    Route("/api/v1/api-keys", create, methods=["POST"]),
    Route("/api/v1/api-keys", list_keys, methods=["GET"]),
    Route("/api/v1/api-keys/{key_id}", show, methods=["GET"]),
    Route("/api/v1/api-keys/{key_id}", update, methods=["PUT"]),
    Route("/api/v1/api-keys/{key_id}", delete, methods=["DELETE"]),
    Route("/api/v1/api-keys/{key_id}/rotate", rotate, methods=["POST"]),
]
