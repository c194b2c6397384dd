"""The image and the compose file (``docker compose config`` needs an engine this machine
may not have, so the files are checked as data): services, healthchecks, nobody as root."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
ROOT_USERS = {"root", "0", "0:0"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def instructions(dockerfile: list[str], name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in dockerfile if line.split(None, 1)[0] == name]


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck(dockerfile: list[str]) -> None:
    last_stage = dockerfile[max(i for i, x in enumerate(dockerfile) if x.startswith("FROM")):]
    users = instructions(last_stage, "USER")
    assert users and users[-1] not in ROOT_USERS
    [healthcheck] = instructions(dockerfile, "HEALTHCHECK")
    assert "/health" in healthcheck
    [cmd] = instructions(dockerfile, "CMD")
    assert '"zhuisu", "serve"' in cmd
    env = " ".join(instructions(dockerfile, "ENV"))
    assert "ZHUISU_ADMIN_TOKEN_FILE=/data/admin-token" in env


def test_compose_has_the_store_the_api_and_the_projection_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "api", "projector"}
    api = services["api"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["environment"]["ZHUISU_DATABASE_URL"].startswith("postgresql://")
    assert "8000:8000" in api["ports"]
    projector = services["projector"]
    assert projector["command"] == ["zhuisu", "project", "run"]
    assert "profiles" not in projector  # starts with the others: zhuisu project run exists
    assert projector["environment"]["ZHUISU_DATABASE_URL"] == api["environment"][
        "ZHUISU_DATABASE_URL"]


def test_every_service_has_a_healthcheck_or_says_why_not(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("disable") is True or check.get("test"), name
    assert "/health" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert compose["services"]["projector"]["healthcheck"] == {"disable": True}  # no HTTP


def test_no_service_of_ours_runs_as_root(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            assert str(service.get("user", "10001")) not in ROOT_USERS, name
            assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged", False), name


def compose_command() -> list[str] | None:
    """``docker compose`` (v2), else the standalone ``docker-compose`` that ``.ci/run``
    installs from Debian when the plugin is missing; None when neither is here."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs docker-compose (.ci/run); neither it nor the docker "
                        "compose plugin is on PATH")
        pytest.skip("no docker compose here; the file is checked as data above")
    result = subprocess.run([*command, "-f", str(DOCKER / "compose.yaml"), "config",
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
