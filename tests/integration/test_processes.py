"""The service's real processes: a scheduler killed and restarted, `drip run` on a bad file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
from sqlalchemy import func, select, update

from drip.config import Settings
from drip.db import transaction, utcnow
from drip.models import Delivery, DeliveryStatus
from drip.runtime import Runtime
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid
from tests.conftest import wait_for
from tests.integration.conftest import drain


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"DRIP_{name.upper()}"] = str(value.value if hasattr(value, "value") else value)
    return env


@contextmanager
def drip_process(settings: Settings, *args: str, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "drip", *args],
        env=settings_env(settings),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def count_status(runtime: Runtime, *statuses: DeliveryStatus) -> int:
    with runtime.sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status.in_(statuses))
            )
            or 0
        )


def test_a_scheduler_killed_and_restarted_loses_nothing(
    runtime: Runtime, worker: dramatiq.Worker, fake_sendgrid: FakeSendGrid, tmp_path: Path
) -> None:
    # Given 40 subscribers whose first email is due, and no scheduler running yet
    with transaction(runtime.sessions) as session:
        for n in range(40):
            enroll_contact(
                session,
                SignupRequest(email=f"s{n}@example.com"),
                catalog=runtime.catalog,
                default_sequence="quick",
                now=utcnow(),
                queue_lease=30,
            )
        session.execute(update(Delivery).values(status=DeliveryStatus.SCHEDULED, lease_until=None))
    small_batches = runtime.settings.model_copy(
        update={"scheduler_batch_size": 4, "queue_lease": 2.0}
    )

    # When a scheduler process starts, is killed with SIGKILL mid-run, and another starts later
    with drip_process(small_batches, "scheduler", cwd=tmp_path) as first:
        wait_for(lambda: len(fake_sendgrid.accepted) >= 10, timeout=30, what="the first sends")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert len(fake_sendgrid.accepted) < 120
    with drip_process(small_batches, "scheduler", cwd=tmp_path):
        wait_for(
            lambda: count_status(runtime, DeliveryStatus.SENT) == 120,
            timeout=60,
            what="all 120 emails",
        )
        drain(runtime, worker)

    # Then every subscriber got each of the three emails exactly once
    per_delivery = Counter(a.delivery_id for a in fake_sendgrid.accepted)
    assert len(per_delivery) == 120
    assert set(per_delivery.values()) == {1}
    per_person = Counter(
        a.payload["personalizations"][0]["to"][0]["email"] for a in fake_sendgrid.accepted
    )
    assert set(per_person.values()) == {3}


def test_drip_run_refuses_to_start_on_a_bad_sequence_file(
    settings: Settings, sequences_dir: Path, tmp_path: Path
) -> None:
    # Given a marketer's edit with a malformed delay on the second step
    path = sequences_dir / "quick.yaml"
    path.write_text(path.read_text().replace("delay: 1s", "delay: soon", 1))
    # When the service starts
    result = subprocess.run(
        [sys.executable, "-m", "drip", "run", "--port", "0"],
        env=settings_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it refuses, naming file, line and field
    assert result.returncode == 1
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "delay: soon" in text
    )
    assert f"{path}:{line}: steps[1].delay: 'soon' is not a delay" in result.stderr
