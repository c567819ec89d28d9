"""Delegation never widens: a key that a credential makes, changes or rotates holds no grant
the credential lacks, is usable from no address the credential is not, and lives no longer
than the credential does."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from authsvc.decision import Network, Principal
from authsvc.errors import Forbidden
from authsvc.keys import cut
from authsvc.store import KeyRecord

MAX_LISTED = 200  # characters of names an error message lists


def holds(held: Collection[str], grant: str) -> bool:
    """Held outright, or a `view` covered by the same resource's `manage` (which already
    allows every read): giving a read-only key is no escalation."""
    if grant in held:
        return True
    resource, _, action = grant.rpartition("/")
    return action == "view" and f"{resource}/manage" in held


def lacking(caller: Principal, grants: Iterable[str]) -> list[str]:
    return [g for g in grants if not holds(caller.grants, g)]


def family(net: Network) -> Network:
    """An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps."""
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    return net


def inside(net: Network, allowed: Iterable[Network]) -> bool:
    """`net` lies wholly inside one of `allowed`, of its own family (never across)."""
    net = family(net)
    return any(net.version == outer.version and net.prefixlen >= outer.prefixlen
               and net.network_address in outer for outer in map(family, allowed))


def listed(names: Iterable[str]) -> str:
    return cut(", ".join(names), MAX_LISTED)


def expiry_of(caller: Principal) -> datetime | None:
    return None if caller.expires_at is None else datetime.fromtimestamp(caller.expires_at, UTC)


def networks_of(caller: Principal) -> tuple[str, ...]:
    return tuple(str(n) for n in caller.networks)


def too_wide(caller: Principal, grants: Iterable[str], valid_ips: tuple[str, ...],
             expires_at: datetime | None) -> list[str]:
    """What makes a key with these grants, networks and expiry wider than `caller`."""
    problems = []
    extra = lacking(caller, grants)
    if extra:
        problems.append(f"a key cannot hold grants this credential lacks: {listed(extra)}")
    if caller.networks:
        if not valid_ips:
            problems.append(
                "valid_ips: a key usable from any address is wider than this credential's "
                f"networks ({listed(networks_of(caller))}); name networks inside them")
        outside = [n for n in valid_ips
                   if not inside(ipaddress.ip_network(n, strict=False), caller.networks)]
        if outside:
            verb = "is" if len(outside) == 1 else "are"
            problems.append(f"valid_ips {listed(outside)} {verb} outside this credential's "
                            "networks")
    own = expiry_of(caller)
    if own is not None:
        if expires_at is None:
            problems.append("expires_at: a key that never expires outlives this credential, "
                            f"which expires at {own.isoformat()}; give an earlier expires_at")
        elif expires_at > own:
            problems.append("expires_at is later than this credential's own expiry "
                            f"({own.isoformat()})")
    return problems


def within_bounds(caller: Principal, grants: Iterable[str], valid_ips: tuple[str, ...],
                  expires_at: datetime | None) -> None:
    """Refuse (403, naming what is too wide) a key wider than the credential giving it."""
    problems = too_wide(caller, grants, valid_ips, expires_at)
    if problems:
        raise Forbidden("; ".join(problems))


def may_manage(caller: Principal, target: KeyRecord) -> None:
    """Changing, rotating or revoking a key needs every grant it holds."""
    extra = lacking(caller, target.grants)
    if extra:
        raise Forbidden(f"key {target.id} holds grants this credential lacks: {listed(extra)}")
