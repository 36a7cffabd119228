"""`plan`'s daily-cap forecast on PostgreSQL (its SQL differs by database), with the real
sender then doing what it said."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drip.db import create_db_engine, session_factory
from drip.send.sender import DeliverySender, SendPolicy
from drip.sequences.catalog import SequenceCatalog
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from tests.unit import test_plan_daily_cap as scenarios
from tests.unit.world import QUEUE_LEASE, Clock, FlakyTransport, World


@pytest.fixture
def world(database_url: str, sequences_dir: Path) -> Iterator[World]:
    """The unit tests' world on PostgreSQL: two sequences, the sender capped."""
    quick = yaml.safe_load((sequences_dir / "quick.yaml").read_text())
    (sequences_dir / "other.yaml").write_text(yaml.safe_dump({**quick, "id": "other"}))
    engine = create_db_engine(database_url)
    sessions = session_factory(engine)
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    transport, clock = FlakyTransport(), Clock()
    sender = DeliverySender(
        sessions=sessions,
        catalog=catalog,
        transport=transport,
        links=Links(signer=TokenSigner("k"), base_url="https://drip.test"),
        policy=SendPolicy(
            send_lease=120,
            max_attempts=3,
            min_backoff=1,
            max_backoff=60,
            queue_lease=QUEUE_LEASE,
            daily_cap=scenarios.CAP,
        ),
        clock=clock,
    )
    yield World(sessions, catalog, transport, clock, sender)
    sender.close()
    engine.dispose()


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
