"""Send deliveries, exactly once, a batch at a time: the orchestrator.

1. Claim: `queued -> sending` for the batch, committed before any provider call, so a
   crash leaves visible `sending` rows for the scheduler to resolve. A row someone else
   claimed first (a duplicate message, a second worker) is `NOT_MINE` and left alone.
2. Guard: a second transaction reads the send-time facts with each contact locked for
   share (PostgreSQL, in id order) and `decide`s each row: send it, or end it. An
   unsubscribe locks its contact's row for update, so it waits for a batch in flight and
   every later send sees it: nothing leaves after its answer.
3. Send the batch's emails (concurrently) and `judge` each answer; in the same guard
   transaction record every end at once (`record_outcomes`, which alone decides what
   follows), move transient failures back to `queued` with their backoff, and leave a
   lost answer in `sending` for the provider's event.

The decisions are pure (`drip.send.decisions`); the rows are behind a store
(`drip.send.stores`: SQL, or an in-memory twin for tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from drip.db import utcnow
from drip.deliveries.leases import lease
from drip.deliveries.outcomes import Ended
from drip.deliveries.transitions import Move
from drip.errors import RenderError
from drip.metrics import DELIVERIES
from drip.models import Contact, Delivery
from drip.render.renderer import TemplateContact
from drip.render.variants import step_for
from drip.send.compose import compose
from drip.send.decisions import (
    DAY,
    AwaitEvent,
    Deliver,
    End,
    Facts,
    Outcome,
    RetryLater,
    RetryPolicy,
    decide,
    judge,
)
from drip.send.message import OutgoingEmail
from drip.send.stores import FactNeeds, Guard, SendStore, SqlSendStore
from drip.send.throttle import SendThrottle
from drip.send.transmit import Transmitter
from drip.send.transports.base import Transport
from drip.send.variants import record_variant
from drip.sequences.catalog import LoadedSequence, SequenceCatalog
from drip.unsubscribe.links import Links

log = structlog.get_logger(__name__)

__all__ = ["DeliverySender", "Outcome", "SendPolicy", "SendResult"]


#: Seconds a batch may spend handing its emails to the provider, from the start of its
#: send: an email whose call has not started by then is held back for a retry (no attempt
#: spent). Half the send actors' time limit (`drip.send.actor`), so a call started just
#: before it (bounded by the transport's timeout, DRIP_SENDGRID_TIMEOUT) and the batch's
#: record still finish within the limit.
SEND_WINDOW = 60.0


@dataclass(frozen=True)
class SendPolicy:
    """Limits of the send path, from settings."""

    send_lease: float
    max_attempts: int
    min_backoff: float
    max_backoff: float
    queue_lease: float
    ambiguous_wait: float = 900.0
    #: Emails a contact may get in any 24 hours, all sequences together (0: no cap).
    daily_cap: int = 0
    #: Seconds a batch may spend handing emails to the provider (`SEND_WINDOW`).
    send_window: float = SEND_WINDOW

    @property
    def retries(self) -> RetryPolicy:
        """How transient failures are retried."""
        return RetryPolicy(self.max_attempts, self.min_backoff, self.max_backoff)


@dataclass(frozen=True)
class SendResult:
    """How one delivery's call ended, and the next row due at once that it planned."""

    outcome: Outcome
    retry_in: float | None = None
    next_delivery: int | None = None


