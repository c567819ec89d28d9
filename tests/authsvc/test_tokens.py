"""JWT bearer tokens: every issuer kind, claims mapping, every attack refused with a reason,
JWKS rotation and refetch limits."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from tests.authsvc.conftest import Api, base_config, running
from tests.authsvc.jwtfix import (
    AUDIENCE,
    SECRET,
    Issuer,
    JwksServer,
    add_issuer,
    ec_key,
    hand_signed,
    jwks_server,
    public_jwk,
    public_pem,
    rsa_key,
    unsigned,
)


@dataclass
class World:
    account: int
    sub: int
    foreign_sub: int
    issuers: dict[str, Issuer]
    rsa: Any
    jwks: JwksServer


@pytest.fixture(scope="module")
async def jwks() -> AsyncIterator[JwksServer]:
    async for server in jwks_server():
        yield server


@pytest.fixture(scope="module")
async def world(api: Api, jwks: JwksServer) -> World:
    account, other = await api.account(), await api.account()
    sub, foreign_sub = await api.subaccount(account), await api.subaccount(other)
    rsa, rsa_url, ec = rsa_key(), rsa_key(), ec_key()
    jwks.sets["main"] = {"keys": [public_jwk(rsa_url, "url-1")]}
    issuers = {
        "HS256 secret": await add_issuer(api, account, "HS256", SECRET, secret=SECRET),
        "RS256 static PEM": await add_issuer(
            api, account, "RS256", rsa, "static-1",
            public_keys=[{"kid": "static-1", "pem": public_pem(rsa)}]),
        "ES256 static JWKS": await add_issuer(
            api, account, "ES256", ec, "ec-1", jwks={"keys": [public_jwk(ec, "ec-1")]}),
        "RS256 JWKS URL": await add_issuer(api, account, "RS256", rsa_url, "url-1",
                                           jwks_url=jwks.url("main")),
    }
    return World(account, sub, foreign_sub, issuers, rsa, jwks)


def bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.mark.parametrize("kind", ["HS256 secret", "RS256 static PEM", "ES256 static JWKS",
                                  "RS256 JWKS URL"])
@pytest.mark.parametrize(("grants", "method", "status"), [
    (["suppression_lists/view"], "GET", 200),
    (["suppression_lists/view"], "HEAD", 200),
    (["suppression_lists/view"], "PUT", 403),
    (["suppression_lists/manage"], "DELETE", 200),
    ("suppression_lists/view suppression_lists/manage", "POST", 200),
    ([], "GET", 403),
    (["templates/manage"], "GET", 403),
])
async def test_a_token_from_each_kind_of_issuer_is_decided_by_its_grants(
        api: Api, world: World, kind: str, grants: Any, method: str, status: int) -> None:
    issuer = world.issuers[kind]
    token = issuer.token(grants=grants, sub=f"user-{kind[:2]}")
    r = await api.authorize(bearer(token), method)
    assert r.status_code == status, r.text
    if status == 200:
        body = r.json()
        assert body["account_id"] == world.account
        assert body["subaccount_id"] is None
        assert body["key_id"] == f"jwt:{issuer.name}:user-{kind[:2]}"
        assert 0 < body["ttl"] <= 30
    else:
        assert r.json()["reason"] == "grant_missing"


async def test_oauth_scope_stands_in_for_the_grants_claim(api: Api, world: World) -> None:
    issuer = world.issuers["HS256 secret"]
    token = issuer.token(grants=None, scope="suppression_lists/view")
    r = await api.authorize(bearer(token))
    assert r.status_code == 200 and r.json()["grants"] == ["suppression_lists/view"]


@pytest.mark.parametrize(("claim", "header", "status", "expected"), [
    (None, None, 200, None),
    (None, "0", 200, 0),
    (None, "sub", 200, "sub"),
    ("sub", None, 200, "sub"),
    ("sub", "sub", 200, "sub"),
    ("sub", "0", 403, "subaccount_not_permitted"),
    ("foreign", None, 401, "jwt_bad_claim"),
    ("abc", None, 401, "jwt_bad_claim"),
    (None, "foreign", 403, "subaccount_unknown"),
    (None, "x1", 400, "subaccount_malformed"),
])
async def test_a_tokens_subaccount_claim_binds_it_like_a_subaccount_key(
        api: Api, world: World, claim: str | None, header: str | None, status: int,
        expected: Any) -> None:
    ids = {"sub": world.sub, "foreign": world.foreign_sub}
    issuer = world.issuers["RS256 static PEM"]
    claim_value = ids.get(claim, claim) if claim else None
    token = issuer.token(subaccount_id=claim_value)
    r = await api.authorize(bearer(token), subaccount=str(ids.get(header, header))
                            if header else None)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["subaccount_id"] == ids.get(expected, expected)
    else:
        assert r.json()["reason"] == expected


async def test_an_issuer_allow_list_of_grants_caps_what_its_tokens_get(
        api: Api, world: World) -> None:
    issuer = await add_issuer(api, world.account, "HS256", SECRET, secret=SECRET,
                              allowed_grants=["suppression_lists/view"])
    token = issuer.token(grants=["suppression_lists/view", "suppression_lists/manage",
                                 "api_keys/manage"])
    ok = await api.authorize(bearer(token), "GET")
    assert ok.status_code == 200 and ok.json()["grants"] == ["suppression_lists/view"]
    assert (await api.authorize(bearer(token), "PUT")).status_code == 403


def attacks(world: World) -> dict[str, tuple[str, str]]:
    """name -> (Authorization header, expected reason)."""
    hs, rs = world.issuers["HS256 secret"], world.issuers["RS256 static PEM"]
    es, url = world.issuers["ES256 static JWKS"], world.issuers["RS256 JWKS URL"]
    now = int(time.time())
    pem = public_pem(world.rsa).encode()
    good = rs.token()
    head, body, sig = good.split(".")
    tampered_body = rs.token(sub="admin").split(".")[1]
    return {
        "alg none": (bearer(unsigned(rs.claims())), "jwt_alg_none"),
        "alg None": (bearer(unsigned(rs.claims(), "None")), "jwt_alg_none"),
        "alg NONE on an HMAC issuer": (bearer(unsigned(hs.claims(), "NONE")), "jwt_alg_none"),
        "HS256 signed with the RSA public key": (
            bearer(hand_signed({"alg": "HS256", "typ": "JWT", "kid": "static-1"},
                               rs.claims(), pem)), "jwt_alg_confusion"),
        "RS384 where only RS256 is allowed": (
            bearer(rs.token(alg="RS384")), "jwt_alg_not_allowed"),
        "HS256 token for an ES256 issuer": (
            bearer(hand_signed({"alg": "HS256", "kid": "ec-1"}, es.claims(),
                               SECRET.encode())), "jwt_alg_confusion"),
        "expired": (bearer(hs.token(exp=now - 3600)), "jwt_expired"),
        "not yet valid": (bearer(hs.token(nbf=now + 3600)), "jwt_not_yet_valid"),
        "unknown issuer": (bearer(hs.token(iss="https://evil.example.com/")),
                           "jwt_wrong_issuer"),
        "wrong audience": (bearer(hs.token(aud="someone-else")), "jwt_wrong_audience"),
        "no audience": (bearer(hs.token(aud=None)), "jwt_missing_claim"),
        "no expiry": (bearer(hs.token(exp=None)), "jwt_missing_claim"),
        "no subject": (bearer(hs.token(sub=None)), "jwt_missing_claim"),
        "no issuer": (bearer(hs.token(iss=None)), "jwt_missing_claim"),
        "unknown kid, static keys": (bearer(rs.token(headers={"kid": "nope"})),
                                     "jwt_unknown_kid"),
        "unknown kid, JWKS URL": (bearer(url.token(headers={"kid": f"nope-{uuid.uuid4()}"})),
                                  "jwt_unknown_kid"),
        "signed by another RSA key": (bearer(rs.token(key=rsa_key())), "jwt_bad_signature"),
        "signed by another EC key": (bearer(es.token(key=ec_key())), "jwt_bad_signature"),
        "signed with another HMAC secret": (bearer(hs.token(key="x" * 48)),
                                            "jwt_bad_signature"),
        "payload swapped under a valid signature": (
            bearer(f"{head}.{tampered_body}.{sig}"), "jwt_bad_signature"),
        "signature stripped": (bearer(f"{head}.{body}."), "jwt_bad_signature"),
        "over 8 KB": (bearer(hs.token(padding="x" * 9000)), "credential_too_large"),
        "not base64": (bearer("abc.def.ghi"), "jwt_malformed"),
    }


ATTACKS = ["alg none", "alg None", "alg NONE on an HMAC issuer",
           "HS256 signed with the RSA public key", "RS384 where only RS256 is allowed",
           "HS256 token for an ES256 issuer", "expired", "not yet valid", "unknown issuer",
           "wrong audience", "no audience", "no expiry", "no subject", "no issuer",
           "unknown kid, static keys", "unknown kid, JWKS URL", "signed by another RSA key",
           "signed by another EC key", "signed with another HMAC secret",
           "payload swapped under a valid signature", "signature stripped", "over 8 KB",
           "not base64"]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_every_jwt_attack_is_refused_with_its_reason(
        api: Api, world: World, attack: str) -> None:
    token, reason = attacks(world)[attack]
    r = await api.authorize(token, "GET")
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == reason
    assert r.json()["errors"][0]["code"] == "1401"


async def test_a_token_signed_with_the_public_key_fails_even_where_hmac_is_allowed(
        api: Api, world: World) -> None:
    rsa = rsa_key()
    issuer = await add_issuer(api, world.account, "RS256", rsa, "m-1",
                              public_keys=[{"kid": "m-1", "pem": public_pem(rsa)}])
    r = await api.admin("POST", "/admin/issuers", {
        "name": issuer.name + "-mixed", "issuer": issuer.iss + "mixed",
        "account_id": world.account, "audience": AUDIENCE, "algorithms": ["HS256", "RS256"],
        "secret": SECRET, "public_keys": [{"kid": "m-1", "pem": public_pem(rsa)}]})
    assert r.status_code == 201, r.text
    claims = issuer.claims(iss=issuer.iss + "mixed")
    forged = hand_signed({"alg": "HS256", "kid": "m-1"}, claims, public_pem(rsa).encode())
    r = await api.authorize(bearer(forged))
    assert r.status_code == 401 and r.json()["reason"] == "jwt_bad_signature"
    honest = jwt.encode(claims, rsa, algorithm="RS256", headers={"kid": "m-1"})
    assert (await api.authorize(bearer(honest))).status_code == 200


@pytest.mark.parametrize(("shift", "claim", "status"), [
    (-10, "exp", 200),    # expired 10 s ago: within the 30 s leeway
    (-60, "exp", 401),
    (10, "nbf", 200),     # valid in 10 s: within the leeway
    (60, "nbf", 401),
])
async def test_exp_and_nbf_allow_a_small_leeway_and_no_more(
        api: Api, world: World, shift: int, claim: str, status: int) -> None:
    token = world.issuers["HS256 secret"].token(**{claim: int(time.time()) + shift})
    assert (await api.authorize(bearer(token))).status_code == status


async def test_a_token_decision_never_outlives_the_token(api: Api, world: World) -> None:
    token = world.issuers["HS256 secret"].token(exp=int(time.time()) + 5 - 30)
    r = await api.authorize(bearer(token))
    assert r.status_code == 200 and r.json()["ttl"] <= 5


async def test_a_token_decision_ends_at_exp_not_at_exp_plus_the_leeway(
        api: Api, world: World) -> None:
    token = world.issuers["HS256 secret"].token(exp=int(time.time()) + 5)
    r = await api.authorize(bearer(token))
    assert r.status_code == 200 and r.json()["ttl"] <= 5
    # past exp but within the leeway: still verified, for the shortest decision only
    late = world.issuers["HS256 secret"].token(exp=int(time.time()) - 10)
    r = await api.authorize(bearer(late))
    assert r.status_code == 200 and r.json()["ttl"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"algorithms": ["none"], "secret": SECRET}, "algorithms"),
    ({"algorithms": ["HS256"], "secret": "short"}, "secret"),
    ({"algorithms": ["RS256"]}, "jwks"),
    ({"algorithms": ["RS256"], "jwks": {"keys": [{"kty": "RSA"}]}}, "jwks"),
    ({"algorithms": ["RS256"], "public_keys": [{"pem": "not a pem"}]}, "pem"),
    ({"algorithms": ["RS256"], "jwks_url": "ftp://x"}, "jwks_url"),
    ({"algorithms": ["HS256"], "secret": SECRET, "audience": None}, "audience"),
])
async def test_an_issuer_with_bad_settings_is_not_created(
        api: Api, world: World, body: dict[str, Any], field: str) -> None:
    r = await api.admin("POST", "/admin/issuers", {
        "name": f"bad-{uuid.uuid4().hex[:8]}", "issuer": f"https://{uuid.uuid4()}/",
        "account_id": world.account, "audience": AUDIENCE, **body})
    assert r.status_code == 400, r.text
    assert field in r.json()["errors"][0]["description"]


async def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_interval(
        api: Api, world: World) -> None:
    issuer = world.issuers["RS256 JWKS URL"]
    assert (await api.authorize(bearer(issuer.token()))).status_code == 200
    before = world.jwks.fetches["main"]
    for _ in range(5):
        forged = issuer.token(headers={"kid": f"forged-{uuid.uuid4()}"})
        r = await api.authorize(bearer(forged))
        assert r.json()["reason"] == "jwt_unknown_kid"
    assert world.jwks.fetches["main"] - before <= 1


async def test_a_rotated_jwks_key_is_picked_up_by_refetching_on_its_new_kid(
        api: Api, pg_dsn: str, world: World) -> None:
    old, new = rsa_key(), rsa_key()
    world.jwks.sets["rotating"] = {"keys": [public_jwk(old, "r-1")]}
    issuer = await add_issuer(api, world.account, "RS256", old, "r-1",
                              jwks_url=world.jwks.url("rotating"))
    async with running(base_config(pg_dsn, jwks_refetch_interval=0.0)) as service:
        assert (await service.authorize(bearer(issuer.token()))).status_code == 200
        world.jwks.sets["rotating"] = {"keys": [public_jwk(new, "r-2")]}
        rotated = issuer.token(key=new, headers={"kid": "r-2"})
        assert (await service.authorize(bearer(rotated))).status_code == 200
        # the set now holds only the new key: the old one is gone with the refetch
        r = await service.authorize(bearer(issuer.token()))
        assert r.status_code == 401 and r.json()["reason"] == "jwt_unknown_kid"


async def test_an_issuer_whose_jwks_cannot_be_fetched_makes_the_decision_unavailable(
        api: Api, world: World) -> None:
    world.jwks.failing.add("down")
    issuer = await add_issuer(api, world.account, "RS256", rsa_key(), "d-1",
                              jwks_url=world.jwks.url("down"))
    r = await api.authorize(bearer(issuer.token()))
    assert r.status_code == 503
    assert r.json()["reason"] == "jwks_unavailable" and r.json()["ttl"] == 0



HOSTILE_VALUES = {
    "CR LF": "user\r\nX-Account-Id: 1",
    "LF": "user\nx",
    "NUL": "user\x00x",
    "DEL": "user\x7fx",
    "a comma": "user,x",
    "a tab": "user\tx",
    "overlong": "u" * 201,
}


@pytest.mark.parametrize("value", list(HOSTILE_VALUES), ids=list(HOSTILE_VALUES))
async def test_a_subject_that_could_not_be_sent_as_a_header_is_refused_naming_the_claim(
        api: Api, world: World, value: str) -> None:
    issuer = world.issuers["HS256 secret"]
    r = await api.authorize(bearer(issuer.token(sub=HOSTILE_VALUES[value])))
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == "jwt_bad_claim"
    description = r.json()["errors"][0]["description"]
    assert "`sub`" in description and HOSTILE_VALUES[value] not in description


@pytest.mark.parametrize("value", [*HOSTILE_VALUES, "non-ASCII", "a space", "empty"],
                         ids=[*HOSTILE_VALUES, "non-ASCII", "a space", "empty"])
async def test_a_grant_that_could_not_be_sent_as_a_header_refuses_the_token(
        api: Api, world: World, value: str) -> None:
    grant = {**HOSTILE_VALUES, "non-ASCII": "suppression_lists/vïew", "a space": "a/b c",
             "empty": ""}[value]
    if value == "overlong":
        grant = "suppression_lists/" + "v" * 120
    issuer = world.issuers["HS256 secret"]
    r = await api.authorize(bearer(issuer.token(grants=["suppression_lists/view", grant])))
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == "jwt_bad_claim"
    assert grant not in r.json()["errors"][0]["description"] or not grant


async def test_too_many_grants_refuse_the_token(api: Api, world: World) -> None:
    issuer = world.issuers["HS256 secret"]
    grants = [f"r{i}/view" for i in range(65)]
    r = await api.authorize(bearer(issuer.token(grants=grants)))
    assert r.status_code == 401 and r.json()["reason"] == "jwt_bad_claim"


@pytest.mark.parametrize(("sub", "key_id"), [
    ("josé", "jos%C3%A9"), ("two words", "two%20words"), ("50%", "50%25"),
    ("auth0|5f1c", "auth0|5f1c"), ("jane@example.com", "jane@example.com"),
])
async def test_a_subject_outside_visible_ascii_is_percent_encoded_in_the_key_id(
        api: Api, world: World, sub: str, key_id: str) -> None:
    issuer = world.issuers["HS256 secret"]
    r = await api.authorize(bearer(issuer.token(sub=sub, grants=["suppression_lists/view"])))
    assert r.status_code == 200, r.text
    assert r.json()["key_id"] == f"jwt:{issuer.name}:{key_id}"
