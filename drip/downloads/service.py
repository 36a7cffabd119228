"""Record a download of a sequence's file by the contact its signed link names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from drip.models import Contact, Download, Enrollment


def record_download(
    session: Session, *, public_id: str, sequence_id: str, now: datetime, bound: bool = True
) -> bool:
    """Store one download; False when the link names no contact (e.g. one since forgotten).

    `bound` says the link itself names `sequence_id`. A link made before links were bound
    names only the contact, so it opens the file of a sequence the contact is enrolled in
    (the one whose email carried it), and nothing else: False otherwise."""
    query = select(Contact.id).where(Contact.public_id == public_id)
    if not bound:
        query = query.where(
            exists().where(
                Enrollment.contact_id == Contact.id, Enrollment.sequence_id == sequence_id
            )
        )
    contact_id = session.scalar(query)
    if contact_id is None:
        return False
    session.add(Download(contact_id=contact_id, sequence_id=sequence_id, downloaded_at=now))
    return True
