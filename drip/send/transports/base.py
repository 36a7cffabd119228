"""The interface every transport implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from drip.send.message import OutgoingEmail


class Transport(Protocol):
    """Sends one email and returns the provider's message id, or raises a SendError."""

    def send(self, email: OutgoingEmail) -> str:
        """Send `email`; return the provider's message id.

        Raise TransientSendError when a later attempt may succeed and PermanentSendError
        when it cannot.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class GroupTransport(Transport, Protocol):
    """A transport that can send emails sharing a body (`OutgoingEmail.shared`) in one
    request, each recipient with its own values."""

    def send_group(self, emails: Sequence[OutgoingEmail]) -> str:
        """Send all of `emails` or none; one message id and one outcome for all."""
        ...
