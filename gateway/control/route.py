"""A route as data, and its validation: `validate(spec)` turns what a service team wrote (JSON
from the admin API, or one entry of a routes file) into a `Route` with every default filled
in, or raises `InvalidRoute` naming each bad field (`paths[0]: must start with /`).

Pure: no I/O, so the CLI checks a routes file with it before it talks to any server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from portcullis.errors import APIError

T = TypeVar("T")

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
RESOURCE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
GRANT_RE = re.compile(r"[a-z][a-z0-9_]{0,63}/[a-z][a-z0-9_]{0,63}")
LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
ORIGIN_RE = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CACHEABLE_METHODS = ("GET", "HEAD")
BALANCES = ("round_robin", "least_conn")
AUTH_MODES = ("required", "none")
DIMENSIONS = ("route", "key", "account", "client_ip")
MAX_INT = 2**31 - 1
MAX_TIMEOUT = 3_600_000  # one hour, in milliseconds
MAX_PATH = 1024
DEFAULT_MAX_REQUEST_BODY = 1_048_576  # nginx's own default client_max_body_size
MAX_REQUEST_BODY = 1 << 40


@dataclass(frozen=True)
class Health:
    failures: int = 3  # passive: failures in a row that take a target out ...
    cooldown: int = 10  # ... for this many seconds
    path: str | None = None  # active check path; None: passive only
    interval: int = 5  # seconds between active checks


@dataclass(frozen=True)
class Upstream:
    targets: tuple[str, ...]
    balance: str = "round_robin"
    health: Health = field(default_factory=Health)


@dataclass(frozen=True)
class RateLimit:
    dimension: str
    limit: int
    window: int  # seconds
    burst: int


@dataclass(frozen=True)
class Cache:
    ttl: int
    methods: tuple[str, ...] = CACHEABLE_METHODS
    vary: tuple[str, ...] = ()
    max_body: int = 1_048_576


@dataclass(frozen=True)
class Timeouts:
    connect: int = 2000
    send: int = 10000
    read: int = 30000


@dataclass(frozen=True)
class Cors:
    origins: tuple[str, ...]
    methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    headers: tuple[str, ...] = ("Authorization", "Content-Type", "X-MSYS-SUBACCOUNT")
    max_age: int = 600


@dataclass(frozen=True)
class Route:
    name: str
    paths: tuple[str, ...]
    upstream: Upstream
    methods: tuple[str, ...] | None = None  # None: every method
    hosts: tuple[str, ...] | None = None  # None: any host
    resource: str | None = None
    auth: str = "required"
    grants: tuple[str, ...] | None = None
    rate_limits: tuple[RateLimit, ...] = ()
    cache: Cache | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: int = 1
    cors: Cors | None = None
    owner: str | None = None
    # Whom the signed context is for: the service behind the route, which verifies it with
    # the key derived for this name (default: the owner, else the route's name).
    service: str | None = None
    # Pass the client's Authorization header on to the service (default: never).
    forward_credentials: bool = False
    # Bytes a request body may have; refused (413) from Content-Length before anything is
    # read, and a body without one (chunked) is refused (411). None: no limit at the
    # gateway, for a route whose service bounds what it streams (imports).
    max_request_body: int | None = DEFAULT_MAX_REQUEST_BODY

    def to_dict(self) -> dict[str, Any]:
        """The route as JSON, in the order of docs/contracts.md."""
        plain = _plain(asdict(self))
        assert isinstance(plain, dict)
        return {key: plain[key] for key in FIELDS}


FIELDS = ("name", "paths", "methods", "hosts", "upstream", "resource", "auth", "grants",
          "rate_limits", "cache", "timeouts", "retries", "cors", "owner", "service",
          "forward_credentials", "max_request_body")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class InvalidRoute(APIError):
    """A 400 with one error entry per bad field; `problems` holds (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        descriptions = [f"{where}: {what}" for where, what in problems]
        extra = [{"message": "Invalid route", "code": "1400", "description": d}
                 for d in descriptions[1:]]
        super().__init__(400, "Invalid route", descriptions[0], extra=extra)


class _Bad(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


# --- field readers: each returns the clean value or raises _Bad naming the field ---

def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _mapping(value: Any, where: str, allowed: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, "must be an object")
    known = set(allowed)
    for key in value:
        if key not in known:
            raise _Bad(_at(where, str(key)), "unknown field")
    return value


def _int(value: Any, where: str, minimum: int, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(where, "must be an integer")
    if value < minimum:
        raise _Bad(where, f"must be at least {minimum}")
    if value > maximum:
        raise _Bad(where, f"must be at most {maximum}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Bad(where, "must be true or false")
    return value


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _Bad(where, f"must be one of {', '.join(choices)}")
    return value


def _pattern(value: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _Bad(where, f"must be {what}")
    return value


def _items(value: Any, where: str, read: Callable[[Any, str], T], *,
           allow_empty: bool = False) -> tuple[T, ...]:
    """A list read item by item; duplicates are refused (they are always a mistake)."""
    if not isinstance(value, list | tuple):
        raise _Bad(where, "must be a list")
    if not value and not allow_empty:
        raise _Bad(where, "must not be empty")
    out: list[T] = []
    for i, item in enumerate(value):
        clean = read(item, _at(where, i))
        if clean in out:
            raise _Bad(_at(where, i), "duplicate")
        out.append(clean)
    return tuple(out)


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(where, "must be a non-empty string")
    if not value.startswith("/"):
        raise _Bad(where, "must start with /")
    if len(value) > MAX_PATH:
        raise _Bad(where, f"must be at most {MAX_PATH} characters")
    if ".." in value:
        raise _Bad(where, "must not hold ..")
    if "//" in value:
        raise _Bad(where, "must not hold //")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise _Bad(where, "must not hold spaces or control characters")
    if "?" in value or "#" in value:
        raise _Bad(where, "must be a path only (no ? or #)")
    return value


def _method(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise _Bad(where, f"must be an HTTP method ({', '.join(METHODS)})")
    return value.upper()


def _hostname(value: str) -> bool:
    labels = value.split(".")
    return len(value) <= 253 and all(LABEL_RE.fullmatch(label) for label in labels)


def _host(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(where, "must be a string")
    host = value.lower()
    name = host[2:] if host.startswith("*.") else host
    if ":" in name:
        raise _Bad(where, "must be a host name without a port")
    if not name or not _hostname(name) or ("." not in name and host.startswith("*.")):
        raise _Bad(where, "must be a host name (api.example.com) or a wildcard (*.example.com)")
    return host


def _target(value: Any, where: str) -> str:
    message = "must be host:port or ip:port with a port from 1 to 65535"
    if not isinstance(value, str):
        raise _Bad(where, message)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or len(port) > 5:
        raise _Bad(where, message)
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise _Bad(where, message) from None
    elif not host or not _hostname(host.lower()):
        raise _Bad(where, message)
    return f"{host.lower()}:{int(port)}"


def _upstream(value: Any, where: str) -> Upstream:
    spec = _mapping(value, where, ("targets", "balance", "health"))
    if "targets" not in spec:
        raise _Bad(_at(where, "targets"), "is required")
    targets = _items(spec["targets"], _at(where, "targets"), _target)
    balance = _choice(spec.get("balance", "round_robin"), _at(where, "balance"), BALANCES)
    health = Health()
    if spec.get("health") is not None:
        h_where = _at(where, "health")
        h = _mapping(spec["health"], h_where, ("failures", "cooldown", "path", "interval"))
        path = h.get("path")
        health = Health(
            failures=_int(h.get("failures", health.failures), _at(h_where, "failures"), 1, 100),
            cooldown=_int(h.get("cooldown", health.cooldown), _at(h_where, "cooldown"), 0),
            path=None if path is None else _path(path, _at(h_where, "path")),
            interval=_int(h.get("interval", health.interval), _at(h_where, "interval"), 1),
        )
    return Upstream(targets=targets, balance=balance, health=health)


def _rate_limit(value: Any, where: str) -> RateLimit:
    spec = _mapping(value, where, ("dimension", "limit", "window", "burst"))
    for required in ("dimension", "limit"):
        if required not in spec:
            raise _Bad(_at(where, required), "is required")
    limit = _int(spec["limit"], _at(where, "limit"), 1)
    return RateLimit(
        dimension=_choice(spec["dimension"], _at(where, "dimension"), DIMENSIONS),
        limit=limit,
        window=_int(spec.get("window", 1), _at(where, "window"), 1, 86400),
        burst=_int(spec.get("burst", limit), _at(where, "burst"), 0),
    )


def _header(value: Any, where: str) -> str:
    return _pattern(value, where, HEADER_RE, "a header name")


def _cache(value: Any, where: str) -> Cache:
    spec = _mapping(value, where, ("ttl", "methods", "vary", "max_body"))
    if "ttl" not in spec:
        raise _Bad(_at(where, "ttl"), "is required")

    def cacheable(item: Any, at: str) -> str:
        method = _method(item, at)
        if method not in CACHEABLE_METHODS:
            raise _Bad(at, "only GET and HEAD responses are cached")
        return method

    default = Cache(ttl=1)
    return Cache(
        ttl=_int(spec["ttl"], _at(where, "ttl"), 1, 86400),
        methods=_items(spec.get("methods", list(default.methods)), _at(where, "methods"),
                       cacheable),
        vary=_items(spec.get("vary", []), _at(where, "vary"), _header, allow_empty=True),
        max_body=_int(spec.get("max_body", default.max_body), _at(where, "max_body"), 0),
    )


def _timeouts(value: Any, where: str) -> Timeouts:
    spec = _mapping(value, where, ("connect", "send", "read"))
    default = Timeouts()
    return Timeouts(**{
        name: _int(spec.get(name, getattr(default, name)), _at(where, name), 1, MAX_TIMEOUT)
        for name in ("connect", "send", "read")
    })


def _origin(value: Any, where: str) -> str:
    if value == "*":
        return "*"
    return _pattern(value, where, ORIGIN_RE, "* or an origin (https://ui.example.com)")


def _cors(value: Any, where: str) -> Cors:
    spec = _mapping(value, where, ("origins", "methods", "headers", "max_age"))
    if "origins" not in spec:
        raise _Bad(_at(where, "origins"), "is required")
    default = Cors(origins=())
    return Cors(
        origins=_items(spec["origins"], _at(where, "origins"), _origin),
        methods=_items(spec.get("methods", list(default.methods)), _at(where, "methods"),
                       _method),
        headers=_items(spec.get("headers", list(default.headers)), _at(where, "headers"),
                       _header, allow_empty=True),
        max_age=_int(spec.get("max_age", default.max_age), _at(where, "max_age"), 0, 86400),
    )


def _optional(read: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    def reader(value: Any, where: str) -> T | None:
        return None if value is None else read(value, where)
    return reader


_READERS: dict[str, Callable[[Any, str], Any]] = {
    "name": lambda v, w: _pattern(v, w, NAME_RE, "lower-case letters, digits, _ . - "
                                  "(at most 64, starting with a letter or digit)"),
    "paths": lambda v, w: _items(v, w, _path),
    "methods": _optional(lambda v, w: _items(v, w, _method)),
    "hosts": _optional(lambda v, w: _items(v, w, _host)),
    "upstream": _upstream,
    "resource": _optional(lambda v, w: _pattern(v, w, RESOURCE_RE, "a resource name "
                                                "(suppression_lists)")),
    "auth": lambda v, w: _choice(v, w, AUTH_MODES),
    "grants": _optional(lambda v, w: _items(v, w, lambda g, a: _pattern(
        g, a, GRANT_RE, "a grant (resource/level)"))),
    "rate_limits": lambda v, w: _items(v, w, _rate_limit, allow_empty=True),
    "cache": _optional(_cache),
    "timeouts": _timeouts,
    "retries": lambda v, w: _int(v, w, 0, 10),
    "cors": _optional(_cors),
    "owner": _optional(lambda v, w: _pattern(v, w, NAME_RE, "lower-case letters, digits, "
                                             "_ . - (at most 64)")),
    "service": _optional(lambda v, w: _pattern(v, w, NAME_RE, "a service name: lower-case "
                                               "letters, digits, _ . - (at most 64)")),
    "forward_credentials": lambda v, w: _bool(v, w),
    "max_request_body": _optional(lambda v, w: _int(v, w, 0, MAX_REQUEST_BODY)),
}
REQUIRED = ("name", "paths", "upstream")


def validate(spec: Any) -> Route:
    """Return the route `spec` describes, defaults filled in, or raise InvalidRoute."""
    if not isinstance(spec, Mapping):
        raise InvalidRoute([("route", "must be an object")])
    problems: list[tuple[str, str]] = []
    clean: dict[str, Any] = {}
    for key in spec:
        if key not in _READERS:
            problems.append((str(key), "unknown field"))
    for key in REQUIRED:
        if key not in spec:
            problems.append((key, "is required"))
    for key, read in _READERS.items():
        if key in spec:
            try:
                clean[key] = read(spec[key], key)
            except _Bad as bad:
                problems.append((bad.where, bad.what))
    auth_required = spec.get("auth", "required") == "required"
    if auth_required and spec.get("resource") is None:
        problems.append(("resource", "is required when auth is required"))
    if problems:
        raise InvalidRoute(problems)
    if clean.get("service") is None:
        clean["service"] = clean.get("owner") or clean["name"]
    return Route(**clean)


# --- conflicts: two routes may not claim the same path + method + host ---

@dataclass(frozen=True)
class Claim:
    """What a route claims of the request space; read leniently from stored specs too."""

    name: str
    paths: frozenset[str]
    methods: frozenset[str] | None
    hosts: tuple[str, ...] | None

    @classmethod
    def of(cls, spec: Route | Mapping[str, Any]) -> Claim:
        data = spec.to_dict() if isinstance(spec, Route) else spec
        methods, hosts = data.get("methods"), data.get("hosts")
        return cls(name=str(data["name"]), paths=frozenset(data.get("paths") or ()),
                   methods=frozenset(methods) if methods else None,
                   hosts=tuple(hosts) if hosts else None)


def _covers(pattern: str, host: str) -> bool:
    """A host (or wildcard) `host` is matched by `pattern` too: equal, or under a wildcard."""
    return pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def hosts_overlap(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
    if a is None or b is None:  # any host
        return True
    return any(_covers(x, y) or _covers(y, x) for x in a for y in b)


def overlap(a: Claim, b: Claim) -> str | None:
    """The first path both claim for some method on some host, or None."""
    if a.methods is not None and b.methods is not None and not a.methods & b.methods:
        return None
    if not hosts_overlap(a.hosts, b.hosts):
        return None
    shared = sorted(a.paths & b.paths)
    return shared[0] if shared else None


class RouteConflict(APIError):
    def __init__(self, name: str, other: str, path: str) -> None:
        self.other = other
        super().__init__(409, "Route conflict",
                         f"paths: route {other!r} already claims {path} for an overlapping "
                         f"method and host", "1409")


def check_conflicts(route: Route | Claim, others: Iterable[Claim]) -> None:
    """Raise RouteConflict naming the first other route claiming what `route` claims."""
    mine = route if isinstance(route, Claim) else Claim.of(route)
    for other in sorted(others, key=lambda c: c.name):
        if other.name == mine.name:
            continue
        path = overlap(mine, other)
        if path is not None:
            raise RouteConflict(mine.name, other.name, path)
