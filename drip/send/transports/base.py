"""The interface every transport implements."""

from __future__ import annotations

from typing import Protocol

from drip.send.message import OutgoingEmail


class Transport(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send `email`; return the provider's message id.

        Raise TransientSendError when a later attempt may succeed and PermanentSendError
        when it cannot.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
