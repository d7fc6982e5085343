"""The Dockerfile and compose file agree with the project (no engine here builds them; these are the checks
that can run without one): every package is copied into the image, the extras it installs exist, the base image
is pinned, the health check calls the ops endpoint's port, and compose waits for healthy PostgreSQL and Redis."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bot.config import OpsConfig

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = (ROOT / "docker-compose.yml").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_image_holds_every_package_and_the_scale_extras() -> None:
    packages = {p.rstrip("*") for p in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    assert copied == packages
    extras = set(re.findall(r"extras\['(\w+)'\]", DOCKERFILE))
    assert extras == {"postgres", "redis"} and extras <= set(PROJECT["project"]["optional-dependencies"])
    # Dependencies are installed from pyproject.toml before any source is copied (their own cached layer).
    assert DOCKERFILE.index("pip install -r requirements.txt") < DOCKERFILE.index("COPY bot ./bot")


def test_the_base_image_is_pinned_and_the_process_is_not_root() -> None:
    image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert image is not None and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image.group(1))
    assert re.search(r"^USER kimibot$", DOCKERFILE, re.MULTILINE)


def test_the_health_check_calls_the_ops_endpoint() -> None:
    port = OpsConfig().port
    assert f"http://127.0.0.1:{port}/healthz" in DOCKERFILE
    assert f"EXPOSE 3000 {port}" in DOCKERFILE
    assert '"--on-config-error", "wait"' in DOCKERFILE  # a config error is said once, not a restart loop


def test_compose_starts_kimibot_after_healthy_postgres_and_redis() -> None:
    depends = COMPOSE[COMPOSE.index("depends_on:"):]
    for service in ("postgres", "redis"):
        assert re.search(rf"{service}:\s+condition: service_healthy", depends), service
        assert re.search(rf"^  {service}:\n(?:    .*\n)*?    healthcheck:", COMPOSE, re.MULTILINE), service
    assert "KIMIBOT_REDIS__URL" in COMPOSE and "/etc/kimibot" in COMPOSE
