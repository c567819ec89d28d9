"""The operators' admin API (`/admin/...`, bearer admin token, internal port only)."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authsvc import keys as keyrules
from authsvc.errors import Invalid, NotFound, Unauthorized
from authsvc.issuers import check_issuer, describe_issuer
from authsvc.runtime import Runtime
from authsvc.web import json_object, path_int, whole_number

MAX_KEYS = 1_000_000  # the highest per-account cap on live keys an operator may set


def runtime_of(request: Request) -> Runtime:
    """The runtime, once the caller has shown the admin token."""
    runtime: Runtime = request.app.state.runtime
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), runtime.config.admin_token.encode()):
        raise Unauthorized("the admin API needs `Authorization: Bearer <admin token>`")
    return runtime


def results(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"results": value}, status_code=status)


def name_of(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Invalid("`name` must be a non-empty string of at most 255 characters")
    return name.strip()


def max_keys_of(body: dict[str, Any]) -> int | None:
    """The account's cap on live keys; None: the service's default (AUTHSVC_MAX_KEYS)."""
    value = body.get("max_keys")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_KEYS:
        raise Invalid(f"`max_keys` must be a whole number from 1 to {MAX_KEYS:,}, or null")
    return value


async def create_account(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await json_object(request)
    limits = body.get("rate_limits")
    if limits is not None and not (isinstance(limits, list)
                                   and all(isinstance(x, dict) for x in limits)):
        raise Invalid("`rate_limits` must be a list of objects")
    account = await runtime.store.create_account(name_of(body), limits, max_keys_of(body))
    return results(account, 201)


async def create_subaccount(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await json_object(request)
    account_id = path_int(request, "account_id")
    return results(await runtime.store.create_subaccount(account_id, name_of(body)), 201)


async def create_key(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await json_object(request)
    account_id = whole_number(body.get("account_id"), "account_id")
    assert account_id is not None
    subaccount_id = whole_number(body.get("subaccount_id"), "subaccount_id", optional=True)
    if subaccount_id == 0:
        subaccount_id = None  # 0 is the primary account itself
    record, raw = await runtime.keys.create(
        account_id, subaccount_id, keyrules.check_label(body.get("label")),
        keyrules.check_grants(body.get("grants")),
        keyrules.check_valid_ips(body.get("valid_ips")),
        keyrules.check_expires_at(body.get("expires_at")))
    return results({**keyrules.describe(record), "key": raw}, 201)


async def show_key(request: Request) -> Response:
    runtime = runtime_of(request)
    record = await runtime.store.key_by_id(request.path_params["key_id"])
    if record is None:
        raise NotFound(f"key {request.path_params['key_id']}")
    return results(keyrules.describe(record))


async def revoke_key(request: Request) -> Response:
    runtime = runtime_of(request)
    # As for customers: the keys it made, transitively, are revoked with it.
    await runtime.keys.revoke(request.path_params["key_id"])
    return Response(status_code=204)


async def rotate_key(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await json_object(request)
    grace = keyrules.check_grace(body.get("grace_seconds"), runtime.config.rotation_grace)
    record, raw = await runtime.keys.rotate(request.path_params["key_id"], grace)
    return results({**keyrules.describe(record), "key": raw}, 201)


async def create_issuer(request: Request) -> Response:
    runtime = runtime_of(request)
    body = await json_object(request)
    record = await runtime.store.create_issuer(check_issuer(body))
    runtime.tokens.forget(record.issuer)
    return results(describe_issuer(record), 201)


async def list_issuers(request: Request) -> Response:
    runtime = runtime_of(request)
    return results([describe_issuer(i) for i in await runtime.store.list_issuers()])


routes = [
    Route("/admin/accounts", create_account, methods=["POST"]),
    Route("/admin/accounts/{account_id:int}/subaccounts", create_subaccount, methods=["POST"]),
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys/{key_id}", show_key, methods=["GET"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/issuers", create_issuer, methods=["POST"]),
    Route("/admin/issuers", list_issuers, methods=["GET"]),
]
