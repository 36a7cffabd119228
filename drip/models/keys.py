"""The address hash key's check: which key `contacts.email_hash` was keyed with."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from drip.models.base import Base


class HashKeyCheck(Base):
    """An HMAC of a fixed label under the hash key (`drip.contacts.keys`): it tells whether a
    service holds the key the stored hashes were made with, and reveals nothing of it."""

    __tablename__ = "hash_key_checks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
