"""Idempotent writes: the client's `id` names a write, and a repeat gets the first answer.

The first request with an id claims it (`INSERT ... ON CONFLICT DO NOTHING` on the unique
(kind, client id)) inside the transaction that does the write, and records its answer
before commit. A concurrent twin's insert waits for that transaction (PostgreSQL holds a
conflicting insert until the first one ends) and then finds the row: one effect, one answer.
A write that fails rolls its claim back with it, so the id can be used again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drip.db import upsert_statement
from drip.models import ApiRequest


def claim_request(
    session: Session, kind: str, client_id: str, *, now: datetime
) -> ApiRequest | None:
    """Claim `client_id` for a write of `kind`: None when this request is the first (go
    ahead, then `record_answer`), else the earlier request with its answer."""
    claimed = session.scalar(
        upsert_statement(session, ApiRequest)
        .values(kind=kind, client_id=client_id, status_code=0, answer={}, created_at=now)
        .on_conflict_do_nothing(index_elements=["kind", "client_id"])
        .returning(ApiRequest.id)
    )
    if claimed is not None:
        return None
    return session.scalars(
        select(ApiRequest).where(ApiRequest.kind == kind, ApiRequest.client_id == client_id)
    ).one()


def record_answer(
    session: Session, kind: str, client_id: str, *, status_code: int, answer: dict[str, Any]
) -> None:
    """Keep the answer of the write that claimed `client_id`, for its repeats."""
    session.execute(
        update(ApiRequest)
        .where(ApiRequest.kind == kind, ApiRequest.client_id == client_id)
        .values(status_code=status_code, answer=answer)
    )
