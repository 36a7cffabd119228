"""Store a click on a tracked link: once per (delivery, link) for people, once for machines.

A person's click and a machine's are kept in separate rows under one unique key
(`delivery_id`, `link_index`, `human`), inserted with on-conflict-do-nothing: however many
times a link is followed, the funnel counts it once, and a scanner that follows it first
never stands in for the person who follows it later. A repeat adds to `count` only.

A person's first click on a link is told to webhook receivers (`email.clicked`), in the
same transaction; the link goes without its query and fragment, which may carry
personal values a template put there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.clicks.rule import machine_reason
from drip.db import upsert_statement
from drip.models import Delivery, LinkClick
from drip.webhooks.events import Event, EventType
from drip.webhooks.outbox import emit


@dataclass(frozen=True)
class RecordedClick:
    """What one request for a tracked link recorded.

    `first` is True for the first click of its kind (person or machine) on this link of
    this delivery: a person's first click is the one that counts as engagement."""

    delivery_id: int
    contact_id: int
    sequence_id: str
    step_id: str
    link_index: int
    url: str
    human: bool
    machine_reason: str | None
    first: bool
    clicked_at: datetime


def record_click(
    session: Session,
    *,
    delivery_id: int,
    link_index: int,
    url: str,
    method: str,
    user_agent: str | None,
    now: datetime,
) -> RecordedClick | None:
    """Record a request for link `link_index` of `delivery_id`, judged by `drip.clicks.rule`;
    None when the delivery no longer exists (its contact was forgotten)."""
    row = session.execute(
        select(Delivery.contact_id, Delivery.sequence_id, Delivery.step_id, Delivery.sent_at).where(
            Delivery.id == delivery_id
        )
    ).first()
    if row is None:
        return None
    contact_id, sequence_id, step_id, sent_at = row
    reason = machine_reason(method=method, user_agent=user_agent, clicked_at=now, sent_at=sent_at)
    human = reason is None
    new_id = session.scalar(
        upsert_statement(session, LinkClick)
        .values(
            delivery_id=delivery_id,
            link_index=link_index,
            url=url,
            human=human,
            machine_reason=None if reason is None else reason.value,
            clicked_at=now,
            count=1,
        )
        .on_conflict_do_nothing(index_elements=["delivery_id", "link_index", "human"])
        .returning(LinkClick.id)
    )
    if new_id is None:
        session.execute(
            update(LinkClick)
            .where(
                LinkClick.delivery_id == delivery_id,
                LinkClick.link_index == link_index,
                LinkClick.human == human,
            )
            .values(count=LinkClick.count + 1)
        )
    if human and new_id is not None:
        data = {
            "delivery_id": delivery_id,
            "sequence": sequence_id,
            "step": step_id,
            "link_index": link_index,
            "url": urlunsplit(urlsplit(url)._replace(query="", fragment="")),
        }
        emit(session, [Event(EventType.EMAIL_CLICKED, contact_id, now, data)], now=now)
    return RecordedClick(
        delivery_id=delivery_id,
        contact_id=contact_id,
        sequence_id=sequence_id,
        step_id=step_id,
        link_index=link_index,
        url=url,
        human=human,
        machine_reason=None if reason is None else reason.value,
        first=new_id is not None,
        clicked_at=now,
    )
