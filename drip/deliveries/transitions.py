"""The transition table of a delivery: every move a row can make, who makes it and why.

This table is the truth. The conditional UPDATEs in `moves` and `finish` read their
expected and new statuses from it, and `docs/architecture.md` shows it (a test compares
the two). States do not only move forward: a row goes back to `scheduled` when Redis
refuses its message or its sequence is paused mid-claim, back to `queued` for a retry,
and from `failed` or `skipped` to `queued` when an operator retries it (never a row
skipped as `before_import_start`, which was never due). What never
happens is a move out of `sent` or `cancelled`: a sent email stays sent, and a
subscriber's stop stays a stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drip.errors import IllegalMove
from drip.models import PENDING, DeliveryStatus

S = DeliveryStatus


class Move(StrEnum):
    """The name of each transition, as logs, docs and tests call it."""

    PLAN_LATER = "plan_later"
    PLAN_NOW = "plan_now"
    CLAIM_DUE = "claim_due"
    RENEW_LEASE = "renew_lease"
    HAND_BACK = "hand_back"
    CLAIM_SEND = "claim_send"
    ACCEPTED = "accepted"
    SETTLED_FROM_EVENT = "settled_from_event"
    REPORTED_SENT = "reported_sent"
    REFUSED = "refused"
    STOPPED = "stopped"
    STEP_REMOVED = "step_removed"
    TOO_LATE = "too_late"
    CONDITION_FALSE = "condition_false"
    POSTPONED = "postponed"
    PAUSED = "paused"
    RETRY_LATER = "retry_later"
    AWAIT_EVENT = "await_event"
    RESEND_AMBIGUOUS = "resend_ambiguous"
    REVIEW_AMBIGUOUS = "review_ambiguous"
    CANCEL_PENDING = "cancel_pending"
    OPERATOR_RETRY = "operator_retry"
    BEFORE_IMPORT_START = "before_import_start"


@dataclass(frozen=True)
class Transition:
    """One move: the statuses it starts from (none: a new row), the one it ends in, the
    part of drip that makes it, and why."""

    move: Move
    sources: tuple[DeliveryStatus, ...]
    target: DeliveryStatus
    by: str
    why: str


#: Every move a delivery row can make. Nothing outside `drip.deliveries` writes a status.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(Move.PLAN_LATER, (), S.SCHEDULED, "planner", "the next step, due later"),
    Transition(Move.PLAN_NOW, (), S.QUEUED, "planner", "a row due at once, enqueued after commit"),
    Transition(Move.CLAIM_DUE, (S.SCHEDULED,), S.QUEUED, "scheduler", "due: claimed, leased"),
    Transition(Move.RENEW_LEASE, (S.QUEUED,), S.QUEUED, "scheduler", "its message was lost: again"),
    Transition(Move.HAND_BACK, (S.QUEUED,), S.SCHEDULED, "enqueuer", "Redis refused the message"),
    Transition(Move.CLAIM_SEND, (S.QUEUED,), S.SENDING, "worker", "committed before the call"),
    Transition(Move.ACCEPTED, (S.SENDING,), S.SENT, "worker", "the provider accepted it"),
    Transition(
        Move.SETTLED_FROM_EVENT, (S.SENDING,), S.SENT, "scheduler", "a processed event names it"
    ),
    Transition(
        Move.REPORTED_SENT, (S.SENDING,), S.SENT, "worker", "its processed event came first"
    ),
    Transition(Move.REFUSED, (S.SENDING,), S.FAILED, "worker", "refused, unrenderable, or spent"),
    Transition(Move.STOPPED, (S.SENDING,), S.CANCELLED, "worker", "a send-time check said stop"),
    Transition(
        Move.STEP_REMOVED, (S.SENDING,), S.CANCELLED, "worker", "its step left the file: next"
    ),
    Transition(Move.TOO_LATE, (S.SENDING,), S.SKIPPED, "worker", "later than max_lateness"),
    Transition(
        Move.CONDITION_FALSE, (S.SENDING,), S.SKIPPED, "worker", "its when: was false: next"
    ),
    Transition(Move.PAUSED, (S.SENDING,), S.SCHEDULED, "worker", "its sequence was paused"),
    Transition(Move.POSTPONED, (S.SENDING,), S.SCHEDULED, "worker", "the daily cap: a later time"),
    Transition(Move.RETRY_LATER, (S.SENDING,), S.QUEUED, "worker", "a transient failure"),
    Transition(Move.AWAIT_EVENT, (S.SENDING,), S.SENDING, "worker", "the answer was lost"),
    Transition(
        Move.RESEND_AMBIGUOUS, (S.SENDING,), S.QUEUED, "scheduler", "no event in time: resend"
    ),
    Transition(
        Move.REVIEW_AMBIGUOUS, (S.SENDING,), S.FAILED, "scheduler", "no event in time: review"
    ),
    Transition(
        Move.CANCEL_PENDING, (S.SCHEDULED, S.QUEUED), S.CANCELLED, "contacts", "stop or leave"
    ),
    Transition(Move.OPERATOR_RETRY, (S.FAILED, S.SKIPPED), S.QUEUED, "operator", "drip retry"),
    Transition(
        Move.BEFORE_IMPORT_START, (), S.SKIPPED, "import", "passed by an import: never sent"
    ),
)

_BY_MOVE = {t.move: t for t in TRANSITIONS}

#: The reason (`deliveries.error`) of a row made by `before_import_start`: a step before
#: where `drip contacts import` started its subscriber, recorded as passed so the planner
#: never goes back to it. Such a row was never due: `drip retry` never queues it.
BEFORE_IMPORT_START = Move.BEFORE_IMPORT_START.value


def transition(move: Move) -> Transition:
    """The table's entry for `move`."""
    return _BY_MOVE[move]


#: Moves that take a row out of `sending` as one batch finish (`finish.finish_rows`).
FINISHING = frozenset(
    {
        Move.ACCEPTED,
        Move.SETTLED_FROM_EVENT,
        Move.REPORTED_SENT,
        Move.REFUSED,
        Move.STOPPED,
        Move.STEP_REMOVED,
        Move.TOO_LATE,
        Move.CONDITION_FALSE,
        Move.PAUSED,
        Move.POSTPONED,
        Move.REVIEW_AMBIGUOUS,
    }
)

#: Statuses no move leaves: the row's story is over.
FINAL = frozenset(set(S) - {s for t in TRANSITIONS for s in t.sources})

__all__ = [
    "BEFORE_IMPORT_START",
    "FINAL",
    "FINISHING",
    "PENDING",
    "SETTLED",
    "TRANSITIONS",
    "Move",
    "Transition",
]

#: Statuses a row may rest in once no one is working on it.
SETTLED = (S.SENT, S.FAILED, S.SKIPPED, S.CANCELLED)


def check(move: Move, target: DeliveryStatus) -> None:
    """Raise IllegalMove unless `move` ends in `target`."""
    if transition(move).target is not target:
        raise IllegalMove(f"{move} ends in {transition(move).target}, not {target}")
