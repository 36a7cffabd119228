"""A contact's data on request: everything stored about it (`export`), or its erasure (`forget`).

`forget_contact` erases every field that can name the person, and keeps the row only as a
keyed-hash suppression entry (`drip.contacts.identity`), so the address is never mailed
again unless its owner signs up and confirms. What it erases, `export_contact` returns:

- the contact's address, name, zone, source and attributes, and the text of its status
  reason (a bounce reason quotes the address); a hard suppression keeps only its kind;
- its public id, which every link ever sent carries: a new one is drawn, so an old
  unsubscribe, confirmation or download link answers as for an unknown contact;
- the error text of its deliveries (a provider's refusal may quote the address);
- the payloads of its provider events, found by delivery or by address (an event without
  a delivery names the address, the client's IP and user agent): only `FUNNEL_FIELDS` stay;
- the address, and the old public id, wherever the audit trail names the contact;
- the properties of the events other apps posted about it (`contact_events`, found by
  contact or by address hash): only the event's name and times stay.

Events that arrive later for a forgotten contact, or for no known contact, are stored
already redacted (`redactions`, called by `drip.events.store`; `REDACTED_PROPERTIES`, by
`drip.events.contact_store`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from drip.contacts.identity import email_hash, normalize_email
from drip.contacts.lifecycle import lock_contact, stop_contact
from drip.deliveries.moves import passed_by_import
from drip.models import (
    AuditEntry,
    Contact,
    ContactEvent,
    ContactStatus,
    Delivery,
    Download,
    Enrollment,
    LinkClick,
    ProviderEvent,
)
from drip.models.contact import new_public_id

#: The fields of a provider event that name no one: what the funnel and the effects read.
FUNNEL_FIELDS = frozenset(
    {
        "event",
        "type",
        "bounce_classification",
        "status",
        "attempt",
        "sg_event_id",
        "sg_message_id",
        "timestamp",
        "delivery_id",
        "sequence",
        "step",
    }
)
#: What an event from another app keeps of its properties once its contact is forgotten.
REDACTED_PROPERTIES = {"redacted": True}
#: The status reason of a forgotten contact.
FORGOTTEN_REASON = "forgotten on request"
#: What replaces a forgotten contact's delivery error texts.
ERASED_ERROR = "erased when the contact was forgotten"


def find_contact(session: Session, address: str, *, lock: bool = False) -> Contact | None:
    """The contact for an address, by its hash (so a forgotten one is found too)."""
    hashed = email_hash(normalize_email(address))
    if lock:
        return lock_contact(session, email_hash=hashed)
    return session.scalars(select(Contact).where(Contact.email_hash == hashed)).one_or_none()


def redact_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without anything that names a person, marked as redacted."""
    kept = {key: value for key, value in payload.items() if key in FUNNEL_FIELDS}
    return {**kept, "redacted": True}


def redactions(session: Session, subjects: Sequence[tuple[int | None, str | None]]) -> list[bool]:
    """For each incoming event, given as (delivery id, address), whether it must be stored
    redacted: its contact (by delivery, else by address) is forgotten, or none is known."""
    by_delivery = {
        delivery_id: erased
        for delivery_id, erased in session.execute(
            select(Delivery.id, _erased(Contact))
            .join(Contact, Contact.id == Delivery.contact_id)
            .where(Delivery.id.in_({d for d, _ in subjects if d is not None}))
        )
    }
    hashes = {
        address: email_hash(address.strip().lower())
        for delivery_id, address in subjects
        if delivery_id not in by_delivery and address
    }
    by_hash = {
        hashed: erased
        for hashed, erased in session.execute(
            select(Contact.email_hash, _erased(Contact)).where(
                Contact.email_hash.in_(set(hashes.values()))
            )
        )
    }
    return [
        bool(by_delivery[delivery_id])
        if delivery_id in by_delivery
        else bool(by_hash.get(hashes.get(address or "", ""), True))
        for delivery_id, address in subjects
    ]


def export_contact(session: Session, contact: Contact) -> dict[str, Any]:
    """Everything stored about `contact`, as JSON-ready data: every value `forget_contact`
    would erase is in it."""
    return {
        "contact": _row(contact),
        "enrollments": [
            _row(e)
            for e in session.scalars(
                select(Enrollment)
                .where(Enrollment.contact_id == contact.id)
                .order_by(Enrollment.id)
            )
        ],
        "deliveries": [
            _row(d)
            for d in session.scalars(
                select(Delivery).where(Delivery.contact_id == contact.id).order_by(Delivery.id)
            )
        ],
        "provider_events": [_row(e) for e in _events_of(session, contact)],
        "contact_events": [_row(e) for e in _contact_events_of(session, contact)],
        "downloads": [
            _row(d)
            for d in session.scalars(
                select(Download).where(Download.contact_id == contact.id).order_by(Download.id)
            )
        ],
        "link_clicks": [
            _row(c)
            for c in session.scalars(
                select(LinkClick).where(LinkClick.delivery_id.in_(_deliveries_of(contact)))
            )
        ],
        "audit": [_row(a) for a in _audit_of(session, contact)],
    }


