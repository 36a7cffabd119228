"""The parts the state-machine model (`test_state_model.py`) drives drip with: a clock the
rules move, a provider whose answer to each call a rule chooses, a broker that is a list,
the sequence files a rule edits, and the ledger of what the provider accepted.

Only the provider and the broker stand in for services; everything else is drip's own
code on a real PostgreSQL database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import count
from pathlib import Path
from typing import Any

import yaml

from drip.errors import AmbiguousSendError, PermanentSendError, TransientSendError
from drip.send.message import OutgoingEmail
from drip.send.stores.sql import SqlGuard, SqlSendStore
from drip.send.transports import MemoryTransport
from drip.sequences.catalog import SequenceCatalog

#: Where the model's clock starts: a Monday noon, UTC.
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

#: The three waits, all different, so a mix-up between them shows.
QUEUE_LEASE = 60.0
SEND_LEASE = 300.0
AMBIGUOUS_WAIT = 900.0

#: The postal address every footer carries.
POSTAL_ADDRESS = "1 Example Street"


@dataclass
class Clock:
    """A clock that moves only when a rule moves it."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward."""
        self.now += timedelta(seconds=seconds)


class Answer(StrEnum):
    """How the provider answers one call."""

    ACCEPT = "accept"
    TRANSIENT = "transient"  # 503: not accepted, retried
    LOST = "lost"  # accepted, but the answer never came back
    PERMANENT = "permanent"  # 400: refused for good
    DIE_BEFORE = "die_before"  # the worker is killed before the request goes out
    DIE_AFTER = "die_after"  # the worker is killed after the provider accepted it


class WorkerKilled(BaseException):
    """The worker process died mid-batch: nothing after this point of the batch runs.

    A BaseException, like the SystemExit of a killed process, so no `except Exception`
    in drip turns it into an answer."""


@dataclass
class Ledger:
    """Every acceptance by the provider, in order, each with the model's step number."""

    accepted: list[tuple[int, int, datetime]] = field(default_factory=list)
    _steps: count[int] = field(default_factory=count)

    def tick(self) -> int:
        """The next step number: orders acceptances against acknowledged unsubscribes."""
        return next(self._steps)

    def accept(self, delivery_id: int, at: datetime) -> None:
        """The provider accepted an email carrying `delivery_id` at `at`."""
        self.accepted.append((self.tick(), delivery_id, at))

    def first_accepted_at(self, delivery_id: int) -> datetime:
        """When the provider first accepted `delivery_id`."""
        return next(at for _, accepted, at in self.accepted if accepted == delivery_id)

    def counts(self) -> Counter[int]:
        """How many times each delivery id was accepted."""
        return Counter(delivery_id for _, delivery_id, _ in self.accepted)


class ScriptedProvider(MemoryTransport):
    """A provider that answers each call as `script` says (then accepts), and records each
    email it accepted in the ledger by its `delivery_id` custom arg."""

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        super().__init__()
        self.ledger = ledger
        self.clock = clock
        self.script: list[Answer] = []

    def send(self, email: OutgoingEmail) -> str:
        """Answer as the script says."""
        answer = self.script.pop(0) if self.script else Answer.ACCEPT
        delivery_id = int(email.custom_args["delivery_id"])
        if answer is Answer.DIE_BEFORE:
            raise WorkerKilled
        if answer is Answer.TRANSIENT:
            raise TransientSendError("503 from the provider")
        if answer is Answer.PERMANENT:
            raise PermanentSendError("400 from the provider: invalid recipient")
        message_id = super().send(email)
        self.ledger.accept(delivery_id, self.clock())
        if answer is Answer.LOST:
            raise AmbiguousSendError("read timeout after the request went out")
        if answer is Answer.DIE_AFTER:
            raise WorkerKilled
        return message_id


class InterleavedStore(SqlSendStore):
    """The sender's SQL store, with a hook that runs once between a batch's claim (already
    committed) and its guard transaction: the moment another actor may act."""

    between: Callable[[], None] | None = None

    @contextmanager
    def guard(self) -> Iterator[SqlGuard]:
        """Run the hook, if any, then open the guard transaction."""
        if self.between is not None:
            between, self.between = self.between, None
            between()
        with super().guard() as guard:
            yield guard


@dataclass
class Broker:
    """Redis as a list of delivery ids, at least once; it refuses the next `refusals`
    enqueues, as a Redis that restarts for a moment does."""

    messages: list[int] = field(default_factory=list)
    refusals: int = 0

    def enqueue(self, delivery_ids: Sequence[int]) -> None:
        """Take the ids, or refuse them like a Redis that is down."""
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("Redis is down")
        self.messages.extend(delivery_ids)

    def take(self, n: int) -> list[int]:
        """The first `n` messages, removed (a worker fetched them)."""
        taken, self.messages[:n] = self.messages[:n], []
        return taken


