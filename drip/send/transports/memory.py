"""A transport that keeps messages in memory: the stub twin of the real ones."""

from __future__ import annotations

import threading

from drip.send.message import OutgoingEmail


class MemoryTransport:
    """Keeps every email in a list: the twin of a real transport, for tests."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self._lock = threading.Lock()

    def send(self, email: OutgoingEmail) -> str:
        """Keep `email`; return an id unique in this transport."""
        with self._lock:
            self.sent.append(email)
            return f"memory-{len(self.sent)}"

    def close(self) -> None:
        """Nothing to close."""
        pass