def forget_contact(session: Session, contact: Contact, *, now: datetime) -> None:
    """Erase the contact's personal data; keep its keyed hash so it is never mailed again.
    The caller holds the contact row lock (`find_contact(..., lock=True)`)."""
    stop_contact(session, contact, status=ContactStatus.FORGOTTEN, reason=FORGOTTEN_REASON, now=now)
    # A hard suppression (bounce, complaint) outlives the erasure, without its text.
    contact.status_reason = (
        (contact.status_reason or "").split(":", 1)[0]
        if contact.is_hard_suppressed
        else FORGOTTEN_REASON
    )
    for event in _events_of(session, contact):
        if not event.payload.get("redacted"):
            event.payload = redact_payload(event.payload)
    for contact_event in _contact_events_of(session, contact):
        if contact_event.properties != REDACTED_PROPERTIES:
            contact_event.properties = dict(REDACTED_PROPERTIES)
    for entry in _audit_of(session, contact):
        entry.target = contact.email_hash
        if contact.email:
            entry.reason = _without(entry.reason, contact.email, contact.email_hash)
            entry.details = json.loads(
                _without(json.dumps(entry.details), contact.email, contact.email_hash) or "{}"
            )
    session.execute(
        update(Delivery)
        # A step an import passed keeps its mark (drip's own words, no personal data), so a
        # retry never sends it.
        .where(Delivery.contact_id == contact.id, Delivery.error.is_not(None), ~passed_by_import())
        .values(error=ERASED_ERROR)
    )
    # A template may put the contact's own data in a link: the clicked URL goes too.
    session.execute(
        update(LinkClick)
        .where(LinkClick.delivery_id.in_(_deliveries_of(contact)), LinkClick.url != "")
        .values(url="")
    )
    contact.email = None
    contact.first_name = None
    contact.timezone = None
    contact.source = None
    contact.attributes = {}
    contact.public_id = new_public_id()


def _deliveries_of(contact: Contact) -> Any:
    """The ids of the contact's deliveries, as a subquery."""
    return select(Delivery.id).where(Delivery.contact_id == contact.id)


def _erased(contact: type[Contact]) -> ColumnElement[bool]:
    """True for a contact whose personal data is gone (or is to stay gone)."""
    return or_(contact.email.is_(None), contact.status == ContactStatus.FORGOTTEN)


def _events_of(session: Session, contact: Contact) -> Sequence[ProviderEvent]:
    """The contact's provider events: by its deliveries, and by its address for events
    that name no delivery of it."""
    mine: list[ColumnElement[bool]] = [
        ProviderEvent.delivery_id.in_(select(Delivery.id).where(Delivery.contact_id == contact.id))
    ]
    if contact.email:
        address = func.lower(func.trim(ProviderEvent.payload["email"].as_string()))
        mine.append(address == contact.email)
    return session.scalars(select(ProviderEvent).where(or_(*mine)).order_by(ProviderEvent.id)).all()


def _contact_events_of(session: Session, contact: Contact) -> Sequence[ContactEvent]:
    """The events other apps posted about the contact: attached, or kept for its address."""
    return session.scalars(
        select(ContactEvent)
        .where(
            or_(
                ContactEvent.contact_id == contact.id,
                ContactEvent.email_hash == contact.email_hash,
            )
        )
        .order_by(ContactEvent.id)
    ).all()


def _audit_of(session: Session, contact: Contact) -> Sequence[AuditEntry]:
    """The audit entries that name the contact: by public id, address or hash."""
    targets = [contact.public_id, contact.email_hash, *([contact.email] if contact.email else [])]
    return session.scalars(
        select(AuditEntry).where(AuditEntry.target.in_(targets)).order_by(AuditEntry.id)
    ).all()


def _without(text: str | None, address: str, replacement: str) -> str | None:
    """`text` with every spelling of `address` (any case) replaced."""
    if text is None:
        return None
    lowered = text.lower()
    out, start = [], 0
    while (found := lowered.find(address, start)) >= 0:
        out += [text[start:found], replacement]
        start = found + len(address)
    return "".join([*out, text[start:]])


def _row(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = (
            value.isoformat()
            if isinstance(value, datetime)
            else (value.value if hasattr(value, "value") else value)
        )
    return out
