"""Outbound links of an email: UTM tags first, then click tracking.

Which links: the `href` of every `<a>` and `<area>` tag of the rendered HTML whose URL is
absolute `http(s)`, except drip's own links: the contact's unsubscribe, download and
confirm links (and anything under `DRIP_BASE_URL`). `mailto:`, `tel:`, relative links and
anchors are left as they are. The text part gets the same treatment for every URL in it
that is also an outbound link of the HTML, so both parts carry the same links.

- `utm:` adds `utm_source`, `utm_medium`, `utm_campaign`, `utm_content` and `utm_term`
  (those the sequence gives) to an outbound link that carries no `utm_` parameter at all:
  one the template tagged by hand is never tagged twice. The existing query string is kept
  as written and the new parameters appended after it; the fragment stays last.
- `track_clicks:` numbers the outbound links in document order from 0 and replaces each
  with `{DRIP_BASE_URL}/l/{token}`, where the token is signed and says
  `[delivery_id, index, url]` (`drip.unsubscribe.tokens`): `/l/` redirects only to a URL
  we wrote into that email, so it is no open redirect, and needs no lookup (nor a write
  before the provider call) to find it. The URL carries its UTM tags, so the redirect
  target has them.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: The `href` attribute of an `<a>` or `<area>` tag, with its quote.
_HREF = re.compile(r"""(<(?:a|area)\b[^>]*?\shref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)

#: A URL in a plain-text part: up to whitespace or a bracket that closes it.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'\[\]()]+""", re.I)

#: Characters a sentence may put right after a URL in text.
_TRAILING = ".,;:!?"

#: Makes the link put in place of outbound link `index`, which leads to `target`.
LinkMaker = Callable[[int, str], str]


@dataclass(frozen=True)
class Rewritten:
    """Both parts with their outbound links rewritten, and where each tracked link leads."""

    html: str
    text: str
    targets: tuple[str, ...]


def is_outbound(url: str, *, keep: Iterable[str] = ()) -> bool:
    """Whether `url` is an absolute http(s) link that is not one of `keep` (nor under one)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return False
    return not any(url.startswith(prefix) for prefix in keep if prefix)


def add_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with the `utm` parameters appended, unless it already carries a `utm_` one."""
    if not utm:
        return url
    parts = urlsplit(url)
    existing = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower().startswith("utm_") for name, _ in existing):
        return url
    added = urlencode(list(utm.items()))
    query = f"{parts.query.rstrip('&')}&{added}" if parts.query.rstrip("&") else added
    return urlunsplit(parts._replace(query=query))


def rewrite_links(
    html: str,
    text: str,
    *,
    utm: Mapping[str, str],
    track: LinkMaker | None,
    keep: Iterable[str] = (),
) -> Rewritten:
    """The email's parts with UTM tags added and, when `track` is given, every outbound link
    replaced by `track(index, target)`; `keep` lists links (and prefixes) left alone."""
    kept = tuple(keep)
    outgoing: dict[str, str] = {}
    targets: list[str] = []

    def replace(match: re.Match[str]) -> str:
        raw = html_lib.unescape(match.group(3))
        if not is_outbound(raw, keep=kept):
            return match.group(0)
        target = add_utm(raw, utm)
        if track is not None:
            new = track(len(targets), target)
            targets.append(target)
        else:
            new = target
        outgoing.setdefault(raw, new)
        if new == raw:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(new, quote=True)}{match.group(2)}"

    html = _HREF.sub(replace, html)
    if outgoing:
        text = _TEXT_URL.sub(lambda m: _in_text(m.group(0), outgoing), text)
    return Rewritten(html, text, tuple(targets))


def _in_text(url: str, outgoing: Mapping[str, str]) -> str:
    """A URL of the text part as it goes out: the HTML's rewrite of the same link."""
    if url in outgoing:
        return outgoing[url]
    bare = url.rstrip(_TRAILING)
    if bare != url and bare in outgoing:
        return outgoing[bare] + url[len(bare) :]
    return url
