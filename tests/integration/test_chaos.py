"""A bounded fault-injection run (the full one is `make chaos`).

It restarts the machine's PostgreSQL and Redis, so it needs root and their server
commands; locally it is skipped without them, under CI it fails.
"""

from __future__ import annotations

import os

import pytest

from drip.testing.chaos import Plan, Run
from drip.testing.fake_sendgrid import Faults
from tests.conftest import require, require_tools, sendgrid_schema_dir

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


#: Seconds the run may take (a passing run takes about 40), and what migrating the test
#: database before it and stopping its processes after it may add: together within
#: pytest's timeout, so a run that hangs fails on its own deadline, with its verdict.
DEADLINE, SETUP_AND_TEARDOWN = 75.0, 40.0


def test_every_delivery_is_sent_once_or_fails_with_a_reason_through_faults(
    pg_template: str, request: pytest.FixtureRequest
) -> None:
    require(os.geteuid() == 0, "root, to restart the machine's PostgreSQL and Redis")
    require_tools("pg_ctlcluster", "redis-server", why="to restart PostgreSQL and Redis")
    # Given 120 subscribers (360 deliveries), a provider that fails about one request in four
    # in every way it can, and one of each process and server fault during the run. (Emails
    # that share a body share a request, so there are only a few dozen requests: the first
    # two are an answer lost after acceptance and a reset, so both happen in every run.)
    plan = Plan(
        contacts=120,
        race_contacts=80,
        worker_kills=1,
        scheduler_kills=1,
        redis_restarts=1,
        postgres_restarts=1,
        deadline=DEADLINE,
        schema=sendgrid_schema_dir() / "mail_send.schema.json",
        faults=Faults(
            rate_limit=0.04,
            rate_limit_reset=0.5,
            error_500=0.04,
            error_503=0.04,
            reset=0.07,
            slow=0.02,
            slow_seconds=1.5,
            accept_then_drop=0.07,
            seed=5,
            first=("accept_then_drop", "reset"),
        ),
    )
    limit = float(request.config.getoption("timeout") or request.config.getini("timeout") or 0)
    assert limit == 0 or limit >= DEADLINE + SETUP_AND_TEARDOWN, f"pytest timeout {limit}s"
    verdict = Run(plan, log=lambda _: None).execute()
    # Then every delivery was accepted by the provider exactly once (or failed with a reason)
    assert (verdict.lost, verdict.duplicated) == (0, 0)
    assert verdict.sent_once + verdict.failed_with_reason == verdict.deliveries == 360
    # And the faults really happened, each recovered from
    assert verdict.faults_from_provider["accept_then_drop"] > 0
    assert verdict.faults_from_provider["reset"] > 0
    assert {f.kind for f in verdict.faults} == {
        "worker killed (SIGKILL)",
        "scheduler killed (SIGKILL)",
        "Redis restarted",
        "PostgreSQL restarted",
    }
    assert all(f.recovered_in is not None for f in verdict.faults)
    # And no email reached the provider after its recipient's unsubscribe was acknowledged
    assert verdict.sent_after_unsubscribe == 0
