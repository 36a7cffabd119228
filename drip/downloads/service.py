"""Record a download of a sequence's file by the contact its signed link names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.models import Contact, Download


def record_download(session: Session, *, public_id: str, sequence_id: str, now: datetime) -> bool:
    """Store one download; False when the link names no contact (e.g. one since forgotten)."""
    contact_id = session.scalar(select(Contact.id).where(Contact.public_id == public_id))
    if contact_id is None:
        return False
    session.add(Download(contact_id=contact_id, sequence_id=sequence_id, downloaded_at=now))
    return True
