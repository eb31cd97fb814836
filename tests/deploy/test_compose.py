"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

What can go wrong in a compose file without anyone noticing until `docker
compose up` on a user's machine: an unpinned image, a dependency on a service
that does not exist (or a cycle), a one-shot that the worker does not wait for,
a setting of the worker or the API that the code never reads, a database URL
pointing at the wrong host or driver, a search attribute missing. (Who may reach
what, and who holds which key, is tests/deploy/test_trust.py.) The Dockerfile: running as root, an
install that differs from the README's, a COPY of a file that is not there.
One test runs a service's script for real: the one that creates the workers'
database role, through sh and psql on the test PostgreSQL.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
import uuid
from fnmatch import fnmatch
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
import typer.main
from sqlalchemy.engine import make_url

from pim.cli.main import app as cli_app
from pim.runtime.settings import PimSettings
from pim.runtime.temporal import SEARCH_ATTRIBUTE_NAMES
from tests import postgres
from tests.deploy.compose import (
    PIM_VARIABLES,
    ROOT,
    SERVICES,
    depends_on,
    environment,
    interpolate,
    pim_settings,
    published_ports,
    script,
    seconds,
)

ONE_SHOT = {"temporal-admin-tools", "temporal-create-namespace", "pim-app-role", "pim-migrate"}
LONG_RUNNING = {"postgresql", "temporal", "pim-worker", "pim-api"}
EXPECTED = ONE_SHOT | LONG_RUNNING | {"temporal-ui"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
APP_ROLE = "pim_app"  # the database role the workers and the API connect as (not the tables' owner)
PIM_SERVICES = ["pim-api", "pim-migrate", "pim-worker"]


# --- the compose file -----------------------------------------------------------------------------


def test_the_services_of_the_deployment_are_there():
    assert EXPECTED <= set(SERVICES), f"missing: {sorted(EXPECTED - set(SERVICES))}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_has_a_pinned_image_or_a_build(service):
    spec = SERVICES[service]
    assert "image" in spec or "build" in spec, f"{service}: neither image nor build"
    if "build" in spec:
        build = spec["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (context / dockerfile).is_file(), f"{service}: no {dockerfile} in {context}"
    if "image" in spec:
        image = spec["image"]
        name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        assert tag, f"{service}: image {image!r} has no tag"
        assert tag != "latest", f"{service}: image {image!r} is not pinned"


def test_temporal_images_carry_one_version():
    tag = SERVICES["temporal"]["image"].rsplit(":", 1)[1]
    for tools in ("temporal-admin-tools", "temporal-create-namespace"):
        assert SERVICES[tools]["image"] == f"temporalio/admin-tools:{tag}", (
            f"{tools}: schema tools and CLI must match the server ({tag})"
        )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dependencies_name_services_with_a_valid_condition(service):
    for name, condition in depends_on(service).items():
        assert name in SERVICES, f"{service} depends on unknown service {name!r}"
        assert name != service, f"{service} depends on itself"
        assert condition in CONDITIONS, f"{service} -> {name}: unknown condition {condition!r}"


def test_the_startup_graph_has_no_cycle():
    try:
        order = list(TopologicalSorter({name: set(depends_on(name)) for name in SERVICES}).static_order())
    except CycleError as error:
        pytest.fail(f"depends_on has a cycle: {error.args[1]}")
    assert (
        order.index("postgresql")
        < order.index("temporal-admin-tools")
        < order.index("temporal")
        < order.index("temporal-create-namespace")
        < order.index("pim-worker")
    )
    assert order.index("pim-migrate") < order.index("pim-worker")
    for before in ("temporal-create-namespace", "pim-migrate"):
        assert order.index(before) < order.index("pim-api")


def test_one_shot_services_are_awaited_until_they_complete():
    dependents = {name: [s for s in SERVICES if name in depends_on(s)] for name in ONE_SHOT}
    for name, waiting in dependents.items():
        assert waiting, f"{name} is a one-shot nobody waits for"
        for service in waiting:
            assert depends_on(service)[name] == "service_completed_successfully", (
                f"{service} must wait for {name} to complete successfully, not just start"
            )
        assert SERVICES[name].get("restart", "no") not in ("always", "unless-stopped"), (
            f"{name}: a one-shot must not be restarted after it succeeded"
        )


@pytest.mark.parametrize("service", sorted(LONG_RUNNING))
def test_long_running_services_have_health_checks(service):
    check = SERVICES[service].get("healthcheck") or {}
    assert check.get("test") and not check.get("disable"), f"{service}: no health check"
    for dependent in SERVICES:
        condition = depends_on(dependent).get(service)
        assert condition in (None, "service_healthy"), (
            f"{dependent} waits for {service} only to start ({condition}), not to be healthy"
        )


def test_only_the_api_is_published():
    published = {name: set(published_ports(name)) for name in SERVICES if published_ports(name)}
    assert published == {"pim-api": {7280}}


@pytest.mark.parametrize("service", PIM_SERVICES)
def test_pim_services_set_only_settings_the_code_reads(service):
    env = pim_settings(service)  # PIM_X_FILE counts as PIM_X: deploy/pim-entrypoint.sh reads it
    unknown = set(env) - PIM_VARIABLES
    assert not unknown, f"{service}: {sorted(unknown)} are not fields of pim.runtime.settings.PimSettings"
    # and every value given in place is one PimSettings accepts (e.g. PIM_LOG_FORMAT is console or json)
    in_place = {key: value for key, value in environment(service).items() if not key.endswith("_FILE")}
    PimSettings(**{key.removeprefix("PIM_").lower(): value for key, value in in_place.items()})


@pytest.mark.parametrize("service", ["pim-worker", "pim-api"])
def test_the_worker_and_the_api_reach_temporal_and_the_store(service):
    env = environment(service)
    for needed in ("PIM_TEMPORAL_ADDRESS", "PIM_DATABASE_URL", "PIM_TASK_QUEUE", "PIM_NAMESPACE"):
        assert env.get(needed), f"{service}: {needed} is not set"

    host, _, port = env["PIM_TEMPORAL_ADDRESS"].rpartition(":")
    assert host == "temporal" and port == "7233", env["PIM_TEMPORAL_ADDRESS"]

    url = make_url(env["PIM_DATABASE_URL"])
    postgres = environment("postgresql")
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "postgresql" and (url.port or 5432) == 5432
    assert url.database == postgres["POSTGRES_DB"]
    # Not as the owner of the tables: as the application's role, created by pim-app-role.
    role = environment("pim-app-role")
    assert url.username != postgres["POSTGRES_USER"]
    assert (url.username, url.password) == (APP_ROLE, role["APP_PASSWORD"])

    namespace = environment("temporal-create-namespace")
    assert namespace["TEMPORAL_NAMESPACE"] == env["PIM_NAMESPACE"], "the worker polls a namespace nobody created"
    assert namespace["TEMPORAL_ADDRESS"] == env["PIM_TEMPORAL_ADDRESS"]
    assert environment("temporal-ui")["TEMPORAL_ADDRESS"] == env["PIM_TEMPORAL_ADDRESS"]


def test_workers_scale_and_drain():
    worker = SERVICES["pim-worker"]
    assert worker["command"] == ["worker"]
    assert "container_name" not in worker, "a fixed container name prevents more than one worker"
    assert worker.get("deploy", {}).get("replicas", 1) >= 2
    assert seconds(worker.get("stop_grace_period", "10s")) > 30, "SIGKILL would cut the 30 s drain short"
    assert worker["healthcheck"]["test"][-2:] == ["pim", "health"]


def test_migration_runs_on_the_workers_database_before_them():
    migrate = SERVICES["pim-migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate.get("build") == SERVICES["pim-worker"].get("build")
    owner = make_url(environment("pim-migrate")["PIM_DATABASE_URL"])
    app = make_url(environment("pim-worker")["PIM_DATABASE_URL"])
    assert (owner.drivername, owner.host, owner.port, owner.database) == (app.drivername, app.host, app.port, app.database)
    # Migrations run as the owner of the tables, and then grant the workers' role.
    postgres = environment("postgresql")
    assert (owner.username, owner.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert environment("pim-migrate")["PIM_DATABASE_APP_ROLE"] == app.username == APP_ROLE


# --- the application's database role --------------------------------------------------------------


def test_the_app_role_exists_before_the_migration_grants_it():
    assert depends_on("pim-app-role") == {"postgresql": "service_healthy"}
    assert depends_on("pim-migrate")["pim-app-role"] == "service_completed_successfully"
    role = environment("pim-app-role")
    postgres = environment("postgresql")
    assert (role["PGHOST"], role["PGUSER"], role["PGPASSWORD"], role["PGDATABASE"]) == (
        "postgresql",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert SERVICES["pim-app-role"]["image"] == SERVICES["postgresql"]["image"], "psql of the server's own version"


def test_the_app_role_is_created_without_privileges_of_its_own():
    setup = script("pim-app-role")
    assert f"CREATE ROLE {APP_ROLE} LOGIN" in setup and f"rolname = '{APP_ROLE}'" in setup, "created only when missing"
    (alter,) = [line for line in setup.splitlines() if line.strip().startswith(f"ALTER ROLE {APP_ROLE}")]
    for attribute in ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "PASSWORD :'password'"):
        assert attribute in alter
    assert '-v password="$APP_PASSWORD"' in interpolate(setup) and "ON_ERROR_STOP=1" in setup
    # No grant here, none to the owner's role: the privileges come from `pim db upgrade`.
    assert "GRANT" not in setup.upper()
    assert "PIM_DATABASE_APP_ROLE" in PIM_VARIABLES


def test_the_app_role_script_runs_twice_on_a_real_server():
    """The pim-app-role script itself, through sh and psql, on the test PostgreSQL
    (under a role name of its own): it creates the role, and runs again harmlessly."""
    if shutil.which("psql") is None:
        pytest.skip("no psql")
    admin = make_url(postgres.admin_url())
    role = f"pim_app_{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "PGHOST": admin.host or "127.0.0.1",
        "PGPORT": str(admin.port or 5432),
        "PGUSER": admin.username or "postgres",
        "PGPASSWORD": admin.password or "",
        "PGDATABASE": admin.database or "postgres",
        "APP_PASSWORD": "it's s3cret",
    }
    setup = interpolate(script("pim-app-role")).replace(APP_ROLE, role)
    alive = subprocess.run(["psql", "-X", "-c", "SELECT 1"], env=env, capture_output=True, timeout=30)
    if alive.returncode != 0:
        if postgres.required():
            pytest.fail(f"PostgreSQL at {postgres.admin_url()} cannot be used: {alive.stderr!r}")
        pytest.skip(postgres.HOW_TO)
    try:
        for _ in range(2):
            done = subprocess.run(["/bin/sh", "-ec", setup], env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        query = f"SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = '{role}'"
        found = subprocess.run(["psql", "-X", "-tA", "-c", query], env=env, capture_output=True, text=True, timeout=30)
        assert found.stdout.strip() == "t|f|f|f"
    finally:
        subprocess.run(["psql", "-X", "-c", f"DROP ROLE IF EXISTS {role}"], env=env, capture_output=True, timeout=30)


def test_temporal_runs_on_postgresql_with_its_schema_set_up_first():
    server = environment("temporal")
    assert server["DB"] == "postgres12" and server["POSTGRES_SEEDS"] == "postgresql"
    assert (server["POSTGRES_USER"], server["POSTGRES_PWD"]) == (
        environment("postgresql")["POSTGRES_USER"],
        environment("postgresql")["POSTGRES_PASSWORD"],
    )
    tools = environment("temporal-admin-tools")
    assert tools["SQL_PLUGIN"] == "postgres12" and tools["SQL_HOST"] == "postgresql"
    setup = script("temporal-admin-tools")
    assert "update-schema" in setup and "setup-schema" in setup
    for database, schema in (("temporal", "temporal"), ("temporal_visibility", "visibility")):
        assert re.search(rf"^\s*schema {database} {schema}\s*$", setup, re.M), f"no schema setup for {database}"


def test_the_search_attributes_are_created_as_keywords():
    text = script("temporal-create-namespace")
    created = dict(re.findall(r"^\s*search_attribute\s+(\w+)\s+(\w+)\s*$", text, re.M))
    assert created == {name: "Keyword" for name in SEARCH_ATTRIBUTE_NAMES}
    assert "temporal operator search-attribute create" in text
    assert "temporal operator namespace create" in text


# --- the Dockerfile -------------------------------------------------------------------------------


def dockerfile() -> list[tuple[int, str, str]]:
    """(stage, INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, stage, pending = [], -1, ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append((stage, keyword.upper(), " ".join(arguments.split())))
    return instructions


DOCKERFILE = dockerfile()
FINAL_STAGE = max(stage for stage, _, _ in DOCKERFILE)


def final(keyword: str) -> list[str]:
    return [args for stage, kw, args in DOCKERFILE if kw == keyword and stage == FINAL_STAGE]


def install_commands() -> list[str]:
    return [m.strip() for _, kw, args in DOCKERFILE if kw == "RUN" for m in re.findall(r"pip install[^&;|]*", args)]


def test_the_image_is_built_in_two_stages_on_python_slim():
    bases = [args.split()[0] for _, kw, args in DOCKERFILE if kw == "FROM"]
    assert len(bases) >= 2 and all(base == "python:3.11-slim" for base in bases), bases
    assert any(args.startswith("--from=") for args in final("COPY")), "the runtime stage copies nothing built"


def test_the_image_runs_as_a_non_root_user():
    users = final("USER")
    assert users, "no USER in the final stage: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"


def test_the_package_is_installed_as_in_production():
    assert install_commands() == ["pip install ."], (
        f"the image must install the package with exactly `pip install .` (no -e, no [dev]): {install_commands()}"
    )


def test_the_readme_installs_the_package_the_same_way():
    command = install_commands()[0]
    readme = (ROOT / "README.md").read_text()
    shown = re.search(rf"(^|[\s$`]){re.escape(command)}($|[\s`])", readme, re.M) is not None
    assert shown, (
        f"README.md does not show `{command}`, which the Dockerfile runs: the README's Production "
        f"section must install the package the same way the image does"
    )


def test_the_entrypoint_is_pim_and_the_default_command_the_worker():
    assert json.loads(final("ENTRYPOINT")[-1]) == ["pim"]
    assert json.loads(final("CMD")[-1]) == ["worker"]


def test_the_health_check_is_pim_health():
    checks = final("HEALTHCHECK")
    assert checks, "no HEALTHCHECK in the final stage"
    command = checks[-1].split(" CMD ", 1)[1]
    argv = json.loads(command) if command.startswith("[") else shlex.split(command)
    assert argv[:2] == ["pim", "health"], argv


def test_the_commands_the_image_runs_exist():
    commands = typer.main.get_command(cli_app).commands
    for service in ("pim-worker", "pim-api", "pim-migrate"):
        name = SERVICES[service]["command"][0]
        assert name in commands, f"{service} runs `pim {name}`, which is not a command"
    assert "upgrade" in commands["db"].commands
    assert "health" in commands, (
        "`pim health` is not a command (yet): the image's HEALTHCHECK and the "
        "pim-worker health check in docker-compose.yml run it"
    )


def test_every_copied_file_is_in_the_build_context():
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    copied = []
    for _, kw, args in DOCKERFILE:
        if kw in ("COPY", "ADD") and "--from=" not in args:
            copied += [part for part in args.split()[:-1] if not part.startswith("--")]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not any(fnmatch(source.rstrip("/"), pattern) for pattern in ignored), f"COPY {source}: excluded by .dockerignore"

    # everything the wheel is built from: the packages pyproject.toml includes, and its readme
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied_names = {Path(source).name for source in copied}
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied_names


def test_the_build_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for excluded in (".venv", ".pim", ".git", "tests", "bench", "deploy"):
        assert excluded in ignored, f".dockerignore does not exclude {excluded}"
    assert any("__pycache__" in pattern for pattern in ignored)


def test_the_workers_link_notifications_to_the_portal_the_api_serves():
    """The workers send the notifications; the API serves the pages they link to: one URL."""
    raw = {service: SERVICES[service]["environment"].get("PIM_PORTAL_URL") for service in ("pim-worker", "pim-api")}
    assert raw["pim-worker"] is not None and raw["pim-worker"] == raw["pim-api"], raw
