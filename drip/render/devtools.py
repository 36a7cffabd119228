"""Headless Chromium driven over its DevTools pipe (`--remote-debugging-pipe`), for previews.

The pipe is a pair of file descriptors, 3 (commands in) and 4 (answers and events out),
carrying JSON messages ended by a NUL byte: no port is opened, so nothing else on the
machine can drive the browser. The protocol is what lets a preview turn scripts off
(`Emulation.setScriptExecutionDisabled`), which the `--screenshot` switch cannot do.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from types import TracebackType
from typing import IO, Any

from drip.errors import DripError


class DevToolsError(DripError):
    """Chromium did not answer, answered with an error, or exited."""


class DevToolsPipe:
    """One Chromium process and its DevTools pipe; a context manager that ends the process."""

    def __init__(self, command: list[str], *, log: IO[bytes], timeout: float) -> None:
        self._timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        commands_r, self._commands = os.pipe()
        self._answers, answers_w = os.pipe()

        def to_fds_3_and_4() -> None:
            os.dup2(commands_r, 3)
            os.dup2(answers_w, 4)

        try:
            self._process = subprocess.Popen(
                [*command, "--remote-debugging-pipe"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(3, 4),
                preexec_fn=to_fds_3_and_4,  # only dup2: nothing that a fork could deadlock on
            )
        finally:
            os.close(commands_r)
            os.close(answers_w)

    def __enter__(self) -> DevToolsPipe:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the browser (politely, then by force) and close the pipe."""
        if self._process.poll() is None:
            try:
                self._send("Browser.close", {}, None)
                self._process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._answers):
            with contextlib.suppress(OSError):
                os.close(fd)

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result; raise DevToolsError on an error answer."""
        message_id = self._send(method, params or {}, session)
        while True:
            message = self._receive()
            if message.get("id") == message_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self._events.append(message)

    def wait_for(self, event: str, session: str | None = None) -> dict[str, Any]:
        """The next event named `event` (from `session`, when given)."""
        while True:
            for message in self._events:
                if message["method"] == event and message.get("sessionId") == session:
                    self._events.remove(message)
                    return message
            message = self._receive()
            if "method" in message:
                self._events.append(message)

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data) :]
        return self._next_id

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._answers], [], [], max(left, 0))
            if not ready:
                raise DevToolsError(f"Chromium did not answer within {self._timeout:.0f}s")
            chunk = os.read(self._answers, 1 << 16)
            if not chunk:
                raise DevToolsError("Chromium exited")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message
