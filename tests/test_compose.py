"""docker-compose.yml and the Dockerfile, checked without a docker engine: the services, their
ports and environment, that every path they mount or copy exists, that each command names a
module of this repository, that the addresses they give each other agree, and that the
gateway's config renders for the OpenResty image from the same nginx.conf and passes
`nginx -t` here."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import render

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYTHON_SERVICES = ["migrate", "control", "auth", "lookup", "list", "worker", "routes",
                   "gateway-config"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def address(service: dict[str, Any]) -> str:
    return str(service["networks"]["portcullis"]["ipv4_address"])


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_compose_file_has_every_part_of_the_stack(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "redis", *PYTHON_SERVICES, "gateway"}
    assert services["gateway"]["image"].startswith("openresty/openresty:")
    assert not services["gateway"]["image"].endswith(":latest"), "pin the OpenResty image"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in PYTHON_SERVICES:
        assert services[name]["build"] == ".", name


PORTS = [
    # (service, published ports, as README says: public gateway, loopback metrics/control)
    ("gateway", ["8080:8080", "127.0.0.1:9145:9145"]),
    ("control", ["127.0.0.1:8001:8001"]),
    ("auth", []), ("lookup", []), ("list", []), ("worker", []), ("postgres", []),
    ("redis", []),
]


@pytest.mark.parametrize("case", PORTS, ids=[c[0] for c in PORTS])
def test_only_the_gateway_is_public_and_admin_ports_stay_on_loopback(
        services: dict[str, Any], case: tuple[str, list[str]]) -> None:
    name, published = case
    assert services[name].get("ports", []) == published


# Docker restarts a long-running service that exits, as `make run`'s launcher does; a
# one-shot job that finished (or failed: the services after it wait on its success) stays so.
RESTART = [
    ("postgres", "unless-stopped"), ("redis", "unless-stopped"), ("control", "unless-stopped"),
    ("auth", "unless-stopped"), ("lookup", "unless-stopped"), ("list", "unless-stopped"),
    ("worker", "unless-stopped"), ("gateway", "unless-stopped"),
    ("migrate", "no"), ("routes", "no"), ("gateway-config", "no"),
]


@pytest.mark.parametrize("case", RESTART, ids=[c[0] for c in RESTART])
def test_long_running_services_are_restarted_and_one_shot_jobs_are_not(
        services: dict[str, Any], case: tuple[str, str]) -> None:
    name, policy = case
    # "no" as a string: unquoted, YAML 1.1 readers (PyYAML among them) take it for false.
    assert services[name].get("restart") == policy


def test_every_service_has_a_restart_policy_in_the_table(services: dict[str, Any]) -> None:
    assert set(services) == {name for name, _ in RESTART}
    one_shot = {name for name, policy in RESTART if policy == "no"}
    waited_on = {dep for s in services.values() for dep, how in s.get("depends_on", {}).items()
                 if how["condition"] == "service_completed_successfully"}
    assert one_shot == waited_on  # a one-shot job is one the others wait to finish


LISTENERS = [("control", 8001), ("auth", 8100), ("lookup", 8200), ("list", 8210)]


@pytest.mark.parametrize("case", LISTENERS, ids=[c[0] for c in LISTENERS])
def test_each_service_listens_on_its_readme_port_on_every_interface(
        services: dict[str, Any], case: tuple[str, int]) -> None:
    name, port = case
    command = services[name]["command"]
    assert flag(command, "--host") == "0.0.0.0"
    assert flag(command, "--port") == str(port)
    assert f"127.0.0.1:{port}/healthz" in " ".join(services[name]["healthcheck"]["test"])


# Who holds which secret: the root only where the gateway's config is made; each service
# the key of its own audience; the auth service also the gateway's token.
SECRETS = {
    "gateway-config": {"PORTCULLIS_SIGNING_SECRET": "PORTCULLIS_SIGNING_SECRET"},
    "auth": {"PORTCULLIS_CONTEXT_KEYS": "PORTCULLIS_CONTEXT_KEYS_AUTH",
             "PORTCULLIS_GATEWAY_TOKEN": "PORTCULLIS_GATEWAY_TOKEN"},
    "lookup": {"PORTCULLIS_CONTEXT_KEYS": "PORTCULLIS_CONTEXT_KEYS_SUPPRESSION"},
    "list": {"PORTCULLIS_CONTEXT_KEYS": "PORTCULLIS_CONTEXT_KEYS_SUPPRESSION"},
}
HELD = ("PORTCULLIS_SIGNING_SECRET", "PORTCULLIS_CONTEXT_KEYS", "PORTCULLIS_GATEWAY_TOKEN")


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_python_services_get_the_shared_environment_and_run_a_module_of_the_repo(
        services: dict[str, Any], name: str) -> None:
    env = services[name]["environment"]
    for var in ("DATABASE_URL", "PORTCULLIS_ADMIN_TOKEN", "REDIS_URL"):
        assert env.get(var), f"{name}: {var}"
    # Secrets come from the operator's environment, never a default in the file, and each
    # service holds only its own.
    assert env["PORTCULLIS_ADMIN_TOKEN"].startswith("${PORTCULLIS_ADMIN_TOKEN:?")
    own = SECRETS.get(name, {})
    assert {v for v in HELD if v in env} == set(own), name
    for var, source in own.items():
        assert env[var].startswith("${" + source + ":?"), (name, var)
    assert f"@{address(services['postgres'])}:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == f"redis://{address(services['redis'])}:6379/0"
    command = services[name]["command"]
    words = shlex.split(command[-1]) if command[0] == "sh" else command
    modules = [words[i + 1] for i, w in enumerate(words) if w == "-m"]
    assert modules, name
    for module in modules:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin and spec.origin.startswith(str(ROOT)), module


def test_routes_point_at_the_services_addresses(services: dict[str, Any]) -> None:
    env = services["routes"]["environment"]
    assert env["SUPPRESSION_LOOKUP_ADDR"] == f"{address(services['lookup'])}:8200"
    assert env["SUPPRESSION_LIST_ADDR"] == f"{address(services['list'])}:8210"
    assert env["AUTHSVC_ADDR"] == f"{address(services['auth'])}:8100"
    command = services["routes"]["command"][-1]
    for routes_file in re.findall(r"-f (\S+)", command):
        assert (ROOT / routes_file).is_file(), routes_file
    assert f"http://{address(services['control'])}:8001" in command


def test_the_gateway_config_names_the_services_addresses_and_the_mounted_paths(
        services: dict[str, Any]) -> None:
    command = services["gateway-config"]["command"]
    assert command[:3] == ["python", "-m", "gateway.render"]
    assert flag(command, "--flavor") == "openresty"
    assert flag(command, "--control-url") == f"http://{address(services['control'])}:8001"
    assert flag(command, "--authsvc-addr") == f"{address(services['auth'])}:8100"
    assert flag(command, "--redis-url") == f"redis://{address(services['redis'])}:6379/0"
    assert flag(command, "--listen") == "0.0.0.0:8080"
    assert flag(command, "--metrics-listen") == "0.0.0.0:9145"
    gateway = services["gateway"]
    prefix = flag(command, "--prefix")
    assert f"gateway-conf:{prefix}" in services["gateway-config"]["volumes"]
    assert f"gateway-conf:{prefix}" in gateway["volumes"]
    assert f"./lua:{flag(command, '--lua-dir')}:ro" in gateway["volumes"]
    assert gateway["command"] == ["-p", f"{prefix}/", "-c", f"{prefix}/nginx.conf"]
    assert gateway["entrypoint"] == ["/usr/local/openresty/bin/openresty"]
    assert gateway["depends_on"]["gateway-config"]["condition"] == \
        "service_completed_successfully"


def test_every_bind_mounted_path_exists_in_the_repo(services: dict[str, Any],
                                                    compose: dict[str, Any]) -> None:
    named = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: undeclared volume {source}"


def test_every_fixed_address_is_unique_and_inside_the_network(services: dict[str, Any],
                                                              compose: dict[str, Any]) -> None:
    import ipaddress

    subnet = ipaddress.ip_network(compose["networks"]["portcullis"]["ipam"]["config"][0]
                                  ["subnet"])
    addresses = [address(s) for s in services.values()]
    assert len(addresses) == len(set(addresses))
    assert all(ipaddress.ip_address(a) in subnet for a in addresses)


def test_the_dockerfile_copies_only_paths_that_exist_and_installs_from_the_lock() -> None:
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.M)
    assert copies
    for line in copies:
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    assert "-c requirements.lock" in text
    assert re.search(r"^FROM python:3\.11", text, flags=re.M)
    cmd = json.loads(re.findall(r"^CMD\s+(.+)$", text, flags=re.M)[-1])
    assert importlib.util.find_spec(cmd[cmd.index("-m") + 1]) is not None
    # The lock pins every runtime dependency the image installs.
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        assert re.split(r"[\[=<>]", dep)[0].lower() in pinned, dep


def render_for_openresty(services: dict[str, Any], tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    """gateway-config's own command, with the prefix and the Lua folder moved here."""
    command = list(services["gateway-config"]["command"][3:])
    command[command.index("--prefix") + 1] = str(tmp_path)
    command[command.index("--lua-dir") + 1] = str(ROOT / "lua")
    monkeypatch.setenv("PORTCULLIS_ADMIN_TOKEN", "compose-admin")
    monkeypatch.setenv("PORTCULLIS_SIGNING_SECRET", "compose-secret")
    assert render.main(command) == 0
    return tmp_path / "nginx.conf"


