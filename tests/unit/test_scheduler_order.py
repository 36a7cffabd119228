"""The scheduler's tick: what is due goes out before the housekeeping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drip.config import AmbiguousPolicy
from drip.dispatch.recovery import Recovery
from drip.dispatch.scheduler import Scheduler, SchedulerPolicy
from tests.unit.world import QUEUE_LEASE, World, build_world


@pytest.fixture
def world(tmp_path: Path, sequences_dir: Path) -> Iterator[World]:
    yield from build_world(tmp_path, sequences_dir)


def test_a_first_tick_enqueues_the_due_rows_before_its_recovery_jobs_run(world: World) -> None:
    world.sender.send(world.signup("a@example.com"))
    world.clock.advance(seconds=1)  # step "second" is due
    seen_by_recovery: list[list[int]] = []

    def probe(_recovery: Recovery) -> dict[str, int]:
        seen_by_recovery.append(list(world.enqueued))
        return {}

    scheduler = Scheduler(
        sessions=world.sessions,
        catalog=world.catalog,
        enqueue=world.enqueued.extend,
        policy=SchedulerPolicy(
            batch_size=10,
            queue_lease=QUEUE_LEASE,
            send_lease=120,
            ambiguous_policy=AmbiguousPolicy.RESEND,
        ),
        clock=world.clock,
        jobs=(("probe", probe),),
    )
    assert scheduler.tick().claimed == 1
    assert seen_by_recovery == [[world.rows()[1].id]]
