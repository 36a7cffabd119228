"""The plain-text part: derived from HTML when a step has no `.txt` template of its own."""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.model.config import ParserConfig

_CONFIG = ParserConfig(display_links=True)
_BLANK_RUNS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """Readable plain text for an HTML fragment, links written out as `[text](url)`."""
    text = get_text(html, _CONFIG)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def text_footer(*, unsubscribe_url: str, postal_address: str) -> str:
    """The footer every text part ends with, as the HTML layout's footer does."""
    return f"\n--\nUnsubscribe: {unsubscribe_url}\n{postal_address}\n"
