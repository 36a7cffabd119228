"""`plan`'s daily-cap forecast on PostgreSQL (its SQL differs by database), with the real
sender then doing what it said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.unit import test_plan_daily_cap as scenarios
from tests.unit.world import World, build_world


@pytest.fixture
def world(database_url: str, tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    """The unit tests' world on PostgreSQL: two sequences, the sender capped."""
    quick = yaml.safe_load((sequences_dir / "quick.yaml").read_text())
    (sequences_dir / "other.yaml").write_text(yaml.safe_dump({**quick, "id": "other"}))
    yield from build_world(
        tmp_path, sequences_dir, database_url=database_url, daily_cap=scenarios.CAP
    )


def test_plan_shows_the_daily_cap_postponing_an_email_and_the_worker_does_so(
    world: World,
) -> None:
    scenarios.test_plan_shows_the_daily_cap_postponing_an_email_and_the_worker_does_so(world)


def test_plan_counts_a_resend_and_shows_nothing_without_a_cap(world: World) -> None:
    scenarios.test_plan_counts_a_resend_and_shows_nothing_without_a_cap(world)


def test_plan_shows_the_cap_on_a_re_planned_step_and_the_worker_does_so(
    world: World, sequences_dir: Path
) -> None:
    scenarios.test_plan_shows_the_cap_on_a_re_planned_step_and_the_worker_does_so(
        world, sequences_dir
    )


def test_one_batch_counts_what_it_already_sends_against_the_cap(world: World) -> None:
    scenarios.test_one_batch_counts_what_it_already_sends_against_the_cap(world)
