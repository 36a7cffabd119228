"""What a signup's transaction leaves its caller to do once it commits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SignupResult:
    """What the caller must do after commit: enqueue this delivery, if any."""

    delivery_to_enqueue: int | None = None
    enrolled: bool = False
    confirmation_sent: bool = False
