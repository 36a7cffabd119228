"""An email as a dark-mode inbox shows it: its own `prefers-color-scheme: dark` rules applied.

Apple Mail, iOS Mail and others honour a message's `@media (prefers-color-scheme: dark)`
block on a dark canvas. `dark_variant` takes those rules out of their media block and adds
them, in force, at the end of the head, with `color-scheme: dark` on the root so that what
the email leaves unset (canvas, text) takes the browser's dark defaults. An email that
declares no dark support (no such block, no `color-scheme` naming dark) is shown as it is:
clients that honour the declaration show it light. The studio shows that document in its
dark frame, and the contrast check inlines it and measures it, so both see one dark mode.
Clients that invert colours on their own (Gmail's and Outlook's apps) are not imitated:
their result depends on each app's undocumented heuristics.
"""

from __future__ import annotations

import re

import css_inline

#: The start of a dark-mode media block: `@media (prefers-color-scheme: dark) {` and variants
#: such as `@media screen and (prefers-color-scheme:dark) {`.
_DARK_MEDIA = re.compile(r"@media[^{]*prefers-color-scheme\s*:\s*dark[^{]*\{", re.IGNORECASE)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
#: A `color-scheme` that names dark: `<meta name="color-scheme" content="light dark">` or CSS.
_DECLARES_DARK = re.compile(
    r"""color-scheme["']?\s*(?:content\s*=\s*["']|:)[^"';}>]*\bdark\b""", re.IGNORECASE
)
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


def dark_rules(html: str) -> str:
    """The CSS inside every dark-mode media block of `html`, unwrapped."""
    rules = []
    for match in _DARK_MEDIA.finditer(html):
        depth, start = 1, match.end()
        index = start
        while index < len(html) and depth:
            if html[index] == "{":
                depth += 1
            elif html[index] == "}":
                depth -= 1
            index += 1
        rules.append(html[start : index - 1].strip())
    return "\n".join(rules)


def supports_dark(html: str) -> bool:
    """Whether `html` declares a dark mode: a dark media block or a `color-scheme` with dark."""
    return bool(_DARK_MEDIA.search(html) or _DECLARES_DARK.search(html))


def dark_variant(html: str) -> str:
    """`html` with its dark-mode rules in force and a dark colour scheme; unchanged when it
    declares no dark mode."""
    if not supports_dark(html):
        return html
    style = f"<style>:root {{ color-scheme: dark; }}\n{dark_rules(html)}\n</style>"
    head_end = _HEAD_END.search(html)
    if head_end is None:
        return style + html
    return html[: head_end.start()] + style + html[head_end.start() :]


def dark_inlined(html: str) -> str:
    """`dark_variant(html)` with its rules inlined, for checks that read inline styles."""
    return _INLINER.inline(dark_variant(html))
