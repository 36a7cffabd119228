"""The check behind every `/v1` request: which key is it, and may it do this?

A missing, malformed, unknown or revoked key raises `KeyRefused` (401), a key without the
route's scope `ScopeMissing` (403, naming the scope). "Last used" is written at most once
a minute per key (`TOUCH_EVERY`): the row is read on every request anyway, and writing it
only when it is a minute old keeps a busy key from costing a write per request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from drip.errors import DripError
from drip.keys.scopes import Scope
from drip.keys.tokens import key_matches, prefix_of
from drip.models import ApiKey

#: How stale `last_used_at` may be before a request writes it again.
TOUCH_EVERY = timedelta(minutes=1)


class KeyRefused(DripError):
    """The request carries no key drip accepts: missing, malformed, unknown or revoked."""


class ScopeMissing(DripError):
    """The key is valid but lacks the scope the request needs."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        super().__init__(f"this key lacks the scope {scope.value}")


def authenticate(session: Session, token: str, *, scope: Scope, now: datetime) -> ApiKey:
    """The active key `token` is, if it has `scope`; records its use (see `TOUCH_EVERY`).
    Raises `KeyRefused` or `ScopeMissing`."""
    prefix = prefix_of(token)
    key = (
        session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one_or_none()
        if prefix
        else None
    )
    if key is None or not key_matches(token, key.key_hash):
        raise KeyRefused("the API key is missing or wrong")
    if key.revoked_at is not None:
        raise KeyRefused("the API key was revoked")
    if scope.value not in key.scopes:
        raise ScopeMissing(scope)
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        # Conditional: of concurrent requests, one writes; none waits on another's row lock
        # for long, since this runs in its own short transaction.
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key.id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - TOUCH_EVERY),
            )
            .values(last_used_at=now)
        )
    return key
