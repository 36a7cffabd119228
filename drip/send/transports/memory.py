"""A transport that keeps messages in memory: the stub twin of the real ones."""

from __future__ import annotations

import threading

from drip.send.message import OutgoingEmail


class MemoryTransport:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self._lock = threading.Lock()

    def send(self, email: OutgoingEmail) -> str:
        with self._lock:
            self.sent.append(email)
            return f"memory-{len(self.sent)}"

    def close(self) -> None:
        pass
