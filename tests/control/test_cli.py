"""The declarative CLI: apply, dry run, owner-scoped and full pruning, environment
substitution; in process against the app, and as a command against a real server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from gateway.cli import commands
from gateway.cli.admin import Admin, AdminError
from gateway.cli.routefile import RouteFileError
from gateway.control.app import create_app
from gateway.control.config import Config
from gateway.control.store import Store
from portcullis.procs import Proc, free_port
from tests.control.api import TARGET, spec
from tests.control.conftest import TOKEN, client_for

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, *routes: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"routes": list(routes)}, sort_keys=False))
    return path


async def run_apply(admin: Admin, path: Path, env: dict[str, str] | None = None,
                    **flags: bool) -> str:
    out = io.StringIO()
    await commands.apply(admin, path, env or {}, out, **flags)
    return out.getvalue()


@pytest.fixture
async def cli(admin: httpx.AsyncClient) -> Admin:
    """The CLI's client on the in-process app (the admin fixture cleans up after it)."""
    return Admin(admin)


async def names(admin: httpx.AsyncClient) -> set[str]:
    return {r["name"] for r in (await admin.get("/routes")).json()["results"]}


async def test_apply_creates_updates_and_deletes_the_owners_routes(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    owner = f"team-{tag}"
    a, b, c = (spec(f"{x}-{tag}", f"/{x}/{tag}", owner=owner) for x in "abc")
    first = await run_apply(cli, write(tmp_path / "v1.yaml", a, b))
    assert f"+ a-{tag}" in first and f"+ b-{tag}" in first
    assert {f"a-{tag}", f"b-{tag}"} <= await names(admin)

    b_changed = {**b, "retries": 3}
    second = await run_apply(cli, write(tmp_path / "v2.yaml", b_changed, c))
    assert second.splitlines()[:4] == [
        f"- a-{tag}",
        f"~ b-{tag}",
        "    retries: 1 -> 3",
        f"+ c-{tag}",
    ]
    assert "1 to create, 1 to update, 1 to delete" in second
    now = await names(admin)
    assert f"a-{tag}" not in now and {f"b-{tag}", f"c-{tag}"} <= now
    assert (await admin.get(f"/routes/b-{tag}")).json()["results"]["retries"] == 3

    third = await run_apply(cli, tmp_path / "v2.yaml")
    assert "no changes" in third


async def test_dry_run_prints_the_diff_and_changes_nothing(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    owner = f"team-{tag}"
    old = spec(f"old-{tag}", f"/old/{tag}", owner=owner)
    await run_apply(cli, write(tmp_path / "v1.yaml", old))
    before = (await admin.get("/table")).json()

    new = spec(f"new-{tag}", f"/new/{tag}", owner=owner)
    changed_old = {**old, "upstream": {"targets": [TARGET, "127.0.0.1:10"]}}
    out = await run_apply(cli, write(tmp_path / "v2.yaml", changed_old, new), dry_run=True)
    assert f"~ old-{tag}" in out
    assert '    upstream.targets: ["127.0.0.1:9"] -> ["127.0.0.1:9","127.0.0.1:10"]' in out
    assert f"+ new-{tag}" in out
    assert "dry run: nothing changed" in out
    assert (await admin.get("/table")).json() == before


async def test_apply_leaves_routes_of_owners_not_in_the_file(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    await admin.post("/routes", json=spec(f"theirs-{tag}", owner=f"others-{tag}"))
    await admin.post("/routes", json=spec(f"ownerless-{tag}"))
    out = await run_apply(cli, write(tmp_path / "mine.yaml",
                                     spec(f"mine-{tag}", owner=f"mine-{tag}")))
    assert "-" not in [line[:1] for line in out.splitlines()]
    assert {f"theirs-{tag}", f"ownerless-{tag}", f"mine-{tag}"} <= await names(admin)


async def test_prune_all_deletes_every_route_not_in_the_file(
        private_dsn: str, tmp_path: Path, tag: str) -> None:
    store = await Store.connect(private_dsn)
    app = create_app(Config(database_url=private_dsn, admin_token=TOKEN), store=store)
    try:
        async with client_for(app) as client:
            for route in (spec(f"x-{tag}", owner="x"), spec(f"y-{tag}"),
                          spec(f"keep-{tag}", owner="k")):
                assert (await client.post("/routes", json=route)).status_code == 201
            path = write(tmp_path / "only.yaml", spec(f"keep-{tag}", owner="k"))
            owners_only = await run_apply(Admin(client), path, dry_run=True)
            assert "no changes" in owners_only
            out = await run_apply(Admin(client), path, prune_all=True)
            assert f"- x-{tag}" in out and f"- y-{tag}" in out
            assert await names(client) == {f"keep-{tag}"}
    finally:
        await store.close()


async def test_environment_variables_are_substituted_with_defaults(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(f"""
routes:
  - name: env-{tag}
    paths: ["/env/{tag}"]
    resource: tests
    upstream:
      targets: ["${{ENV_TEST_ADDR}}", "${{ENV_TEST_OTHER:-127.0.0.1:7001}}"]
    owner: "team-{tag}"
""")
    await run_apply(cli, path, {"ENV_TEST_ADDR": "10.1.2.3:8200"})
    route = (await admin.get(f"/routes/env-{tag}")).json()["results"]
    assert route["upstream"]["targets"] == ["10.1.2.3:8200", "127.0.0.1:7001"]


@pytest.mark.parametrize(("text", "expected"), [
    ('targets: ["${UNSET_ADDR}"]', "UNSET_ADDR is not set and has no default"),
    ('targets: ["${UNSET_ADDR"]', "malformed variable reference"),
    ('targets: ["127.0.0.1:0"]', "upstream.targets[0]: must be host:port"),
])
async def test_a_bad_routes_file_is_refused_before_anything_changes(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str, text: str,
        expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"""
routes:
  - name: good-{tag}
    paths: ["/good/{tag}"]
    resource: tests
    upstream: {{targets: ["127.0.0.1:9"]}}
  - name: bad-{tag}
    paths: ["/bad/{tag}"]
    resource: tests
    upstream:
      {text}
""")
    with pytest.raises(RouteFileError) as raised:
        await run_apply(cli, path, {})
    assert any(expected in p and f"bad-{tag}" in p for p in raised.value.problems)
    assert f"good-{tag}" not in await names(admin)


async def test_a_file_whose_routes_conflict_with_each_other_is_refused(
        cli: Admin, tmp_path: Path, tag: str) -> None:
    path = write(tmp_path / "twice.yaml", spec(f"one-{tag}", f"/same/{tag}"),
                 spec(f"two-{tag}", f"/same/{tag}", methods=["GET"]))
    with pytest.raises(RouteFileError) as raised:
        await run_apply(cli, path)
    assert raised.value.problems == [
        f"one-{tag} paths: route 'two-{tag}' already claims /same/{tag} for an overlapping "
        "method and host"]


async def test_a_file_route_conflicting_with_a_kept_registry_route_is_refused(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    await admin.post("/routes", json=spec(f"kept-{tag}", f"/kept/{tag}", owner="elsewhere"))
    path = write(tmp_path / "clash.yaml", spec(f"clash-{tag}", f"/kept/{tag}"))
    with pytest.raises(RouteFileError) as raised:
        await run_apply(cli, path, dry_run=True)
    assert f"route 'kept-{tag}' already claims" in raised.value.problems[0]


async def test_a_renamed_route_moves_its_paths_in_one_apply(
        cli: Admin, admin: httpx.AsyncClient, tmp_path: Path, tag: str) -> None:
    owner = f"team-{tag}"
    await run_apply(cli, write(tmp_path / "v1.yaml", spec(f"old-{tag}", f"/r/{tag}",
                                                          owner=owner)))
    await run_apply(cli, write(tmp_path / "v2.yaml", spec(f"new-{tag}", f"/r/{tag}",
                                                          owner=owner)))
    now = await names(admin)
    assert f"new-{tag}" in now and f"old-{tag}" not in now


async def test_a_refusal_by_the_server_is_reported_with_its_reason(
        control_app: Starlette, tmp_path: Path, tag: str) -> None:
    async with client_for(control_app, Authorization="Bearer nope") as client:
        with pytest.raises(AdminError, match="GET /table: 401"):
            await run_apply(Admin(client), write(tmp_path / "r.yaml", spec(f"r-{tag}")))


@pytest.mark.parametrize("name", ["suppression.yaml", "auth.yaml"])
def test_the_built_in_routes_files_are_valid_and_take_their_targets_from_the_environment(
        name: str) -> None:
    from gateway.cli.routefile import load

    env = {"SUPPRESSION_LOOKUP_ADDR": "127.0.0.1:1", "SUPPRESSION_LIST_ADDR": "127.0.0.1:2",
           "AUTHSVC_ADDR": "127.0.0.1:3"}
    routes = load(ROOT / "routes" / name, env)
    assert routes
    for route in routes:
        assert set(route.upstream.targets) <= {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
        assert route.owner == name.removesuffix(".yaml")
    defaults = load(ROOT / "routes" / name, {})
    assert all(r.upstream.targets[0].startswith("127.0.0.1:8") for r in defaults)


# --- the command itself, against a real control plane process ---

@pytest.fixture(scope="module")
def control_url(pg_dsn: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": pg_dsn, "PORTCULLIS_ADMIN_TOKEN": TOKEN}
    env.pop("REDIS_URL", None)
    proc = Proc("control", [sys.executable, "-m", "gateway.control", "--port", str(port)],
                workdir / f"control-{port}.log", env=env, cwd=ROOT)
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def cli_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PORTCULLIS_ADMIN_TOKEN": TOKEN, **(env or {})}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=full_env, cwd=ROOT, timeout=60, check=False)


@pytest.fixture
async def live_cleanup(control_url: str, tag: str) -> AsyncIterator[None]:
    yield
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=control_url, headers=headers) as client:
        for route in (await client.get("/routes")).json()["results"]:
            if tag in route["name"]:
                await client.delete(f"/routes/{route['name']}")


@pytest.mark.usefixtures("live_cleanup")
def test_the_cli_applies_gets_and_deletes_against_a_running_control_plane(
        control_url: str, tmp_path: Path, tag: str) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump({"routes": [
        spec(f"live-{tag}", f"/live/{tag}", owner=f"live-{tag}",
             upstream={"targets": ["${LIVE_ADDR:-127.0.0.1:9}"]})]}))

    dry = cli_command("apply", "-f", str(path), "--dry-run", "--url", control_url,
                      env={"LIVE_ADDR": "127.0.0.1:4321"})
    assert dry.returncode == 0, dry.stderr
    assert f"+ live-{tag}" in dry.stdout and "dry run" in dry.stdout

    applied = cli_command("apply", "-f", str(path), "--url", control_url,
                          env={"LIVE_ADDR": "127.0.0.1:4321"})
    assert applied.returncode == 0, applied.stderr
    assert "applied; route table version" in applied.stdout

    table = cli_command("get", "--url", control_url)
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.startswith(f"live-{tag}"))
    assert "127.0.0.1:4321" in line and f"/live/{tag}" in line

    deleted = cli_command("delete", f"live-{tag}", "--url", control_url)
    assert deleted.returncode == 0, deleted.stderr
    again = cli_command("delete", f"live-{tag}", "--url", control_url)
    assert again.returncode == 1
    assert f"no route named 'live-{tag}'" in again.stderr


def test_the_cli_names_an_unset_variable_and_exits_1(control_url: str, tmp_path: Path) -> None:
    path = tmp_path / "unset.yaml"
    path.write_text('routes:\n  - {name: unset, paths: ["/u"], resource: t, '
                    'upstream: {targets: ["${SURELY_UNSET_ADDR}"]}}\n')
    result = cli_command("apply", "-f", str(path), "--url", control_url)
    assert result.returncode == 1
    assert "SURELY_UNSET_ADDR is not set and has no default" in result.stderr
    assert "nothing changed" in result.stderr


def test_the_cli_says_when_the_control_plane_cannot_be_reached(tmp_path: Path) -> None:
    path = write(tmp_path / "r.yaml", spec("unreachable"))
    result = cli_command("apply", "-f", str(path), "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach the control plane" in result.stderr
