"""Every error drip raises on purpose, rooted in `DripError`.

Callers can tell a transient send failure (retry later) from a permanent one (fail the
row with the reason), and a bad sequence file (refuse to start) from bad user input.
"""

from __future__ import annotations

from dataclasses import dataclass


class DripError(Exception):
    """Base of every error drip raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a sequence file: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"


class SequenceError(DripError):
    """A sequence file or template is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class WebhookConfigError(DripError, ValueError):
    """`webhooks.yaml` or an endpoint given to `drip webhooks add` is invalid; carries
    every problem found, each with file, line and field where there is a file."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class DelayError(DripError, ValueError):
    """A delay such as `1d12h` could not be parsed."""


class UnknownSequence(DripError):
    """A signup or command named a sequence that no file defines."""

    def __init__(self, sequence_id: str) -> None:
        self.sequence_id = sequence_id
        super().__init__(f"unknown sequence {sequence_id!r}")


class InvalidSignup(DripError):
    """A signup's field is invalid; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class RenderError(DripError):
    """A template could not be rendered for a contact (undefined variable, sandbox refusal)."""


class BadToken(DripError):
    """A signed token was tampered with or is unknown."""


class SendError(DripError):
    """A transport could not send a message."""


class TransientSendError(SendError):
    """Worth retrying: rate limit, provider 5xx, timeout, connection reset."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class Throttled(TransientSendError):
    """Held back before reaching the provider (shared rate or pause): not a failed attempt."""


class AmbiguousSendError(SendError):
    """The request reached the provider but its answer was lost: it may have been accepted.

    Never retried blindly: the row waits for the provider's `processed` event.
    """


class PermanentSendError(SendError):
    """Not worth retrying: the provider refused the message (400, 401, 403, 413)."""


class IllegalMove(DripError):
    """A delivery move the transition table does not allow was asked for: a bug, never data."""


class OperationRefused(DripError):
    """An operator's action was refused; the message says why (e.g. the contact unsubscribed)."""


class HashKeyMismatch(DripError):
    """The service's address hash key is not the one the database's hashes were made with."""
