"""docker-compose.yml runs exactly the production layout, checked with `docker-compose config`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO, require_tools


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    require_tools("docker-compose", why="Debian package docker-compose")
    tool = shutil.which("docker-compose")
    assert tool is not None
    env = {
        **os.environ,
        "DRIP_SENDGRID_API_KEY": "SG.x",
        "DRIP_SENDGRID_WEBHOOK_PUBLIC_KEY": "k",
        "DRIP_SECRET_KEY": "s",
        "DRIP_POSTAL_ADDRESS": "a",
    }
    result = subprocess.run(
        [tool, "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, object] = yaml.safe_load(result.stdout)
    return config


def test_compose_runs_postgres_redis_a_migration_and_each_process(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "pgbouncer",
        "redis",
        "migrate",
        "api",
        "scheduler",
        "worker",
    }
    assert services["migrate"]["command"] == ["drip", "db", "upgrade"]
    assert services["api"]["command"][:2] == ["drip", "api"]
    assert services["scheduler"]["command"] == ["drip", "scheduler"]
    assert services["worker"]["command"][:2] == ["drip", "worker"]


def test_every_long_running_service_has_a_healthcheck_and_waits_for_its_dependencies(
    compose: dict,  # type: ignore[type-arg]
) -> None:
    services = compose["services"]
    for name in ("postgres", "pgbouncer", "redis", "api", "scheduler", "worker"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("api", "scheduler", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["pgbouncer"]["condition"] == "service_healthy"
        assert services[name]["environment"]["DRIP_DATABASE_URL"].startswith("postgresql://")


def test_the_services_reach_postgres_through_pgbouncer_in_transaction_pooling(
    compose: dict,  # type: ignore[type-arg]
) -> None:
    services = compose["services"]
    bouncer = services["pgbouncer"]["environment"]
    assert bouncer["POOL_MODE"] == "transaction"
    assert bouncer["DB_HOST"] == "postgres"
    for name in ("api", "scheduler", "worker"):
        environment = services[name]["environment"]
        assert "@pgbouncer:6432/" in environment["DRIP_DATABASE_URL"], name
        assert environment["DRIP_DATABASE_POOLING"] == "transaction", name
    # Migrations run on PostgreSQL directly: one long session, nothing to pool.
    migrate = services["migrate"]["environment"]
    assert "@postgres:5432/" in migrate["DRIP_DATABASE_URL"]
    assert migrate["DRIP_DATABASE_POOLING"] == "session"


def test_compose_refuses_to_start_without_the_production_secrets() -> None:
    require_tools("docker-compose", why="Debian package docker-compose")
    tool = shutil.which("docker-compose")
    assert tool is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    result = subprocess.run(
        [tool, "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DRIP_SENDGRID_API_KEY" in result.stderr