#: The templates a step may use (the test data's; `welcome` needs the download link).
TEMPLATES = ("quick/welcome.html", "quick/second.html", "quick/third.html")


@dataclass
class StepSpec:
    """One step of a sequence file as the model writes it."""

    id: str
    delay: str
    template: str
    max_lateness: str | None = None
    #: A `when:` condition, one of `CONDITIONS`.
    when: str | None = None

    def as_yaml(self) -> dict[str, Any]:
        """The step as its sequence file has it."""
        entry: dict[str, Any] = {
            "id": self.id,
            "delay": self.delay,
            "subject": f"Step {self.id}",
            "template": self.template,
        }
        if self.max_lateness is not None:
            entry["max_lateness"] = self.max_lateness
        if self.when is not None:
            entry["when"] = self.when
        return entry


@dataclass
class Known:
    """What the model has told drip about one person: the names of the events posted and
    the attributes set. The model's own record, to compute what a condition says."""

    events: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)


#: The conditions a step may carry, each with what the model expects it to say.
CONDITIONS: dict[str, Callable[[Known], bool]] = {
    "has_event('downloaded')": lambda k: "downloaded" in k.events,
    "contact.attributes.get('plan') == 'pro'": lambda k: k.attributes.get("plan") == "pro",
    "not has_event('downloaded') or contact.attributes.get('plan') == 'free'": lambda k: (
        "downloaded" not in k.events or k.attributes.get("plan") == "free"
    ),
}

#: The goal of `quick` and the trigger of `other`; and an event only conditions read.
GOAL = "purchased"
SEEN = "downloaded"


def initial_steps(
    when: tuple[str | None, str | None] = (None, None),
) -> dict[str, list[StepSpec]]:
    """The two sequences a run starts with, so leaving one differs from unsubscribing:
    `quick` (three steps: the second may be skipped as too late, the third is due as soon
    as the second is sent; the `when` conditions of the second and third) and `other` (one
    step: a signup completes with one send)."""
    return {
        "quick": [
            StepSpec("welcome", "0s", TEMPLATES[0]),
            StepSpec("second", "1h", TEMPLATES[1], max_lateness="6h", when=when[0]),
            StepSpec("third", "0s", TEMPLATES[2], when=when[1]),
        ],
        "other": [StepSpec("hello", "0s", TEMPLATES[1])],
    }


class SequenceFiles:
    """A private sequences folder: the test data's templates, and sequence files the model
    writes (and rewrites on an edit). `quick` ends on the goal event; `other` starts on it,
    with the `reentry:` a run chooses (`react`)."""

    def __init__(self, folder: Path, source: Path) -> None:
        self.folder = folder
        self.steps = initial_steps()
        self.extras: dict[str, dict[str, Any]] = {
            "quick": {"exit": [{"event": GOAL}]},
            "other": {"trigger": {"event": GOAL}},
        }
        self._ids = count(1)
        (folder / "templates").mkdir(parents=True)
        for path in (source / "templates").rglob("*"):
            if path.is_file():
                target = folder / "templates" / path.relative_to(source / "templates")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
        (folder / "files").mkdir()
        (folder / "files" / "guide.txt").write_bytes((source / "files" / "guide.txt").read_bytes())
        for sequence_id in self.steps:
            self._write(sequence_id)

    def react(self, reentry: str | dict[str, str], when: tuple[str | None, str | None]) -> None:
        """Rewrite the files with `other`'s `reentry:` and the conditions of `quick`'s
        second and third steps."""
        self.extras["other"]["reentry"] = reentry
        self.steps = initial_steps(when)
        for sequence_id in self.steps:
            self._write(sequence_id)

    def new_step_id(self) -> str:
        """A step id no file has used yet."""
        return f"n{next(self._ids)}"

    def edit(self, sequence_id: str, steps: list[StepSpec]) -> None:
        """Write `sequence_id` with `steps`."""
        self.steps[sequence_id] = steps
        self._write(sequence_id)

    def load(self) -> SequenceCatalog:
        """The catalog of the files as they are now, checked as the service checks them."""
        return SequenceCatalog.load(self.folder, postal_address=POSTAL_ADDRESS)

    def _write(self, sequence_id: str) -> None:
        document = {
            "id": sequence_id,
            "name": f"The {sequence_id} sequence",
            "from": {"email": "hello@example.com", "name": "Test Sender"},
            "timezone": "UTC",
            "layout": "layouts/base.html",
            "download": {"file": "files/guide.txt", "filename": "Guide.txt"},
            **self.extras[sequence_id],
            "steps": [step.as_yaml() for step in self.steps[sequence_id]],
        }
        (self.folder / f"{sequence_id}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
