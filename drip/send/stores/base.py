"""The sender's store: two transactions per batch, as the exactly-once guard needs.

`claim` commits `queued -> sending` before any provider call, so a crash leaves visible
`sending` rows for the scheduler. `guard` opens the second transaction: it reads the
send-time facts with each contact locked for share and stays open across the provider
calls, so an unsubscribe (which locks the contact for update) waits for the batch and
every later send sees it; the batch's ends are recorded in it before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from drip.deliveries.outcomes import Ended, Recorded
from drip.models import Delivery
from drip.send.decisions import Facts


@dataclass(frozen=True)
class FactNeeds:
    """Which send-time facts to read besides the contact and enrollment: the contacts'
    events (goals, conditions), their downloads (conditions), and their emails sent since
    a time (the daily cap). Unneeded reads cost the batch nothing."""

    events: bool = False
    downloads: bool = False
    sent_since: datetime | None = None


class Guard(Protocol):
    """The guard transaction of one batch."""

    def facts(
        self, claimed: Sequence[Delivery], needs: FactNeeds = FactNeeds()
    ) -> dict[int, Facts]:
        """The send-time facts of each claimed row's enrollment (by enrollment id), each
        contact locked for share until the transaction ends."""
        ...

    def reported_processed(self, delivery_ids: Sequence[int]) -> dict[int, datetime]:
        """Which of these rows the provider has reported processed, and when: a row sent
        again (its answer was lost) whose first send the provider did accept."""
        ...

    def retry_later(
        self, delivery_id: int, *, now: datetime, lease_until: datetime, attempts: int, error: str
    ) -> None:
        """Move the row back to `queued` for a retry (see `moves.retry_later`)."""
        ...

    def await_event(self, delivery_id: int, *, now: datetime, wait: float, error: str) -> None:
        """Leave the row in `sending` for the provider's event (see `moves.await_event`)."""
        ...

    def record(self, ended: Sequence[Ended], *, now: datetime, queue_lease: float) -> Recorded:
        """Record how rows ended and plan what follows (see `outcomes.record_outcomes`)."""
        ...


class SendStore(Protocol):
    """The sender's rows."""

    def claim(
        self, delivery_ids: Sequence[int], *, now: datetime, send_lease: float
    ) -> list[Delivery]:
        """`queued -> sending` for those still queued, committed; in the order given."""
        ...

    def guard(self) -> AbstractContextManager[Guard]:
        """Open the guard transaction; it commits when the block ends without error."""
        ...
