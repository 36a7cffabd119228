"""`plan` counts in SQL what the former per-person path worked out one by one (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_plan_aggregation import agree_on_random_people


@pytest.mark.parametrize("seed", range(4))
def test_plan_agrees_with_the_per_person_reference_on_postgresql(
    database_url: str, sequences_dir: Path, seed: int
) -> None:
    agree_on_random_people(database_url, sequences_dir, seed, people=200)
