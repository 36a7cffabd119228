"""Structured logs: JSON lines for the production processes, readable lines for `drip run`."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


def configure_logging(*, json: bool, level: str = "INFO") -> None:
    """Route structlog and the standard library's logging through one renderer."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_addresses,
    ]
    structlog.configure(
        # Below the level, a call costs a level check: no timestamp, masking or rendering.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(AccessLogRedaction())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


#: Anything shaped like an address, in any logged value; `%40` is an `@` that a URL encoded.
_ADDRESS = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*?(?:@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)


def mask_address(text: str) -> str:
    """`ann.smith@example.com` (or `ann.smith%40example.com`) -> `a***@example.com`."""
    return _ADDRESS.sub(r"\1***@\2", text)


def mask_addresses(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: no address reaches a log line in full."""
    for key, value in event.items():
        if isinstance(value, str) and ("@" in value or "%40" in value):
            event[key] = mask_address(value)
    return event


#: Path segments that are secrets: unsubscribe, confirmation, download and link tokens.
_TOKEN_IN_PATH = re.compile(r"^(/unsubscribe/|/(?:confirm|download)/[^/?]+/|/l/)[^/?]+")


def redact_path(path: str) -> str:
    """A request path fit for a log: no query string and no token.

    `/admin/contact?token=x&email=a%40b.org` -> `/admin/contact?[redacted]`;
    `/unsubscribe/InRva2Vu.abc` -> `/unsubscribe/[token]`.
    """
    bare, query_mark, _ = path.partition("?")
    return _TOKEN_IN_PATH.sub(r"\1[token]", bare) + ("?[redacted]" if query_mark else "")


class AccessLogRedaction(logging.Filter):
    """Redacts the path of uvicorn's access log lines with `redact_path` (records pass on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument of a `uvicorn.access` record; keep every record."""
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3:
            record.args = (*args[:2], redact_path(str(args[2])), *args[3:])
        return True
