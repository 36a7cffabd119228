"""The audit trail: every operator write (resend, retry, pause, unsubscribe...) leaves an entry."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from drip.models import AuditEntry


def current_operator(explicit: str | None = None) -> str:
    """Who is acting: `--by`, else `$USER`, else the login name."""
    if explicit:
        return explicit
    try:
        return os.environ.get("USER") or getpass.getuser()
    except OSError:
        return "unknown"


def record_audit(
    session: Session,
    *,
    action: str,
    operator: str,
    now: datetime,
    reason: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one audit entry to the caller's transaction."""
    session.add(
        AuditEntry(
            at=now,
            action=action,
            operator=operator,
            reason=reason,
            target=target,
            details=details or {},
        )
    )