class DeliverySender:
    """Runs the state machine for batches of deliveries; safe to call any number of times."""

    def __init__(
        self,
        *,
        catalog: SequenceCatalog,
        transport: Transport,
        links: Links,
        policy: SendPolicy,
        sessions: sessionmaker[Session] | None = None,
        store: SendStore | None = None,
        clock: Callable[[], datetime] = utcnow,
        throttle: SendThrottle | None = None,
        concurrency: int = 8,
    ) -> None:
        if store is None:
            if sessions is None:
                raise TypeError("DeliverySender needs sessions or a store")
            store = SqlSendStore(sessions)
        self.store = store
        self.throttle = throttle
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
        claimed = self.store.claim(ids, now=self.clock(), send_lease=self.policy.send_lease)
        results = {delivery_id: SendResult(Outcome.NOT_MINE) for delivery_id in ids}
        if claimed:
            results.update(self._send_claimed(claimed))
        _count(claimed, results)
        return results

    def close(self) -> None:
        """Close the transport's connections."""
        self.transmitter.close()

    def _send_claimed(self, claimed: list[Delivery]) -> dict[int, SendResult]:
        deadline = self.transmitter.monotonic() + self.policy.send_window
        results: dict[int, SendResult] = {}
        ended: list[Ended] = []
        with self.store.guard() as guard:
            facts = guard.facts(claimed, self._needs())
            # A row sent again (its answer was lost) whose first send the provider reported
            # processed meanwhile was sent: recorded as such, never sent a second time.
            again = [d.id for d in claimed if d.attempts > 1]
            reported = guard.reported_processed(again) if again else {}
            outgoing: list[tuple[Delivery, LoadedSequence, OutgoingEmail]] = []
            now = self.clock()
            # The daily cap counts the emails this batch already decided to send to a
            # contact, beside those of the last day read with the facts.
            going: dict[int, tuple[datetime, ...]] = {}
            for delivery in claimed:
                found = facts.get(delivery.enrollment_id)
                if found is not None and delivery.contact_id in going:
                    sends = found.recent_sends + going[delivery.contact_id]
                    found = replace(found, recent_sends=sends)
                decision = (
                    End(
                        Outcome.SENT,
                        Move.REPORTED_SENT,
                        "send.reported_sent",
                        {"sent_at": reported[delivery.id], "error": None},
                    )
                    if delivery.id in reported
                    else decide(delivery, found, self.catalog, now, daily_cap=self.policy.daily_cap)
                )
                if delivery.id in reported or not isinstance(decision, End):
                    went = reported.get(delivery.id) or now  # reported sent, or going now
                    going[delivery.contact_id] = (*going.get(delivery.contact_id, ()), went)
                if isinstance(decision, End):
                    ended.append(self._ended(delivery, decision, found, now))
                    results[delivery.id] = SendResult(decision.outcome)
                    continue
                assert found is not None  # decide ends a row without facts
                try:
                    email = self._compose(delivery, found.contact, decision)
                except RenderError as exc:
                    failed = End(
                        Outcome.FAILED,
                        Move.REFUSED,
                        "send.render_failed",
                        {"error": f"render: {exc}"},
                    )
                    ended.append(self._ended(delivery, failed, found, now))
                    results[delivery.id] = SendResult(Outcome.FAILED)
                    continue
                outgoing.append((delivery, decision.loaded, email))
            answers = self.transmitter.send_all(
                [email for _, _, email in outgoing], deadline=deadline
            )
            for (delivery, loaded, _), answer in zip(outgoing, answers, strict=True):
                verdict = judge(
                    answer,
                    delivery,
                    version=loaded.version,
                    policy=self.policy.retries,
                    now=self.clock(),
                )
                found = facts[delivery.enrollment_id]
                results[delivery.id] = self._apply(guard, delivery, verdict)
                if isinstance(verdict, End):
                    ended.append(self._ended(delivery, verdict, found, self.clock()))
            recorded = guard.record(ended, now=self.clock(), queue_lease=self.policy.queue_lease)
        for delivery_id, nxt in recorded.next_due.items():
            results[delivery_id] = replace(results[delivery_id], next_delivery=nxt)
        return results

    def _needs(self) -> FactNeeds:
        """Which facts beyond the contact and enrollment the loaded files need read."""
        reacting = any(
            loaded.definition.exit or any(s.when for s in loaded.definition.steps)
            for loaded in self.catalog
        )
        since = self.clock() - DAY if self.policy.daily_cap else None
        return FactNeeds(events=reacting, downloads=reacting, sent_since=since)

    def _apply(
        self,
        guard: Guard,
        delivery: Delivery,
        verdict: End | RetryLater | AwaitEvent,
    ) -> SendResult:
        """Carry out a retry or a wait now; an end is recorded with the batch."""
        if isinstance(verdict, RetryLater):
            if verdict.pause_for and self.throttle is not None:
                self.throttle.pause(verdict.pause_for)
            now = self.clock()
            # Leased past the retry, so the scheduler does not enqueue it meanwhile.
            guard.retry_later(
                delivery.id,
                now=now,
                lease_until=lease(now, verdict.delay + self.policy.queue_lease),
                attempts=verdict.attempts,
                error=verdict.error,
            )
            log.info(
                "send.retry",
                **_ids(delivery),
                attempts=verdict.attempts,
                retry_in=round(verdict.delay, 3),
                error=verdict.error,
            )
            return SendResult(Outcome.RETRY, retry_in=verdict.delay)
        if isinstance(verdict, AwaitEvent):
            guard.await_event(
                delivery.id, now=self.clock(), wait=self.policy.ambiguous_wait, error=verdict.error
            )
            log.warning("send.ambiguous", **_ids(delivery), error=verdict.error)
            return SendResult(Outcome.AMBIGUOUS)
        return SendResult(verdict.outcome)

    def _ended(self, delivery: Delivery, end: End, found: Facts | None, at: datetime) -> Ended:
        """The record of `end`, with the facts that decide what follows. A failure is
        logged as a warning; any other end only at DEBUG (the batch's line counts them)."""
        level = log.warning if end.outcome is Outcome.FAILED else log.debug
        level(end.event, **_ids(delivery), **{k: v for k, v in end.values.items() if k in _LOGGED})
        sent_at = end.values.get("sent_at")
        return Ended(
            delivery,
            end.move,
            sent_at if isinstance(sent_at, datetime) else at,
            end.values,
            found.enrollment if found else None,
            found.contact if found else None,
            self.catalog.get(delivery.sequence_id).definition
            if found and delivery.sequence_id in self.catalog
            else None,
        )

    def _compose(self, delivery: Delivery, contact: Contact, send: Deliver) -> OutgoingEmail:
        """The email of `send.step` for `contact`, with its links and provider ids: the
        contact's subject variant of a subject test (recorded on the row), UTM tags, and
        tracked links when the sequence tracks clicks (`drip.render.tracking`)."""
        sequence = send.loaded.definition
        assert contact.email is not None  # _stop_reason refuses forgotten contacts
        step, variant = step_for(contact.public_id, send.step)
        if variant is not None:
            record_variant(contact, delivery, variant)
        person = TemplateContact(
            email=contact.email,
            first_name=contact.first_name,
            timezone=contact.timezone,
            attributes=dict(contact.attributes or {}),
        )
        return compose(
            self.catalog.renderer,
            self.links,
            sequence,
            step,
            person,
            public_id=contact.public_id,
            to_email=contact.email,
            custom_args={"delivery_id": str(delivery.id), "sequence": sequence.id, "step": step.id},
            tracked_delivery=delivery.id,
        ).message


#: Values of an end that its log line carries.
_LOGGED = frozenset({"error", "provider_message_id"})


def _ids(delivery: Delivery) -> dict[str, object]:
    """What a delivery's log line names it by."""
    return {
        "delivery_id": delivery.id,
        "contact_id": delivery.contact_id,
        "sequence": delivery.sequence_id,
        "step": delivery.step_id,
    }


def _count(claimed: Sequence[Delivery], results: dict[int, SendResult]) -> None:
    """Count the batch's outcomes: one metric increment per sequence, step and outcome,
    and one log line for the batch (each email's own line is at DEBUG, or a warning)."""
    counts = Counter((d.sequence_id, d.step_id, results[d.id].outcome.value) for d in claimed)
    for (sequence, step, outcome), n in counts.items():
        DELIVERIES.labels(sequence, step, outcome).inc(n)
    outcomes = Counter(result.outcome.value for result in results.values())
    log.info("send.batch", deliveries=len(results), **dict(sorted(outcomes.items())))
