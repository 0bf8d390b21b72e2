"""The Dockerfile builds from files that exist, installs the hash-locked set, runs unprivileged.

No Docker daemon is needed: these checks read the file, so a renamed path or command breaks
the test before it breaks an image build.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from connector.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_every_copied_source_exists() -> None:
    copies = [rest for keyword, rest in _instructions() if keyword == "COPY"]
    assert copies
    for rest in copies:
        if rest.startswith("--from="):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), source


def test_dependencies_come_from_the_hash_locked_set() -> None:
    runs = " ".join(rest for keyword, rest in _instructions() if keyword == "RUN")
    assert "--require-hashes -r requirements/runtime.lock" in runs
    assert "--no-deps ." in runs


def test_runs_as_an_unprivileged_user() -> None:
    users = [rest for keyword, rest in _instructions() if keyword == "USER"]
    assert users[-1] not in ("", "root", "0")


def test_health_check_and_command_use_what_the_service_offers() -> None:
    instructions = dict(_instructions())
    health = json.loads(instructions["HEALTHCHECK"].split("CMD", 1)[1])
    assert health == ["ead-connector", "check"]
    assert build_parser().parse_args(health[1:]).handler.__name__ == "_cmd_check"
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    command = json.loads(instructions["CMD"])
    assert entrypoint == ["ead-connector"]
    args = build_parser().parse_args(command)
    assert args.handler.__name__ == "_cmd_run"
    assert instructions["STOPSIGNAL"] == "SIGTERM"  # graceful shutdown
    assert "CONNECTOR_HTTP__HOST=0.0.0.0" in instructions["ENV"]


def _docker_daemon() -> str | None:
    """Why the image cannot be built here, or None when a Docker daemon answers."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return "no Docker daemon answers (docker info failed)"
    return None


def test_docker_build_succeeds_where_a_daemon_is_available() -> None:
    reason = _docker_daemon()
    if reason is not None:
        pytest.skip(f"docker build not tried: {reason}")
    build = subprocess.run(
        ["docker", "build", "-q", "-t", "ead-connector:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(
        ["docker", "run", "--rm", "ead-connector:test", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.stdout.startswith("ead-connector ")


def test_compose_file_uses_real_commands_and_a_loadable_config() -> None:
    from connector.settings import load_settings

    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    commands = re.findall(r"command: (\[.*\])", compose)
    assert commands
    for command in commands:
        args = build_parser().parse_args(json.loads(command))
        assert args.handler.__name__ in {"_cmd_db_upgrade", "_cmd_run"}
    assert "./config/compose:/etc/ead-connector:ro" in compose
    assert compose.count("connector-") >= 2  # two replicas
    settings = load_settings(
        ROOT / "config" / "compose" / "connector.toml",
        {
            "CONNECTOR_DATABASE_URL": "postgresql+asyncpg://connector:pw@postgres/ead",
            "CONNECTOR_ADMIN_TOKEN": "admin-token",
        },
    )
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.http.host == "0.0.0.0"
