"""Create, list and revoke API keys; every change leaves an audit entry (`drip.audit`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from drip.audit import record_audit
from drip.errors import OperationRefused
from drip.keys.scopes import parse_scopes
from drip.keys.tokens import NewKey, draw_key
from drip.models import ApiKey

#: The longest key name accepted.
NAME_MAX_LENGTH = 100


def create_key(
    session: Session, name: str, scopes: str | Sequence[str], *, operator: str, now: datetime
) -> tuple[ApiKey, NewKey]:
    """Store a new key named `name` with `scopes`; the caller shows `NewKey.token` once,
    it is not kept. ValueError for an empty or long name or an unknown scope."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise ValueError(f"a key name is 1 to {NAME_MAX_LENGTH} printable characters")
    granted = parse_scopes(scopes)
    new = draw_key()
    key = ApiKey(prefix=new.prefix, key_hash=new.digest, name=name, scopes=granted, created_at=now)
    session.add(key)
    record_audit(
        session,
        action="keys.create",
        operator=operator,
        now=now,
        target=f"key:{new.prefix}",
        details={"name": name, "scopes": granted},
    )
    return key, new


def list_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


def revoke_key(
    session: Session, which: str, *, operator: str, now: datetime, reason: str | None = None
) -> ApiKey:
    """Revoke the key with prefix `which`, or the one active key named `which`; it gets
    401 from then on. OperationRefused when none, or several, match."""
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == which)).one_or_none()
    if key is None:
        named = session.scalars(
            select(ApiKey).where(ApiKey.name == which, ApiKey.revoked_at.is_(None))
        ).all()
        if len(named) > 1:
            raise OperationRefused(
                f"{len(named)} active keys are named {which!r}: name one by its prefix"
            )
        key = named[0] if named else None
    if key is None:
        raise OperationRefused(f"no key with the prefix or name {which!r}")
    if key.revoked_at is not None:
        raise OperationRefused(f"the key {key.prefix} was already revoked")
    key.revoked_at = now
    record_audit(
        session,
        action="keys.revoke",
        operator=operator,
        now=now,
        reason=reason,
        target=f"key:{key.prefix}",
        details={"name": key.name},
    )
    return key
