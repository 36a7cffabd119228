"""Which key the address hashes were made with, so that a service never reads them with another.

A service started with a different hash key would find no stored contact: a forgotten or
bounced address that signs up again would be taken for a stranger, and a known one would
collide with its own row. So the database keeps a fingerprint of its key (an HMAC of a
fixed label, which reveals nothing of the key), and every runtime settles its key against it:

- `DRIP_HASH_KEY` when set: it must match;
- else the key derived from `DRIP_SECRET_KEY`, or from one of `DRIP_SECRET_KEY_FALLBACKS`:
  during a rotation of the secret key the old secret, now a fallback, still derives the
  key the database knows, and that key stays in use. Pin `DRIP_HASH_KEY` to it before the
  old secret is dropped (docs/security.md);
- a database with no fingerprint yet records the first candidate's.

No candidate matching is refused at start with `HashKeyMismatch`, naming the settings.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import structlog
from sqlalchemy import inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from drip.contacts.identity import derive_hash_key
from drip.db import transaction, upsert_statement
from drip.errors import HashKeyMismatch
from drip.models import HashKeyCheck

log = structlog.get_logger(__name__)

#: What the fingerprint is an HMAC of: a label used for nothing else.
FINGERPRINT_LABEL = b"drip.contacts.hash-key-check.v1"
#: The row that holds the fingerprint of the key of `contacts.email_hash`.
CHECK_NAME = "email_hash"


def fingerprint(key: str) -> str:
    """The fingerprint of a hash key: it identifies the key and cannot be turned back."""
    return hmac.new(key.encode(), FINGERPRINT_LABEL, hashlib.sha256).hexdigest()


def hash_key_candidates(
    *, hash_key: str | None, secret_key: str, fallback_keys: Sequence[str]
) -> list[str]:
    """The keys a service may hash with, in order of preference."""
    if hash_key:
        return [hash_key]
    return [derive_hash_key(secret) for secret in (secret_key, *fallback_keys)]


def settle_hash_key(sessions: sessionmaker[Session], candidates: Sequence[str]) -> str:
    """The candidate the database's hashes were made with; a database without a fingerprint
    records the first. Raises `HashKeyMismatch` when none matches.

    With the database down at start, a single candidate is used unchecked (the service
    must start and answer 503 until the database is back; the next start checks it), and
    several are refused: which one is right cannot be told."""
    try:
        with transaction(sessions) as session:
            return _settle(session, candidates)
    except OperationalError as exc:
        if len(candidates) > 1:
            raise HashKeyMismatch(
                "the database is unreachable, so the address hash key cannot be chosen among "
                "the keys derived from DRIP_SECRET_KEY and DRIP_SECRET_KEY_FALLBACKS: set "
                "DRIP_HASH_KEY, or start again when the database is up"
            ) from exc
        log.warning("contacts.hash_key_unchecked", error=str(exc).splitlines()[0])
        return candidates[0]


def _settle(session: Session, candidates: Sequence[str]) -> str:
    if not inspect(session.connection()).has_table(HashKeyCheck.__tablename__):
        return candidates[0]  # not migrated yet: `drip db upgrade` keys it
    stored = session.scalar(select(HashKeyCheck.fingerprint).where(HashKeyCheck.name == CHECK_NAME))
    if stored is None:
        session.execute(
            upsert_statement(session, HashKeyCheck)
            .values(name=CHECK_NAME, fingerprint=fingerprint(candidates[0]))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        stored = session.scalar(
            select(HashKeyCheck.fingerprint).where(HashKeyCheck.name == CHECK_NAME)
        )
    for position, key in enumerate(candidates):
        if hmac.compare_digest(fingerprint(key), stored or ""):
            if position:
                log.warning("contacts.hash_key_from_fallback", fallback=position)
            return key
    raise HashKeyMismatch(
        "the address hashes in the database were made with another key: set DRIP_HASH_KEY to "
        "that key, or keep the DRIP_SECRET_KEY it was derived from in DRIP_SECRET_KEY_FALLBACKS"
    )
