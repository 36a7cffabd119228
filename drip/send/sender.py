"""Send one delivery, exactly once: the state machine of `drip.models.delivery`.

1. Claim: `queued -> sending` by a conditional UPDATE, committed before the provider call
   so a crash leaves a visible `sending` row for the scheduler to resolve. Whoever loses
   the race (a duplicate message, a second worker) gets `NOT_MINE` and does nothing.
2. Guard: a second transaction locks the contact row for share (PostgreSQL) and
   re-checks at send time that the contact is subscribed, the enrollment active and the
   step still in the file. An unsubscribe locks the same row for update, so it waits for
   a send in flight and every later send sees it: nothing leaves after its answer.
3. Send, then in the same guard transaction: `sending -> sent` with the provider's id,
   and the next step planned from the current sequence file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from drip.db import is_postgresql, utcnow
from drip.errors import (
    AmbiguousSendError,
    PermanentSendError,
    RenderError,
    Throttled,
    TransientSendError,
)
from drip.metrics import DELIVERIES, PROVIDER_LATENCY
from drip.models import (
    Contact,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentStatus,
    SequenceState,
)
from drip.render.renderer import TemplateContact
from drip.schedule.store import lease, plan_following
from drip.send.backoff import compute_backoff
from drip.send.message import OutgoingEmail, build_email
from drip.send.throttle import SendThrottle
from drip.send.transports.base import Transport
from drip.sequences.catalog import LoadedSequence, SequenceCatalog
from drip.sequences.definition import CONFIRM_STEP, Step
from drip.sequences.delays import format_delay
from drip.unsubscribe.links import Links

log = structlog.get_logger(__name__)


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
    ) -> None:
        self.throttle = throttle
        self.sessions = sessions
        self.catalog = catalog
        self.transport = transport
        self.links = links
        self.policy = policy
        self.clock = clock

    def send(self, delivery_id: int) -> SendResult:
        """Run the state machine for one delivery; safe to call any number of times."""
        delivery = self._claim(delivery_id)
        if delivery is None:
            return SendResult(Outcome.NOT_MINE)
        result = self._send_claimed(delivery)
        DELIVERIES.labels(delivery.sequence_id, delivery.step_id, result.outcome.value).inc()
        return result

    def _send_claimed(self, delivery: Delivery) -> SendResult:
        delivery_id = delivery.id
        bound = log.bind(
            delivery_id=delivery_id,
            contact_id=delivery.contact_id,
            sequence=delivery.sequence_id,
            step=delivery.step_id,
        )
        with self.sessions() as session, session.begin():
            # One round trip for the send-time facts: the contact (locked for share), its
            # enrollment, and whether the sequence is paused.
            query = (
                select(Contact, Enrollment, SequenceState.sequence_id)
                .join(Enrollment, Enrollment.contact_id == Contact.id)
                .outerjoin(SequenceState, SequenceState.sequence_id == Enrollment.sequence_id)
                .where(Contact.id == delivery.contact_id, Enrollment.id == delivery.enrollment_id)
            )
            if is_postgresql(session.get_bind()):  # type: ignore[arg-type]
                query = query.with_for_update(read=True, of=Contact)
            contact, enrollment, paused = session.execute(query).one()
            checked = self._check(
                session, delivery, contact, enrollment, bound, paused=paused is not None
            )
            if isinstance(checked, SendResult):
                return checked
            loaded, step = checked
            try:
                email = self._compose(delivery, contact, loaded, step)
            except RenderError as exc:
                self._finish(session, delivery_id, DeliveryStatus.FAILED, error=f"render: {exc}")
                bound.warning("send.render_failed", error=str(exc))
                return SendResult(Outcome.FAILED)
            started = time.perf_counter()
            try:
                if self.throttle is not None:
                    self.throttle.acquire()
                message_id = self.transport.send(email)
            except TransientSendError as exc:
                return self._transient(session, delivery, exc, bound)
            except AmbiguousSendError as exc:
                # Stay in `sending`: the scheduler settles the row from the provider's
                # `processed` event, or applies DRIP_AMBIGUOUS_POLICY once the wait is over.
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                    .values(
                        lease_until=lease(self.clock(), self.policy.ambiguous_wait),
                        error=f"outcome unknown, waiting for the provider's event: {exc}",
                    )
                )
                bound.warning("send.ambiguous", error=str(exc))
                return SendResult(Outcome.AMBIGUOUS)
            except PermanentSendError as exc:
                self._finish(session, delivery_id, DeliveryStatus.FAILED, error=str(exc))
                bound.warning("send.refused", error=str(exc))
                return SendResult(Outcome.FAILED)
            PROVIDER_LATENCY.labels(type(self.transport).__name__).observe(
                time.perf_counter() - started
            )
            sent_at = self.clock()
            recorded = self._finish(
                session,
                delivery_id,
                DeliveryStatus.SENT,
                sent_at=sent_at,
                provider_message_id=message_id,
                sequence_version=loaded.version,
            )
            bound.info("send.sent", provider_message_id=message_id)
            if not recorded:
                # The lease ran out mid-call and the scheduler took the row over: it plans.
                bound.warning("send.lease_lost")
                return SendResult(Outcome.SENT)
            if delivery.resend or delivery.step_id == CONFIRM_STEP:
                return SendResult(Outcome.SENT)  # off the main line: plans nothing
            nxt = self._plan_next(
                session, enrollment, contact, loaded, sent_at, also_received=delivery.step_id
            )
            return SendResult(Outcome.SENT, next_delivery=nxt)

    def _check(
        self,
        session: Session,
        delivery: Delivery,
        contact: Contact,
        enrollment: Enrollment,
        bound: structlog.typing.FilteringBoundLogger,
        *,
        paused: bool,
    ) -> SendResult | tuple[LoadedSequence, Step]:
        """The send-time checks: what to send, or the result that ends this delivery here."""
        confirming = delivery.step_id == CONFIRM_STEP
        stop = self._stop_reason(contact, enrollment, confirming=confirming, resend=delivery.resend)
        if stop is not None:
            self._finish(session, delivery.id, DeliveryStatus.CANCELLED, error=stop)
            bound.info("send.cancelled", reason=stop)
            return SendResult(Outcome.CANCELLED)
        if not confirming and paused:
            # Paused after the claim: back to the schedule, sent (or skipped) on resume.
            self._finish(session, delivery.id, DeliveryStatus.SCHEDULED, error=None)
            bound.info("send.paused")
            return SendResult(Outcome.PAUSED)
        loaded = self.catalog.get(delivery.sequence_id)
        step = (
            loaded.definition.confirmation_step()
            if confirming
            else loaded.definition.step(delivery.step_id)
        )
        if step is None:
            self._finish(
                session,
                delivery.id,
                DeliveryStatus.CANCELLED,
                error="the step was removed from the sequence file",
            )
            bound.info("send.step_removed")
            if delivery.resend:
                return SendResult(Outcome.CANCELLED)
            nxt = self._plan_next(session, enrollment, contact, loaded, None)
            return SendResult(Outcome.CANCELLED, next_delivery=nxt)
        now = self.clock()
        late = now - delivery.due_at
        if step.max_lateness is not None and not delivery.resend and late > step.max_lateness:
            late_text = format_delay(timedelta(seconds=int(late.total_seconds())))
            self._finish(
                session,
                delivery.id,
                DeliveryStatus.SKIPPED,
                error=f"{late_text} late, more than max_lateness {format_delay(step.max_lateness)}",
            )
            bound.info("send.skipped_late", late=late_text)
            nxt = self._plan_next(session, enrollment, contact, loaded, now, also_received=step.id)
            return SendResult(Outcome.SKIPPED, next_delivery=nxt)
        return loaded, step

    def _claim(self, delivery_id: int) -> Delivery | None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            return session.scalars(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.QUEUED)
                .values(
                    status=DeliveryStatus.SENDING,
                    attempts=Delivery.attempts + 1,
                    lease_until=lease(now, self.policy.send_lease),
                    updated_at=now,
                )
                .returning(Delivery)
            ).one_or_none()

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
        rendered = self.catalog.renderer.render(
            sequence,
            step,
            TemplateContact(
                email=contact.email,
                first_name=contact.first_name,
                timezone=contact.timezone,
                attributes=dict(contact.attributes or {}),
            ),
            unsubscribe_url=self.links.footer_unsubscribe_url(contact.public_id, sequence.id),
            links=self.links.for_contact(contact.public_id, sequence, step.id),
        )
        return build_email(
            rendered,
            to_email=contact.email,
            to_name=contact.first_name,
            sender=sequence.from_,
            reply_to=sequence.reply_to,
            unsubscribe_url=self.links.unsubscribe_url(contact.public_id),
            unsubscribe_mailto=self.links.unsubscribe_mailto,
            custom_args={"delivery_id": str(delivery.id), "sequence": sequence.id, "step": step.id},
        )

    def _transient(
        self,
        session: Session,
        delivery: Delivery,
        exc: TransientSendError,
        bound: structlog.BoundLogger,
    ) -> SendResult:
        throttled = isinstance(exc, Throttled)
        if exc.retry_after and self.throttle is not None and not throttled:
            self.throttle.pause(exc.retry_after)
        # A send held back by the throttle never reached the provider: no attempt is spent.
        attempts = delivery.attempts - 1 if throttled else delivery.attempts
        if attempts >= self.policy.max_attempts:
            self._finish(
                session,
                delivery.id,
                DeliveryStatus.FAILED,
                error=f"gave up after {attempts} attempts: {exc}",
            )
            bound.warning("send.gave_up", attempts=attempts, error=str(exc))
            return SendResult(Outcome.FAILED)
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
        )
        bound.info("send.retry", attempts=attempts, retry_in=round(delay, 3), error=str(exc))
        return SendResult(Outcome.RETRY, retry_in=delay)

    def _finish(
        self, session: Session, delivery_id: int, status: DeliveryStatus, **values: object
    ) -> bool:
        """Move the row out of `sending`; False if something else moved it first."""
        result = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
            .values(status=status, lease_until=None, updated_at=self.clock(), **values)
        )
        return bool(getattr(result, "rowcount", 0))

    def _plan_next(
        self,
        session: Session,
        enrollment: Enrollment,
        contact: Contact,
        loaded: LoadedSequence,
        after: datetime | None,
        also_received: str | None = None,
    ) -> int | None:
        return plan_following(
            session,
            enrollment=enrollment,
            contact=contact,
            sequence=loaded.definition,
            now=self.clock(),
            queue_lease=self.policy.queue_lease,
            sent_step=also_received,
            sent_at=after,
        )
