"""docker-compose.yml, the Dockerfile and .env.example checked without Docker.

Docker does not run on the machines this project is built on, so the stack is validated the way
it can be: every service's command (and health check) names an entry point that exists in the
project, every variable is a setting the service reads, images and ports agree, and the wheel
the Dockerfile installs carries what those commands need.
"""

from __future__ import annotations

import configparser
import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.bin.celery import celery as celery_cli

from config.celery import QUEUES
from config.settings import Settings
from workers.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("migrate", "worker", "beat", "webhooks", "console", "flower", "stub", "cli")
LONG_RUNNING = ("postgres", "redis", "worker", "beat", "webhooks", "console", "flower", "stub")
# Variables read by the images of PostgreSQL (POSTGRES_*) and set by Docker (HOSTNAME).
NOT_SETTINGS = {
    "POSTGRES_USER": "the postgres image",
    "POSTGRES_PASSWORD": "the postgres image",
    "POSTGRES_DB": "the postgres image",
    "HOSTNAME": "Docker, in every container",
}
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _argv(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def _commands(name: str) -> list[list[str]]:
    """The service's command (with its entrypoint) and its health check, as argv lists."""
    service = SERVICES[name]
    found = []
    if "command" in service:
        found.append(_argv(service.get("entrypoint", [])) + _argv(service["command"]))
    test = service.get("healthcheck", {}).get("test")
    if test:
        kind, *rest = test
        found.append(shlex.split(rest[0]) if kind == "CMD-SHELL" else rest)
    return found


def _setting_names() -> set[str]:
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names.add(str(alias).upper() if isinstance(alias, str) else f"INTERACTIONS_{field.upper()}")
    return names


def _check_entry_point(argv: list[str]) -> None:
    program, *args = argv
    if program == "interactions":
        assert args[0] in COMMANDS or args[0] == "--help", argv
        return
    if program == "celery":
        assert args[:2] == ["-A", "workers.app"], argv
        assert importlib.import_module("workers.app").app is not None
        assert args[2] in celery_cli.commands, f"celery has no {args[2]} command"
        if "-Q" in args:
            assert set(args[args.index("-Q") + 1].split(",")) == set(QUEUES)
        return
    if program == "gunicorn":
        config = args[args.index("-c") + 1].removeprefix("python:")
        assert importlib.util.find_spec(config) is not None, config
        target = next(a for a in args if a.endswith("()"))
        module, _, factory = target.removesuffix("()").partition(":")
        assert callable(getattr(importlib.import_module(module), factory)), target
        return
    if program == "python" and args[0] == "-m":
        assert importlib.util.find_spec(args[1]) is not None, args[1]
        assert callable(importlib.import_module(args[1]).main), f"{args[1]} has no main()"
        return
    if program in ("pg_isready", "redis-cli", "redis-server"):
        return  # the tools of the postgres and redis images themselves
    raise AssertionError(f"unknown entry point in {argv}")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_command_names_an_entry_point_of_the_project(name: str) -> None:
    commands = _commands(name)
    assert commands or name in ("postgres",), f"{name} runs nothing of ours"
    for argv in commands:
        _check_entry_point(argv)


def test_interactions_is_the_console_script_the_commands_call() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "interactions = workers.cli:main" in scripts


def test_every_variable_is_a_setting_or_named_as_someone_elses() -> None:
    used = set(_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    for service in SERVICES.values():
        environment = service.get("environment") or {}
        used |= set(environment if isinstance(environment, dict) else [])
    example = _env_example()
    used |= set(example)
    settings = _setting_names()
    unknown = {v for v in used if v not in settings and v not in NOT_SETTINGS}
    assert not unknown, f"not read by the settings: {sorted(unknown)}"
    assert {v for v in used if v.startswith("INTERACTIONS_")} <= settings


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def test_env_example_commits_no_secret_and_env_is_never_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = _env_example()
    secret_fields = {
        f"INTERACTIONS_{name.upper()}"
        for name, info in Settings.model_fields.items()
        if "Secret" in str(info.annotation)
    }
    secrets = (secret_fields | {"POSTGRES_PASSWORD"}) & set(example)
    assert secrets >= {
        "POSTGRES_PASSWORD",
        "INTERACTIONS_NOTIFY_API_KEY",
        "INTERACTIONS_FLOWER_BASIC_AUTH",
        "INTERACTIONS_WEBHOOK_SIGNING_SECRETS",
        "INTERACTIONS_CONSOLE_SECRET_KEY",
    }
    assert {name: example[name] for name in secrets if example[name] not in ("", "[]")} == {}
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    # Every value the example gives is one the settings accept, read from the environment.
    for name, value in example.items():
        if value:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("INTERACTIONS_DATABASE_URL", "postgresql+psycopg2://u:p@postgres/db")
    monkeypatch.setenv("INTERACTIONS_BROKER_URL", "redis://redis:6379/0")
    settings = Settings()
    assert settings.environment == "production" and settings.resolved_log_format == "json"


def test_one_image_for_the_application_and_pinned_images_for_the_rest() -> None:
    images = {SERVICES[name]["image"] for name in APP_SERVICES}
    assert images == {"interaction-service:latest"}
    assert {SERVICES[name]["build"] for name in APP_SERVICES} == {"."}
    assert (ROOT / "Dockerfile").is_file()
    assert SERVICES["postgres"]["image"] == "postgres:15"
    assert SERVICES["redis"]["image"] == "redis:7"
    assert all(SERVICES[name].get("env_file") == ".env" for name in APP_SERVICES)


def test_the_dockerfile_copies_every_package_the_setup_installs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    packages = {
        line.strip().split(".")[0]
        for line in setup["options.packages.find"]["include"].split()
        if line.strip()
    }
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert copied == packages
    assert "python:3.11" in dockerfile and "USER interactions" in dockerfile


def _published(name: str) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1]) for p in SERVICES[name].get("ports", [])}


