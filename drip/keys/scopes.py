"""What an API key may do. A request needs the one scope its route names (403 without it)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    """One permission of an API key."""

    EVENTS_WRITE = "events:write"  # POST /v1/events
    ENROLLMENTS_WRITE = "enrollments:write"  # POST /v1/enrollments
    CONTACTS_READ = "contacts:read"  # GET /v1/contacts/{email}
    CONTACTS_WRITE = "contacts:write"  # PATCH /v1/contacts/{email}


def parse_scopes(text: str | Iterable[str]) -> list[str]:
    """Scopes from `events:write,contacts:read` (or a list), deduplicated in the order of
    `Scope`; ValueError naming an unknown one, or when none is given."""
    given = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    given = [s for s in given if s]
    known = {scope.value for scope in Scope}
    unknown = [s for s in given if s not in known]
    if unknown:
        raise ValueError(
            f"unknown scope {unknown[0]!r}; the scopes are {', '.join(s.value for s in Scope)}"
        )
    if not given:
        raise ValueError("give at least one scope")
    return [scope.value for scope in Scope if scope.value in given]
