"""The events drip tells other systems about, and the body each one is sent as.

A body follows the Standard Webhooks payload shape: `{"type", "timestamp", "data"}`; the
event's id travels in the `webhook-id` header and stays the same on every retry and
replay, so a receiver deduplicates by it.

Personal data is the least each receiver needs. Every event names the contact by its
public id (random, never the row id). Only the `contact.*` events carry the address:
a CRM must match or create the person on `contact.subscribed`/`contact.confirmed`, and
must stop mailing the address elsewhere on `contact.unsubscribed`/`contact.suppressed`.
The `email.*` and `enrollment.*` events do not: a receiver joins them to the person by
the public id. The address is read from the contact when the event is sent, never kept
in the outbox, so an erased contact's events go out without it. Provider texts that can
quote the address (a bounce's SMTP reason) are never sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """The events other systems can subscribe to."""

    CONTACT_SUBSCRIBED = "contact.subscribed"
    CONTACT_CONFIRMED = "contact.confirmed"
    EMAIL_SENT = "email.sent"
    EMAIL_DELIVERED = "email.delivered"
    EMAIL_BOUNCED = "email.bounced"
    EMAIL_CLICKED = "email.clicked"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    CONTACT_SUPPRESSED = "contact.suppressed"
    ENROLLMENT_COMPLETED = "enrollment.completed"
    ENROLLMENT_CONVERTED = "enrollment.converted"


#: The event types whose payload carries the contact's address (see the module docstring).
WITH_ADDRESS = frozenset(
    {
        EventType.CONTACT_SUBSCRIBED,
        EventType.CONTACT_CONFIRMED,
        EventType.CONTACT_UNSUBSCRIBED,
        EventType.CONTACT_SUPPRESSED,
    }
)

#: Every event type, as `webhooks.yaml` and `drip webhooks add --events` name them.
EVENT_TYPES = tuple(t.value for t in EventType)


def new_event_id() -> str:
    """A stable, unique event id: `evt_` and 32 hex digits."""
    return f"evt_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Event:
    """One thing that happened: its type, the contact's row id (for the public id and
    address read at send time), the non-personal fields, and when."""

    type: EventType
    contact_id: int | None
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)


@dataclass(frozen=True)
class ContactRef:
    """The contact as a body shows it: public id, and the address if still known."""

    public_id: str | None
    email: str | None


def build_body(
    event_type: str, occurred_at: datetime, data: Mapping[str, Any], contact: ContactRef | None
) -> str:
    """The JSON body sent for an event: the same bytes for the same inputs."""
    payload: dict[str, Any] = dict(data)
    if contact is not None:
        person: dict[str, Any] = {"id": contact.public_id}
        if event_type in WITH_ADDRESS:
            person["email"] = contact.email
        payload["contact"] = person
    body = {"type": event_type, "timestamp": iso(occurred_at), "data": payload}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def iso(moment: datetime) -> str:
    """A UTC timestamp in ISO 8601 with a `Z`, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
