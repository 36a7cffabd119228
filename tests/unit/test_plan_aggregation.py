"""`plan` counts in SQL what the former per-person path worked out one by one (SQLite)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drip.db import create_db_engine, session_factory
from drip.migrate import upgrade_database
from drip.schedule.impact import plan_changes
from drip.sequences.definition import CONFIRM_STEP
from tests.plan_reference import (
    NOW,
    ORIGINAL,
    outlooks_of,
    reference_outlooks,
    seed_people,
    write_edited_files,
)


def agree_on_random_people(url: str, sequences_dir: Path, seed: int, *, people: int) -> None:
    """Seed random people, edit the file at random, and compare plan with the reference."""
    rng = random.Random(seed)
    catalog = write_edited_files(sequences_dir, rng)
    engine = create_db_engine(url)
    try:
        with session_factory(engine)() as session:
            seed_people(session, rng, people=people)
            impacts = {i.sequence_id: i for i in plan_changes(session, catalog, now=NOW)}
            assert set(impacts) == {"quick", "gone"}
            for sequence_id, impact in impacts.items():
                expected = reference_outlooks(session, catalog, sequence_id, NOW)
                assert outlooks_of(impact) == expected, (seed, sequence_id)
                assert impact.active == sum(n for n, _, _ in expected.values())
            in_file = {step.id for step in catalog.get("quick").definition.steps}
            assert set(impacts["quick"].removed_steps) <= {*ORIGINAL, CONFIRM_STEP} - in_file
    finally:
        engine.dispose()


@pytest.mark.parametrize("seed", range(8))
def test_plan_agrees_with_the_per_person_reference_on_sqlite(
    tmp_path: Path, sequences_dir: Path, seed: int
) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade_database(url)
    agree_on_random_people(url, sequences_dir, seed, people=150)