def test_ports_agree_between_commands_health_checks_and_the_image() -> None:
    exposed = {
        int(p)
        for p in re.findall(r"^EXPOSE (.+)$", (ROOT / "Dockerfile").read_text(), re.M)[0].split()
    }
    webhooks = SERVICES["webhooks"]["command"]
    assert webhooks[webhooks.index("--bind") + 1] == "0.0.0.0:8000"
    console = SERVICES["console"]["command"]
    assert console[console.index("--bind") + 1] == "0.0.0.0:8001"
    flower = SERVICES["flower"]["command"]
    assert flower[flower.index("--port") + 1] == "5555"
    stub = SERVICES["stub"]["command"]
    assert stub[stub.index("--port") + 1] == "6011"
    for name, port in (("webhooks", 8000), ("console", 8001), ("flower", 5555), ("stub", 6011)):
        assert _published(name) == {port}, name
        assert f"127.0.0.1:{port}/" in " ".join(SERVICES[name]["healthcheck"]["test"])
        assert port in exposed
        # Published on loopback only: a reverse proxy with TLS is the way in.
        assert all(str(p).startswith("127.0.0.1:") for p in SERVICES[name]["ports"])
    assert str(Settings().flower_port) == "5555"


def test_health_checks_and_dependencies_with_conditions() -> None:
    for name in LONG_RUNNING:
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert rule["condition"] in (
                "service_healthy",
                "service_completed_successfully",
            ), (name, dependency)
    for name in ("worker", "beat", "webhooks", "console"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["command"] == ["interactions", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["stub"]["profiles"] == ["dev"]


def test_beat_runs_once_and_state_lives_in_volumes() -> None:
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    assert "Beat runs exactly once" in (ROOT / "docker-compose.yml").read_text()
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    schedule = SERVICES["beat"]["command"][-1]
    assert any(schedule.startswith(v.split(":")[1]) for v in SERVICES["beat"]["volumes"])
    for name in ("worker", "webhooks", "cli"):
        directory = SERVICES[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in SERVICES[name]["volumes"]
    volumes = {"postgres-data", "redis-data", "metrics", "beat-data", "archive-data"}
    assert set(COMPOSE["volumes"]) == volumes
    # The janitor (in the workers) writes its default archive directory to a volume.
    archive = Settings(var_dir=Path("/var/lib/interactions/var")).resolved_archive_url
    assert f"archive-data:{archive}" in SERVICES["worker"]["volumes"]


def test_the_wheel_the_image_installs_carries_migrations_templates_and_commands(
    tmp_path: Path,
) -> None:
    # Build from exactly what the Dockerfile copies into its build stage, nothing else.
    source = tmp_path / "src"
    source.mkdir()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *paths, _target = line.split()[1:]
            for path in paths:
                copy = shutil.copytree if (ROOT / path).is_dir() else shutil.copy
                copy(ROOT / path, source / path)  # type: ignore[operator]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheels.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    versions = {p.name for p in (ROOT / "models/migrations/versions").glob("*.py")}
    assert {f"models/migrations/versions/{v}" for v in versions} <= names
    assert "models/migrations/env.py" in names
    assert "config/templates/welcome.email.txt" in names
    for module in ("workers/health.py", "workers/gunicorn_conf.py"):
        assert module in names
    # The stub provider is a development tool: the stub service mounts it from the checkout.
    assert not [n for n in names if n.startswith("devtools/")]
    assert "devtools" in SERVICES["stub"]["volumes"][0].split(":")[0]
    for page in ("templates/console/customer.html", "static/console/console.css"):
        assert f"workers/{page}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "interactions = workers.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
