"""Send deliveries, exactly once, a batch at a time: the state machine of
`drip.models.delivery`, with one statement per batch where it used to be one per email.

1. Claim: `queued -> sending` by one conditional UPDATE for the batch, committed before
   any provider call, so a crash leaves visible `sending` rows for the scheduler to
   resolve. A row someone else claimed first (a duplicate message, a second worker) is
   `NOT_MINE` and left alone.
2. Guard: a second transaction locks the batch's contacts for share (PostgreSQL, in id
   order) and re-checks at send time that each contact is subscribed, the enrollment
   active and the step still in the file. An unsubscribe locks its contact's row for
   update, so it waits for a batch in flight and every later send sees it: nothing leaves
   after its answer.
3. Send the batch's emails (concurrently), then in the same guard transaction move every
   row out of `sending` with one UPDATE (`sent` with the provider's id, or why not), and
   plan each enrollment's next step from the current sequence file with one read and one
   INSERT. A transient failure goes back to `queued` with its backoff; an answer lost
   after the request went out leaves the row in `sending` for the provider's event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from drip.db import is_postgresql, utcnow
from drip.errors import (
    PermanentSendError,
    RenderError,
    SendError,
    Throttled,
    TransientSendError,
)
from drip.metrics import DELIVERIES
from drip.models import (
    Contact,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    SequenceState,
)
from drip.render.renderer import TemplateContact
from drip.schedule.store import FollowUp, lease, plan_many
from drip.send import rows
from drip.send.backoff import compute_backoff
from drip.send.message import OutgoingEmail, build_email
from drip.send.throttle import SendThrottle
from drip.send.transmit import Answer, Transmitter
from drip.send.transports.base import Transport
from drip.sequences.catalog import LoadedSequence, SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP, Step
from drip.sequences.delays import format_delay
from drip.unsubscribe.links import Links

log = structlog.get_logger(__name__)

#: A logger bound to one delivery's ids.
Logger = structlog.typing.FilteringBoundLogger


class Outcome(StrEnum):
    SENT = "sent"
    PAUSED = "paused"
    NOT_MINE = "not_mine"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    FAILED = "failed"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class SendPolicy:
    """Limits of the send path, from settings."""

    send_lease: float
    max_attempts: int
    min_backoff: float
    max_backoff: float
    queue_lease: float
    ambiguous_wait: float = 900.0


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    retry_in: float | None = None
    next_delivery: int | None = None


@dataclass
class _Batch:
    """What one guard transaction decided: the rows to finish, and the plans to make for
    those whose finish is recorded."""

    finishes: dict[int, dict[str, object]] = field(default_factory=dict)
    follow_ups: dict[int, FollowUp] = field(default_factory=dict)
    results: dict[int, SendResult] = field(default_factory=dict)

    def end(
        self, delivery_id: int, result: SendResult, status: DeliveryStatus, **values: object
    ) -> None:
        self.results[delivery_id] = result
        self.finishes[delivery_id] = {"status": status, **values}

    def then_plan(self, delivery_id: int, follow_up: FollowUp) -> None:
        self.follow_ups[delivery_id] = follow_up


class DeliverySender:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: SequenceCatalog,
        transport: Transport,
        links: Links,
        policy: SendPolicy,
        clock: Callable[[], datetime] = utcnow,
        throttle: SendThrottle | None = None,
        concurrency: int = 8,
    ) -> None:
        self.throttle = throttle
        self.sessions = sessions
        self.catalog = catalog
        self.transmitter = Transmitter(transport, throttle=throttle, concurrency=concurrency)
        self.links = links
        self.policy = policy
        self.clock = clock

    def send(self, delivery_id: int) -> SendResult:
        """Run the state machine for one delivery; safe to call any number of times."""
        return self.send_batch([delivery_id])[delivery_id]

    def send_batch(self, delivery_ids: Sequence[int]) -> dict[int, SendResult]:
        """Run the state machine for each delivery; safe to call any number of times."""
        ids = list(dict.fromkeys(delivery_ids))
        with self.sessions() as session, session.begin():
            claimed = rows.claim(session, ids, now=self.clock(), send_lease=self.policy.send_lease)
        results = {delivery_id: SendResult(Outcome.NOT_MINE) for delivery_id in ids}
        if claimed:
            results.update(self._send_claimed(claimed))
        for delivery in claimed:
            outcome = results[delivery.id].outcome.value
            DELIVERIES.labels(delivery.sequence_id, delivery.step_id, outcome).inc()
        return results

    def close(self) -> None:
        self.transmitter.close()

    def _send_claimed(self, claimed: list[Delivery]) -> dict[int, SendResult]:
        batch = _Batch()
        with self.sessions() as session, session.begin():
            facts = self._facts(session, claimed)
            outgoing: list[tuple[Delivery, LoadedSequence, OutgoingEmail, Logger]] = []
            for delivery in claimed:
                bound = _bound(delivery)
                found = facts.get(delivery.enrollment_id)
                if found is None:
                    batch.end(
                        delivery.id,
                        SendResult(Outcome.CANCELLED),
                        DeliveryStatus.CANCELLED,
                        error="the enrollment no longer exists",
                    )
                    continue
                contact, enrollment, paused = found
                checked = self._check(batch, delivery, contact, enrollment, bound, paused=paused)
                if checked is None:
                    continue
                loaded, step = checked
                try:
                    email = self._compose(delivery, contact, loaded, step)
                except RenderError as exc:
                    batch.end(
                        delivery.id,
                        SendResult(Outcome.FAILED),
                        DeliveryStatus.FAILED,
                        error=f"render: {exc}",
                    )
                    bound.warning("send.render_failed", error=str(exc))
                    continue
                outgoing.append((delivery, loaded, email, bound))
            answers = self.transmitter.send_all([email for _, _, email, _ in outgoing])
            for (delivery, loaded, _, bound), answer in zip(outgoing, answers, strict=True):
                contact, enrollment, _ = facts[delivery.enrollment_id]
                self._settle(session, batch, delivery, contact, enrollment, loaded, answer, bound)
            return self._record(session, batch)

    def _facts(
        self, session: Session, claimed: list[Delivery]
    ) -> dict[int, tuple[Contact, Enrollment, bool]]:
        """The send-time facts of every claimed delivery in one round trip: the contact
        (locked for share, in id order), its enrollment, and whether the sequence is paused."""
        query = (
            select(Contact, Enrollment, SequenceState.sequence_id)
            .join(Enrollment, Enrollment.contact_id == Contact.id)
            .outerjoin(SequenceState, SequenceState.sequence_id == Enrollment.sequence_id)
            .where(Enrollment.id.in_({d.enrollment_id for d in claimed}))
            .order_by(Contact.id)
        )
        if is_postgresql(session.get_bind()):  # type: ignore[arg-type]
            query = query.with_for_update(read=True, of=Contact)
        return {
            enrollment.id: (contact, enrollment, paused is not None)
            for contact, enrollment, paused in session.execute(query)
        }

    def _settle(
        self,
        session: Session,
        batch: _Batch,
        delivery: Delivery,
        contact: Contact,
        enrollment: Enrollment,
        loaded: LoadedSequence,
        answer: Answer,
        bound: Logger,
    ) -> None:
        """Decide a delivery's outcome from the provider's answer."""
        if isinstance(answer, TransientSendError):
            self._transient(session, batch, delivery, answer, bound)
        elif isinstance(answer, PermanentSendError):
            batch.end(
                delivery.id, SendResult(Outcome.FAILED), DeliveryStatus.FAILED, error=str(answer)
            )
            bound.warning("send.refused", error=str(answer))
        elif isinstance(answer, SendError):
            # Stay in `sending`: the scheduler settles the row from the provider's
            # `processed` event, or applies DRIP_AMBIGUOUS_POLICY once the wait is over.
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.SENDING)
                .values(
                    lease_until=lease(self.clock(), self.policy.ambiguous_wait),
                    error=f"outcome unknown, waiting for the provider's event: {answer}",
                )
                .execution_options(synchronize_session=False)
            )
            batch.results[delivery.id] = SendResult(Outcome.AMBIGUOUS)
            bound.warning("send.ambiguous", error=str(answer))
        else:
            sent_at = self.clock()
            batch.end(
                delivery.id,
                SendResult(Outcome.SENT),
                DeliveryStatus.SENT,
                sent_at=sent_at,
                provider_message_id=answer,
                sequence_version=loaded.version,
                error=None,
            )
            bound.info("send.sent", provider_message_id=answer)
            if not delivery.resend and delivery.step_id != CONFIRM_STEP:  # else: off the line
                batch.then_plan(
                    delivery.id,
                    FollowUp(enrollment, contact, loaded.definition, delivery.step_id, sent_at),
                )

    def _record(self, session: Session, batch: _Batch) -> dict[int, SendResult]:
        """Finish the batch's rows in one UPDATE, then plan what follows those recorded."""
        recorded = rows.finish(session, batch.finishes, now=self.clock())
        for delivery_id in batch.finishes.keys() - recorded:
            # The lease ran out mid-call and the scheduler took the row over: it plans.
            log.warning("send.lease_lost", delivery_id=delivery_id)
        planned = [(i, f) for i, f in batch.follow_ups.items() if i in recorded]
        following = plan_many(
            session,
            [follow_up for _, follow_up in planned],
            now=self.clock(),
            queue_lease=self.policy.queue_lease,
        )
        for (delivery_id, _), nxt in zip(planned, following, strict=True):
            batch.results[delivery_id] = replace(batch.results[delivery_id], next_delivery=nxt)
        return batch.results

    def _check(
        self,
        batch: _Batch,
        delivery: Delivery,
        contact: Contact,
        enrollment: Enrollment,
        bound: Logger,
        *,
        paused: bool,
    ) -> tuple[LoadedSequence, Step] | None:
        """The send-time checks: what to send, or None when `batch` now ends the delivery."""
        confirming = delivery.step_id == CONFIRM_STEP
        stop = self._stop_reason(contact, enrollment, confirming=confirming, resend=delivery.resend)
        if stop is not None:
            batch.end(
                delivery.id, SendResult(Outcome.CANCELLED), DeliveryStatus.CANCELLED, error=stop
            )
            bound.info("send.cancelled", reason=stop)
            return None
        if not confirming and paused:
            # Paused after the claim: back to the schedule, sent (or skipped) on resume.
            batch.end(delivery.id, SendResult(Outcome.PAUSED), DeliveryStatus.SCHEDULED, error=None)
            bound.info("send.paused")
            return None
        loaded = self.catalog.get(delivery.sequence_id)
        step = (
            loaded.definition.confirmation_step()
            if confirming
            else loaded.definition.step(delivery.step_id)
        )
        if step is None:
            batch.end(
                delivery.id,
                SendResult(Outcome.CANCELLED),
                DeliveryStatus.CANCELLED,
                error="the step was removed from the sequence file",
            )
            bound.info("send.step_removed")
            if not delivery.resend:
                batch.then_plan(delivery.id, FollowUp(enrollment, contact, loaded.definition))
            return None
        now = self.clock()
        late = now - delivery.due_at
        if step.max_lateness is not None and not delivery.resend and late > step.max_lateness:
            late_text = format_delay(timedelta(seconds=int(late.total_seconds())))
            batch.end(
                delivery.id,
                SendResult(Outcome.SKIPPED),
                DeliveryStatus.SKIPPED,
                error=f"{late_text} late, more than max_lateness {format_delay(step.max_lateness)}",
            )
            bound.info("send.skipped_late", late=late_text)
            batch.then_plan(
                delivery.id, FollowUp(enrollment, contact, loaded.definition, step.id, now)
            )
            return None
        return loaded, step

    def _stop_reason(
        self, contact: Contact, enrollment: Enrollment, *, confirming: bool, resend: bool
    ) -> str | None:
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
        if enrollment.sequence_id not in self.catalog:
            return f"sequence {enrollment.sequence_id!r} no longer exists"
        return None

    def _compose(
        self, delivery: Delivery, contact: Contact, loaded: LoadedSequence, step: Step
    ) -> OutgoingEmail:
        sequence = loaded.definition
        assert contact.email is not None  # _stop_reason refuses forgotten contacts
        unsubscribe_url = self.links.unsubscribe_url(contact.public_id)
        rendered = self.catalog.renderer.render(
            sequence,
            step,
            TemplateContact(
                email=contact.email,
                first_name=contact.first_name,
                timezone=contact.timezone,
                attributes=dict(contact.attributes or {}),
            ),
            unsubscribe_url=self.links.footer_unsubscribe_url(unsubscribe_url, sequence.id),
            links=self.links.for_contact(contact.public_id, sequence, step.id),
        )
        return build_email(
            rendered,
            to_email=contact.email,
            to_name=contact.first_name,
            sender=sequence.from_,
            reply_to=sequence.reply_to,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=self.links.unsubscribe_mailto,
            custom_args={"delivery_id": str(delivery.id), "sequence": sequence.id, "step": step.id},
        )

    def _transient(
        self,
        session: Session,
        batch: _Batch,
        delivery: Delivery,
        exc: TransientSendError,
        bound: Logger,
    ) -> None:
        """Back to `queued` with a backoff, or `failed` once the attempts are spent."""
        throttled = isinstance(exc, Throttled)
        if exc.retry_after and self.throttle is not None and not throttled:
            self.throttle.pause(exc.retry_after)
        # A send held back by the throttle never reached the provider: no attempt is spent.
        attempts = delivery.attempts - 1 if throttled else delivery.attempts
        if attempts >= self.policy.max_attempts:
            batch.end(
                delivery.id,
                SendResult(Outcome.FAILED),
                DeliveryStatus.FAILED,
                error=f"gave up after {attempts} attempts: {exc}",
            )
            bound.warning("send.gave_up", attempts=attempts, error=str(exc))
            return
        delay = compute_backoff(
            attempts,
            minimum=self.policy.min_backoff,
            maximum=self.policy.max_backoff,
            retry_after=exc.retry_after,
        )
        now = self.clock()
        # Back to queued, leased past the retry so the scheduler does not enqueue it meanwhile.
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.SENDING)
            .values(
                status=DeliveryStatus.QUEUED,
                error=str(exc),
                updated_at=now,
                lease_until=lease(now, delay + self.policy.queue_lease),
                attempts=attempts,
            )
            .execution_options(synchronize_session=False)
        )
        bound.info("send.retry", attempts=attempts, retry_in=round(delay, 3), error=str(exc))
        batch.results[delivery.id] = SendResult(Outcome.RETRY, retry_in=delay)


def _bound(delivery: Delivery) -> Logger:
    return log.bind(  # type: ignore[no-any-return]
        delivery_id=delivery.id,
        contact_id=delivery.contact_id,
        sequence=delivery.sequence_id,
        step=delivery.step_id,
    )
