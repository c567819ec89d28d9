"""Validation at the edge: each bad route is a 400 whose error names the field; duplicates and
overlapping claims are 409s naming the other route."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.cli.routefile import substitute
from gateway.control.route import Claim, overlap, validate
from tests.control.api import create, description, spec

# (what is wrong, fields that replace the valid spec's, the field the error names)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"colour": "red"}, "colour: unknown field"),
    ("unknown nested field", {"upstream": {"targets": ["a:1"], "weight": 2}},
     "upstream.weight: unknown field"),
    ("unknown field in a rate limit", {"rate_limits": [{"dimension": "key", "limit": 1,
                                                         "per": "s"}]},
     "rate_limits[0].per: unknown field"),
    ("unknown field in health", {"upstream": {"targets": ["a:1"], "health": {"tries": 1}}},
     "upstream.health.tries: unknown field"),
    ("missing name", {"name": None}, "name: is required"),
    ("missing paths", {"paths": None}, "paths: is required"),
    ("missing upstream", {"upstream": None}, "upstream: is required"),
    ("missing targets", {"upstream": {"balance": "round_robin"}},
     "upstream.targets: is required"),
    ("upper-case name", {"name": "Lookup"}, "name: must be lower-case"),
    ("name with a slash", {"name": "a/b"}, "name: must be lower-case"),
    ("name too long", {"name": "a" * 65}, "name: must be lower-case"),
    ("name not a string", {"name": 7}, "name: must be lower-case"),
    ("paths not a list", {"paths": "/a"}, "paths: must be a list"),
    ("no paths", {"paths": []}, "paths: must not be empty"),
    ("path without a leading slash", {"paths": ["api/v1"]}, "paths[0]: must start with /"),
    ("path with ..", {"paths": ["/ok", "/api/../admin"]}, "paths[1]: must not hold .."),
    ("path with //", {"paths": ["/api//v1"]}, "paths[0]: must not hold //"),
    ("path with NUL", {"paths": ["/api\x00"]}, "paths[0]: must not hold spaces or control"),
    ("path with a newline", {"paths": ["/api\n"]}, "paths[0]: must not hold spaces or control"),
    ("path with a space", {"paths": ["/a b"]}, "paths[0]: must not hold spaces or control"),
    ("path with a query", {"paths": ["/a?b=1"]}, "paths[0]: must be a path only"),
    ("duplicate path", {"paths": ["/a", "/a"]}, "paths[1]: duplicate"),
    ("unknown method", {"methods": ["GET", "FETCH"]}, "methods[1]: must be an HTTP method"),
    ("method not a string", {"methods": [1]}, "methods[0]: must be an HTTP method"),
    ("empty methods", {"methods": []}, "methods: must not be empty"),
    ("host with a port", {"hosts": ["api.example.com:443"]}, "hosts[0]: must be a host name "
                                                              "without a port"),
    ("host with a bad character", {"hosts": ["api_x.example.com"]}, "hosts[0]: must be a host"),
    ("wildcard in the middle", {"hosts": ["api.*.com"]}, "hosts[0]: must be a host"),
    ("bare wildcard", {"hosts": ["*"]}, "hosts[0]: must be a host"),
    ("target without a port", {"upstream": {"targets": ["127.0.0.1"]}},
     "upstream.targets[0]: must be host:port"),
    ("target port 0", {"upstream": {"targets": ["127.0.0.1:0"]}},
     "upstream.targets[0]: must be host:port"),
    ("target port too high", {"upstream": {"targets": ["a:1", "127.0.0.1:65536"]}},
     "upstream.targets[1]: must be host:port"),
    ("target with a scheme", {"upstream": {"targets": ["http://a:80"]}},
     "upstream.targets[0]: must be host:port"),
    ("target bad IPv6", {"upstream": {"targets": ["[::zz]:80"]}},
     "upstream.targets[0]: must be host:port"),
    ("no targets", {"upstream": {"targets": []}}, "upstream.targets: must not be empty"),
    ("unknown balance", {"upstream": {"targets": ["a:1"], "balance": "random"}},
     "upstream.balance: must be one of round_robin, least_conn"),
    ("negative failures", {"upstream": {"targets": ["a:1"], "health": {"failures": -1}}},
     "upstream.health.failures: must be at least 1"),
    ("health path without slash", {"upstream": {"targets": ["a:1"],
                                                "health": {"path": "healthz"}}},
     "upstream.health.path: must start with /"),
    ("unknown auth", {"auth": "optional"}, "auth: must be one of required, none"),
    ("auth required without resource", {"resource": None}, "resource: is required when auth"),
    ("bad resource", {"resource": "Suppression Lists"}, "resource: must be a resource name"),
    ("bad grant", {"grants": ["manage"]}, "grants[0]: must be a grant"),
    ("negative limit", {"rate_limits": [{"dimension": "key", "limit": -5}]},
     "rate_limits[0].limit: must be at least 1"),
    ("fractional limit", {"rate_limits": [{"dimension": "key", "limit": 1.5}]},
     "rate_limits[0].limit: must be an integer"),
    ("limit as a string", {"rate_limits": [{"dimension": "key", "limit": "10"}]},
     "rate_limits[0].limit: must be an integer"),
    ("limit as a boolean", {"rate_limits": [{"dimension": "key", "limit": True}]},
     "rate_limits[0].limit: must be an integer"),
    ("negative burst", {"rate_limits": [{"dimension": "key", "limit": 5, "burst": -1}]},
     "rate_limits[0].burst: must be at least 0"),
    ("zero window", {"rate_limits": [{"dimension": "key", "limit": 5, "window": 0}]},
     "rate_limits[0].window: must be at least 1"),
    ("unknown dimension", {"rate_limits": [{"dimension": "user", "limit": 5}]},
     "rate_limits[0].dimension: must be one of route, key, account, client_ip"),
    ("limit without dimension", {"rate_limits": [{"limit": 5}]},
     "rate_limits[0].dimension: is required"),
    ("negative connect timeout", {"timeouts": {"connect": -1}},
     "timeouts.connect: must be at least 1"),
    ("fractional read timeout", {"timeouts": {"read": 2.5}}, "timeouts.read: must be an integer"),
    ("negative retries", {"retries": -1}, "retries: must be at least 0"),
    ("retries as a string", {"retries": "1"}, "retries: must be an integer"),
    ("cache without ttl", {"cache": {"methods": ["GET"]}}, "cache.ttl: is required"),
    ("negative cache ttl", {"cache": {"ttl": -1}}, "cache.ttl: must be at least 1"),
    ("cache of POST", {"cache": {"ttl": 5, "methods": ["POST"]}},
     "cache.methods[0]: only GET and HEAD"),
    ("cors without origins", {"cors": {"max_age": 5}}, "cors.origins: is required"),
    ("cors bad origin", {"cors": {"origins": ["ui.example.com"]}}, "cors.origins[0]: must be *"),
    ("bad owner", {"owner": "Suppression Team"}, "owner: must be lower-case"),
    ("route not an object", {"__whole__": ["a"]}, "route: must be an object"),
    ("negative body limit", {"max_request_body": -1}, "max_request_body: must be at least 0"),
    ("body limit as text", {"max_request_body": "10MB"}, "max_request_body: must be an integer"),
    ("body limit as a boolean", {"max_request_body": True},
     "max_request_body: must be an integer"),
    ("body limit too large", {"max_request_body": 2**41}, "max_request_body: must be at most"),
    ("forward_credentials as text", {"forward_credentials": "yes"},
     "forward_credentials: must be true or false"),
    ("service with capitals", {"service": "Billing"}, "service: must be a service name"),
]


def bad_spec(name: str, fields: dict[str, Any]) -> Any:
    if "__whole__" in fields:
        return fields["__whole__"]
    route = spec(name)
    for key, value in fields.items():
        if value is None:
            route.pop(key, None)
        else:
            route[key] = value
    return route


@pytest.mark.parametrize(("fields", "expected"),
                         [pytest.param(f, e, id=case) for case, f, e in BAD])
async def test_each_bad_route_is_a_400_naming_the_field(
        admin: httpx.AsyncClient, tag: str, fields: dict[str, Any], expected: str) -> None:
    body = bad_spec(f"bad-{tag}", fields)
    posted = await admin.post("/routes", json=body)
    assert posted.status_code == 400, posted.text
    assert posted.headers["content-type"] == "application/json"
    errors = posted.json()["errors"]
    assert any(e["description"].startswith(expected) for e in errors), errors
    assert all(e["code"] == "1400" for e in errors)
    if isinstance(body, dict) and not expected.startswith("name"):
        put = await admin.put(f"/routes/bad-{tag}", json=body)
        assert put.status_code == 400
        assert any(e["description"].startswith(expected) for e in put.json()["errors"])


async def test_every_bad_field_of_one_route_is_reported(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/routes", json={
        "name": "x", "paths": ["nope"], "upstream": {"targets": ["a:0"]}, "retries": -1,
        "extra": 1, "resource": "r"})
    descriptions = [e["description"].split(":")[0] for e in response.json()["errors"]]
    assert sorted(descriptions) == ["extra", "paths[0]", "retries", "upstream.targets[0]"]


def test_validation_fills_defaults_and_normalises_case() -> None:
    route = validate({"name": "r", "paths": ["/r"], "methods": ["get", "Head"],
                      "hosts": ["API.Example.com", "*.Example.org"], "auth": "none",
                      "upstream": {"targets": ["Backend.internal:0080"]},
                      "rate_limits": [{"dimension": "key", "limit": 10}]})
    assert route.methods == ("GET", "HEAD")
    assert route.hosts == ("api.example.com", "*.example.org")
    assert route.upstream.targets == ("backend.internal:80",)
    assert route.rate_limits[0].window == 1 and route.rate_limits[0].burst == 10
    assert route.resource is None


async def test_a_second_route_with_the_same_name_is_a_409(
        admin: httpx.AsyncClient, tag: str) -> None:
    await create(admin, f"dup-{tag}", f"/dup/{tag}")
    response = await admin.post("/routes", json=spec(f"dup-{tag}", f"/dup2/{tag}"))
    assert response.status_code == 409
    assert description(response) == f"name: a route named 'dup-{tag}' already exists"


# (first route's methods and hosts, second route's, do they conflict on the same path?)
OVERLAPS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({}, {}, True),
    ({}, {"methods": ["GET"]}, True),
    ({"methods": ["GET", "HEAD"]}, {"methods": ["HEAD"]}, True),
    ({"methods": ["GET", "HEAD"]}, {"methods": ["PUT", "DELETE"]}, False),
    ({"hosts": ["api.example.com"]}, {}, True),
    ({"hosts": ["api.example.com"]}, {"hosts": ["API.example.com"]}, True),
    ({"hosts": ["api.example.com"]}, {"hosts": ["eu.example.com"]}, False),
    ({"hosts": ["*.example.com"]}, {"hosts": ["api.example.com"]}, True),
    ({"hosts": ["*.example.com"]}, {"hosts": ["*.eu.example.com"]}, True),
    ({"hosts": ["*.example.com"]}, {"hosts": ["example.com"]}, False),
    ({"hosts": ["*.example.com"]}, {"hosts": ["*.example.org"]}, False),
    ({"hosts": ["a.example.com"], "methods": ["GET"]},
     {"hosts": ["a.example.com"], "methods": ["POST"]}, False),
    ({"hosts": ["a.example.com", "b.example.com"], "methods": ["GET"]},
     {"hosts": ["b.example.com"]}, True),
]


def overlap_id(case: tuple[dict[str, Any], dict[str, Any], bool]) -> str:
    first, second, conflict = case
    return f"{first or 'all'} vs {second or 'all'}: {'409' if conflict else 'ok'}"


@pytest.mark.parametrize("case", OVERLAPS, ids=[overlap_id(c) for c in OVERLAPS])
async def test_two_routes_claiming_the_same_path_method_and_host_conflict(
        admin: httpx.AsyncClient, tag: str,
        case: tuple[dict[str, Any], dict[str, Any], bool]) -> None:
    first, second, conflict = case
    path = f"/overlap/{tag}"
    await create(admin, f"first-{tag}", path, **first)
    response = await admin.post("/routes", json=spec(f"second-{tag}", f"/elsewhere/{tag}",
                                                     path, **second))
    if conflict:
        assert response.status_code == 409, response.text
        assert description(response) == (f"paths: route 'first-{tag}' already claims {path} "
                                          "for an overlapping method and host")
    else:
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(("first", "second"), [
    ("/api/v1/list", "/api/v1/list/"),
    ("/api/v1/list/", "/api/v1/list/summary"),
    ("/api/v1/list/summary", "/api/v1/list/summary2"),
])
async def test_different_prefixes_never_conflict_longest_wins_at_the_gateway(
        admin: httpx.AsyncClient, tag: str, first: str, second: str) -> None:
    await create(admin, f"p1-{tag}", f"/{tag}{first}")
    await create(admin, f"p2-{tag}", f"/{tag}{second}")


async def test_an_update_that_would_conflict_is_a_409_and_changes_nothing(
        admin: httpx.AsyncClient, tag: str) -> None:
    await create(admin, f"get-{tag}", f"/u/{tag}", methods=["GET"])
    await create(admin, f"put-{tag}", f"/u/{tag}", methods=["PUT"])
    response = await admin.put(f"/routes/put-{tag}", json=spec(f"put-{tag}", f"/u/{tag}",
                                                               methods=["PUT", "GET"]))
    assert response.status_code == 409
    assert f"'get-{tag}'" in description(response)
    current = (await admin.get(f"/routes/put-{tag}")).json()["results"]
    assert current["methods"] == ["PUT"]


async def test_concurrent_conflicting_creates_let_exactly_one_win(
        admin: httpx.AsyncClient, tag: str) -> None:
    path = f"/race/{tag}"
    responses = await asyncio.gather(*(
        admin.post("/routes", json=spec(f"race{i}-{tag}", path)) for i in range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 11
    table = (await admin.get("/table")).json()["routes"]
    assert len([r for r in table if path in r["paths"]]) == 1


async def test_concurrent_creates_of_one_name_let_exactly_one_win(
        admin: httpx.AsyncClient, tag: str) -> None:
    responses = await asyncio.gather(*(
        admin.post("/routes", json=spec(f"same-{tag}", f"/same{i}/{tag}")) for i in range(8)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7


def test_overlap_is_symmetric() -> None:
    for first, second, conflict in OVERLAPS:
        a = Claim.of(validate(spec("a", "/p", **first)))
        b = Claim.of(validate(spec("b", "/p", **second)))
        assert (overlap(a, b) is not None) == conflict == (overlap(b, a) is not None)


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A}", {"A": "1"}, "1"),
    ("x-${A}-${B:-two}", {"A": "1"}, "x-1-two"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A:-}", {}, ""),
    ("$${A}", {"A": "1"}, "${A}"),
    ("$A and $", {"A": "1"}, "$A and $"),
])
def test_environment_substitution_follows_the_shell(
        text: str, env: dict[str, str], expected: str) -> None:
    assert substitute(text, env, "here") == expected