def test_the_openresty_config_renders_from_the_same_template(
        services: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = render_for_openresty(services, tmp_path, monkeypatch).read_text()
    assert "load_module" not in conf
    assert "{{" not in conf
    assert f'lua_package_path "{ROOT / "lua"}/?.lua;;";' in conf
    assert "listen 0.0.0.0:8080 backlog=4096;" in conf
    assert "listen 0.0.0.0:9145;" in conf
    assert "server 172.28.0.12:8100" in conf
    # Everything else is the template itself: the same Lua entry points, line for line.
    entry = re.compile(r'(\w+_by_lua_block) \{ require\("([\w.]+)"\)\.(\w+)\(')
    template_lua = entry.findall(render.TEMPLATE.read_text())
    assert len(template_lua) >= 8 and template_lua == entry.findall(conf)
    gw = json.loads((tmp_path / "gateway.json").read_text())
    assert gw["redis_module"] == "resty.redis"
    assert gw["redis_url"] == "redis://172.28.0.3:6379/0"
    assert gw["control_url"] == "http://172.28.0.11:8001"
    assert gw["admin_token"] == "compose-admin"


def test_the_render_entry_point_refuses_to_run_without_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTCULLIS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("PORTCULLIS_SIGNING_SECRET", raising=False)
    assert render.main(["--prefix", str(tmp_path), "--control-url", "http://x:1",
                        "--authsvc-addr", "x:1"]) == 2
    assert not (tmp_path / "nginx.conf").exists()


def test_the_openresty_config_passes_nginx_t_here(
        services: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = render_for_openresty(services, tmp_path, monkeypatch)
    local = render.detect()
    if local.name == "openresty":
        checked = conf
    else:
        # Debian's nginx loads lua-nginx-module as a dynamic module; OpenResty has it built
        # in. Everything else is checked as rendered (init_by_lua runs, reading gateway.json).
        checked = tmp_path / "checked.conf"
        checked.write_text(local.load_modules + "\n" + conf.read_text())
    result = subprocess.run([local.binary, "-t", "-p", str(tmp_path), "-c", str(checked)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_files_own_set_up_lines_make_every_secret_it_asks_for(tmp_path: Path) -> None:
    """The commands in the file's header, run as an operator would: the .env they write
    holds every variable the file requires."""
    header = [line[1:].strip() for line in COMPOSE.read_text().splitlines()
              if line.startswith("#")]
    start = next(i for i, line in enumerate(header) if line.startswith("export "))
    end = next(i for i, line in enumerate(header) if line.startswith("docker compose up"))
    script = "\n".join(header[start:end]).replace("python3 ", f"{sys.executable} ")
    subprocess.run(["bash", "-euc", script], cwd=tmp_path, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    written = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines())
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    assert required - {"POSTGRES_PASSWORD"} <= set(written), required - set(written)
    assert all(written.values())
