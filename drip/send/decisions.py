"""What the sender does with a claimed delivery: pure decisions, returned as values.

`decide` makes the send-time checks (is the contact still subscribed, the enrollment
still active, the sequence unpaused, the step still in the file and not too late) and
says either "send this step" or how the row ends. `judge` turns the provider's answer
into how the row ends, or a retry, or a wait for the provider's event. Neither touches
the database or the clock: the orchestrator (`drip.send.sender`) applies what they say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from drip.deliveries.transitions import Move
from drip.errors import PermanentSendError, SendError, Throttled, TransientSendError
from drip.models import Contact, Delivery, Enrollment, EnrollmentStatus
from drip.schedule.planner import CAP_WINDOW, cap_opens, fit_window, subscriber_zone
from drip.send.backoff import compute_backoff
from drip.send.transmit import Answer
from drip.sequences.catalog import LoadedSequence, SequenceCatalog
from drip.sequences.conditions import ConditionError, ContactView, Situation, evaluate
from drip.sequences.definition import CONFIRM_STEP, Step
from drip.sequences.delays import format_delay


class Outcome(StrEnum):
    """How one call of the sender ended for a delivery."""

    SENT = "sent"
    PAUSED = "paused"
    NOT_MINE = "not_mine"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"
    POSTPONED = "postponed"


@dataclass(frozen=True)
class Facts:
    """What the send-time checks read about a delivery's enrollment, read under the
    contact's share lock: the contact, the enrollment, whether the sequence is paused,
    the contact's events (name, when), the sequences whose file it downloaded, and when
    its emails of the last day went (for the daily cap)."""

    contact: Contact
    enrollment: Enrollment
    paused: bool
    events: tuple[tuple[str, datetime], ...] = ()
    downloads: frozenset[str] = frozenset()
    recent_sends: tuple[datetime, ...] = ()

    def goal_reached(self, goals: frozenset[str]) -> str | None:
        """The first goal event of the current run, if any."""
        began = self.enrollment.enrolled_at
        return next(
            (
                name
                for name, at in sorted(self.events, key=lambda e: e[1])
                if name in goals and at >= began
            ),
            None,
        )


@dataclass(frozen=True)
class Deliver:
    """Send `step` of `loaded`."""

    loaded: LoadedSequence
    step: Step


@dataclass(frozen=True)
class End:
    """End the row with `move`, setting `values`; `event` is what the log says."""

    outcome: Outcome
    move: Move
    event: str
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryLater:
    """A transient failure: back to `queued`, retried in `delay` seconds; `pause_for` asks
    every worker to hold its sends that long (the provider's rate-limit reset)."""

    delay: float
    attempts: int
    error: str
    pause_for: float | None = None


@dataclass(frozen=True)
class AwaitEvent:
    """The answer was lost after the request went out: wait for the provider's event."""

    error: str


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried."""

    max_attempts: int
    min_backoff: float
    max_backoff: float


#: The window the daily cap counts sends in.
DAY = CAP_WINDOW


def decide(
    delivery: Delivery,
    facts: Facts | None,
    catalog: SequenceCatalog,
    now: datetime,
    *,
    daily_cap: int = 0,
) -> Deliver | End:
    """The send-time checks for one claimed delivery, in order: the contact and enrollment
    may still be mailed, no goal was reached, the sequence is not paused, the step is still
    in the file and not too late, its `when:` holds, and the contact's daily cap allows it."""
    if facts is None:
        return _cancel("send.cancelled", "the enrollment no longer exists")
    confirming = delivery.step_id == CONFIRM_STEP
    stop = stop_reason(facts, catalog, confirming=confirming, resend=delivery.resend)
    if stop is not None:
        return _cancel("send.cancelled", stop)
    on_line = not confirming and not delivery.resend
    goal = facts.goal_reached(catalog.get(delivery.sequence_id).definition.goals)
    if on_line and goal is not None:
        return _cancel("send.goal_reached", f"goal reached: {goal}")
    if not confirming and facts.paused:
        # Paused after the claim: back to the schedule, sent (or skipped) on resume.
        return End(Outcome.PAUSED, Move.PAUSED, "send.paused", {"error": None})
    loaded = catalog.get(delivery.sequence_id)
    sequence = loaded.definition
    step = sequence.confirmation_step() if confirming else sequence.step(delivery.step_id)
    if step is None:
        return End(
            Outcome.CANCELLED,
            Move.STEP_REMOVED,
            "send.step_removed",
            {"error": "the step was removed from the sequence file"},
        )
    late = now - delivery.due_at
    if step.max_lateness is not None and not delivery.resend and late > step.max_lateness:
        late_text = format_delay(timedelta(seconds=int(late.total_seconds())))
        reason = f"{late_text} late, more than max_lateness {format_delay(step.max_lateness)}"
        return End(Outcome.SKIPPED, Move.TOO_LATE, "send.skipped_late", {"error": reason})
    if step.when is not None and not delivery.resend:
        false = _condition_false(step.when, facts, sequence.id, now)
        if false is not None:
            return End(Outcome.SKIPPED, Move.CONDITION_FALSE, "send.condition_false", false)
    opens = cap_opens(facts.recent_sends, daily_cap, now) if on_line else None
    if opens is not None:
        zone = subscriber_zone(facts.contact.timezone, sequence)
        due = fit_window(opens, sequence.window_for(step), zone)
        reason = f"daily cap of {daily_cap} reached; postponed to {due:%Y-%m-%d %H:%M} UTC"
        return End(
            Outcome.POSTPONED, Move.POSTPONED, "send.postponed", {"due_at": due, "error": reason}
        )
    return Deliver(loaded, step)


def _condition_false(
    source: str, facts: Facts, sequence_id: str, now: datetime
) -> dict[str, object] | None:
    """None when the condition holds, else the row's values saying why it does not."""
    contact = facts.contact
    situation = Situation(
        ContactView(contact.first_name, contact.timezone, dict(contact.attributes or {})),
        facts.events,
        sequence_id in facts.downloads,
    )
    try:
        if evaluate(source, situation, now=now):
            return None
    except ConditionError as exc:
        return {"error": f"when: {source!r} could not be read ({exc}): skipped"}
    return {"error": f"when: {source!r} is false: skipped"}


def stop_reason(
    facts: Facts, catalog: SequenceCatalog, *, confirming: bool, resend: bool
) -> str | None:
    """Why nothing may be sent on this enrollment now, or None."""
    contact, enrollment = facts.contact, facts.enrollment
    if contact.email is None:
        return "contact forgotten"
    if confirming:
        # A confirmation answers a new signup, so it may reach an unsubscribed address;
        # never a bounced or complaining one, and only while the request is open.
        if contact.is_hard_suppressed:
            return f"contact suppressed: {contact.status_reason}"
        if enrollment.status is not EnrollmentStatus.PENDING:
            return "no confirmation is pending any more"
        return None
    if not contact.is_subscribed:
        return f"contact {contact.status.value}" + (
            f": {contact.status_reason}" if contact.status_reason else ""
        )
    if resend and enrollment.status is EnrollmentStatus.COMPLETED:
        pass  # a resend to someone who finished the series is what resends are for
    elif enrollment.status is not EnrollmentStatus.ACTIVE:
        return f"enrollment {enrollment.status.value}"
    if enrollment.sequence_id not in catalog:
        return f"sequence {enrollment.sequence_id!r} no longer exists"
    return None


def judge(
    answer: Answer, delivery: Delivery, *, version: str, policy: RetryPolicy, now: datetime
) -> End | RetryLater | AwaitEvent:
    """How the provider's answer ends the row, or whether it is retried or awaited."""
    if isinstance(answer, TransientSendError):
        return _transient(answer, delivery, policy)
    if isinstance(answer, PermanentSendError):
        return End(Outcome.FAILED, Move.REFUSED, "send.refused", {"error": str(answer)})
    if isinstance(answer, SendError):
        # Stay in `sending`: the scheduler settles the row from the provider's `processed`
        # event, or applies DRIP_AMBIGUOUS_POLICY once the wait is over.
        return AwaitEvent(f"outcome unknown, waiting for the provider's event: {answer}")
    return End(
        Outcome.SENT,
        Move.ACCEPTED,
        "send.sent",
        {
            "sent_at": now,
            "provider_message_id": answer,
            "sequence_version": version,
            "error": None,
        },
    )


def _transient(
    exc: TransientSendError, delivery: Delivery, policy: RetryPolicy
) -> End | RetryLater:
    throttled = isinstance(exc, Throttled)
    # A send held back by the throttle never reached the provider: no attempt is spent.
    attempts = delivery.attempts - 1 if throttled else delivery.attempts
    if attempts >= policy.max_attempts:
        return End(
            Outcome.FAILED,
            Move.REFUSED,
            "send.gave_up",
            {"error": f"gave up after {attempts} attempts: {exc}"},
        )
    delay = compute_backoff(
        attempts,
        minimum=policy.min_backoff,
        maximum=policy.max_backoff,
        retry_after=exc.retry_after,
    )
    pause_for = exc.retry_after if exc.retry_after and not throttled else None
    return RetryLater(delay, attempts, str(exc), pause_for)


def _cancel(event: str, reason: str) -> End:
    return End(Outcome.CANCELLED, Move.STOPPED, event, {"error": reason})
