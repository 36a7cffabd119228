"""What a template and a rendered email must satisfy before anything is sent.

The catalog (`drip.sequences.catalog`) runs these on every template a sequence names and on
every step rendered for sample contacts, and reports what they find with the sequence
file's line. They live here, beside the renderer, and know nothing of sequence files.

`inbox_findings` adds what inboxes do to a rendered email (Gmail's clipping, images
without alt, links, subject and preheader, the text part, contrast in light and dark mode),
each finding with a severity; the studio and `drip sequences validate` both call it.

The footer rule is the one the law asks of every marketing email: the HTML part has a
working unsubscribe link (an `<a href>` whose target is the contact's unsubscribe URL,
not the URL as text, and not a link hidden in a comment) and the sender's postal address,
and so does the text part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from drip.errors import Problem
from drip.render.contrast import hex_of, low_contrast
from drip.render.darkmode import dark_inlined, supports_dark
from drip.render.renderer import RenderedEmail


def parse_template(
    environment: Environment, path: Path, name: str
) -> tuple[nodes.Template | None, list[Problem]]:
    """The template's syntax tree and its problems (syntax error, access outside the
    sandbox), each with the template's file and line; no tree when it does not parse."""
    try:
        tree = environment.parse(path.read_text(encoding="utf-8"), name, str(path))
    except TemplateSyntaxError as exc:
        return None, [Problem(str(path), exc.lineno, "template", exc.message or "syntax error")]
    return tree, [
        Problem(str(path), line, "template", f"{attr!r} reaches outside the sandbox and is refused")
        for line, attr in unsafe_attributes(tree)
    ]


def unsafe_attributes(tree: nodes.Template) -> list[tuple[int, str]]:
    """Line and name of every attribute or key access to an underscore name (`__class__`...).

    The sandbox refuses such access when it runs; finding it in the syntax tree refuses
    it at validation time too, even in a branch that sample contacts never reach.
    """
    found: list[tuple[int, str]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = str(node.arg.value)
        else:
            continue
        if name.startswith("_"):
            found.append((node.lineno, name))
    return found


def uses_unsubscribe_url(tree: nodes.Template) -> bool:
    """Whether a layout's source reads `unsubscribe_url` at all (the quick static check;
    `footer_problems` checks that the rendered email links to it)."""
    return "unsubscribe_url" in meta.find_undeclared_variables(tree)


def footer_problems(
    email: RenderedEmail, *, unsubscribe_url: str, postal_address: str
) -> list[str]:
    """What the rendered `email` lacks of its footer: a working unsubscribe link and the
    postal address, in the HTML part and in the text part. Empty when nothing is missing."""
    page = _Page()
    page.feed(email.html)
    page.close()
    address = _words(postal_address)
    problems = []
    if unsubscribe_url not in page.links:
        problems.append(
            "its HTML has no working unsubscribe link"
            ' (an <a href="{{ unsubscribe_url }}"> in the layout)'
        )
    if address not in _words(" ".join(page.text)):
        problems.append("its HTML does not show the postal address ({{ postal_address }})")
    if unsubscribe_url not in email.text:
        problems.append("its text part has no unsubscribe link")
    if address not in _words(email.text):
        problems.append("its text part does not show the postal address")
    return problems


#: href and src values in rendered HTML.
_LINKS = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def insecure_links(html: str) -> list[str]:
    """Links that a production email must not carry: anything but https:// or mailto:."""
    return [
        link
        for link in _LINKS.findall(html)
        if not link.startswith(("https://", "mailto:")) and not link.startswith("#")
    ]


def _words(text: str) -> str:
    return " ".join(text.split())


class _Page(HTMLParser):
    """The targets of a page's `<a href>` links and its visible text (comments, scripts and
    styles left out), entities decoded."""

    _HIDDEN = frozenset({"script", "style", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: set[str] = set()
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "a":
            self.links.update(value for name, value in attrs if name == "href" and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


# The inbox checks: what mail clients and filters do to a rendered email. Each finding has
# a severity: an error fails `drip sequences validate` (and shows red in the studio), a
# warning is printed. The README lists them under "For marketers".


class Severity(StrEnum):
    """How much a finding matters: an error fails validation, a warning is printed."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing an inbox check found in a rendered email."""

    check: str
    severity: Severity
    message: str
    #: Where in the email, when it helps to find it (a text excerpt); not part of its identity.
    example: str = field(default="", compare=False)

    def __str__(self) -> str:
        shown = f" ({self.example!r})" if self.example else ""
        return f"{self.severity}: {self.check}: {self.message}{shown}"


#: Gmail clips a message whose HTML is larger than this (about 102 KB) behind "View entire
#: message", and the footer with it.
GMAIL_CLIP_BYTES = 102 * 1024

#: Past this, the email is close enough to Gmail's limit to say so.
GMAIL_WARN_BYTES = 90 * 1024

#: Phones show about this many characters of a subject.
SUBJECT_SHOWN = 60

#: Inboxes show about this many characters of a preheader beside the subject.
PREHEADER_SHOWN = 140

#: A text part with fewer words than this share of the HTML's reads as an afterthought.
TEXT_SHARE = 0.5


def inbox_findings(
    email: RenderedEmail,
    *,
    preheader: str | None,
    unsubscribe_url: str,
    postal_address: str,
    own_links: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Every inbox check on a rendered email: size, images, links, subject, preheader, footer,
    text part and contrast in light and dark mode. `own_links` are the links drip adds
    (unsubscribe, download, confirm): their scheme is the base URL's, checked in production."""
    anatomy = _Anatomy()
    anatomy.feed(email.html)
    anatomy.close()
    found = [
        *_size(email.html),
        *_images(anatomy),
        *_links(anatomy, own_links | {unsubscribe_url}),
        *_subject(email.subject),
        *_preheader(preheader, " ".join(anatomy.text)),
        *(
            Finding("footer", Severity.ERROR, message)
            for message in footer_problems(
                email, unsubscribe_url=unsubscribe_url, postal_address=postal_address
            )
        ),
        *_text_part(email, " ".join(anatomy.text), unsubscribe_url, postal_address),
        *_contrast(email.html),
    ]
    return found


def _size(html: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    kb = f"{size / 1024:.1f} KB"
    if size > GMAIL_CLIP_BYTES:
        return [
            Finding(
                "gmail-clipping",
                Severity.ERROR,
                f"the HTML is {kb}: Gmail clips a message over 102 KB, footer included",
            )
        ]
    if size > GMAIL_WARN_BYTES:
        return [
            Finding(
                "gmail-clipping",
                Severity.WARNING,
                f"the HTML is {kb}, near the 102 KB past which Gmail clips a message",
            )
        ]
    return []


def _images(anatomy: _Anatomy) -> list[Finding]:
    return [
        Finding(
            "image-alt",
            Severity.ERROR,
            f"image {src or '(no src)'!r} has no alt text"
            ' (describe it, or alt="" for a decorative image)',
        )
        for src, alt in anatomy.images
        if alt is None
    ]


def _links(anatomy: _Anatomy, own: frozenset[str]) -> list[Finding]:
    found = []
    for href, text in anatomy.anchors:
        target = (href or "").strip()
        shown = " ".join(text.split())
        if target in ("", "#"):
            found.append(
                Finding("empty-link", Severity.ERROR, f"link {shown!r} goes nowhere ({target!r})")
            )
            continue
        if target not in own and target.lower().startswith("http://"):
            found.append(
                Finding("insecure-link", Severity.WARNING, f"link {target!r} is not https")
            )
        elif target not in own and not target.lower().startswith(("https://", "mailto:", "tel:")):
            found.append(
                Finding(
                    "insecure-link",
                    Severity.WARNING,
                    f"link {target!r} is not an https, mailto or tel link",
                )
            )
        shown_url = _url_in(shown)
        if shown_url and _bare(shown_url) != _bare(target):
            found.append(
                Finding(
                    "link-text-url",
                    Severity.WARNING,
                    f"link text shows {shown_url!r} but goes to {target!r}"
                    " (filters read this as phishing)",
                )
            )
    return found


def _url_in(text: str) -> str | None:
    match = re.fullmatch(r"(?:https?://)?(?:www\.)?[\w-]+(?:\.[\w-]+)+(?:[/?#]\S*)?", text)
    return text if match and "." in text else None


def _bare(url: str) -> str:
    """A URL without scheme, `www.` or a trailing slash, for comparing what text shows."""
    url = re.sub(r"^[a-z]+://", "", url.strip().lower())
    return url.removeprefix("www.").rstrip("/")


def _subject(subject: str) -> list[Finding]:
    found = []
    if len(subject) > SUBJECT_SHOWN:
        found.append(
            Finding(
                "subject-length",
                Severity.WARNING,
                f"the subject is {len(subject)} characters; phones show about {SUBJECT_SHOWN}",
            )
        )
    # All capitals, or mostly shouted words; a few acronyms (CV, USA) are not shouting.
    words = re.findall(r"[^\W\d_]{2,}", subject)
    letters = [c for c in subject if c.isalpha()]
    shouting = [w for w in words if w.isupper()]
    if (len(letters) >= 5 and all(c.isupper() for c in letters)) or (
        len(shouting) >= 2 and len(shouting) * 2 > len(words)
    ):
        found.append(
            Finding("subject-capitals", Severity.WARNING, "the subject is written in capitals")
        )
    return found


def _preheader(preheader: str | None, hidden_and_shown: str) -> list[Finding]:
    if not preheader or not preheader.strip():
        return [
            Finding(
                "preheader",
                Severity.WARNING,
                "no preheader: inboxes show the email's first words beside the subject instead",
            )
        ]
    found = []
    if len(preheader) > PREHEADER_SHOWN:
        found.append(
            Finding(
                "preheader",
                Severity.WARNING,
                f"the preheader is {len(preheader)} characters; inboxes show about"
                f" {PREHEADER_SHOWN}",
            )
        )
    if _words(preheader) not in _words(hidden_and_shown):
        found.append(
            Finding(
                "preheader",
                Severity.WARNING,
                "the preheader is not in the HTML (the layout shows {{ step.preheader }})",
            )
        )
    return found


def _text_part(
    email: RenderedEmail, html_text: str, unsubscribe_url: str, postal_address: str
) -> list[Finding]:
    body = email.text
    for part in (unsubscribe_url, postal_address, "Unsubscribe:"):
        body = body.replace(part, " ")
    body_words = len(re.findall(r"\w+", body.replace("--", " ")))
    html_words = len(re.findall(r"\w+", html_text.replace(postal_address, " ")))
    if body_words == 0:
        return [Finding("text-part", Severity.ERROR, "the text part is empty")]
    if html_words and body_words < TEXT_SHARE * html_words:
        return [
            Finding(
                "text-part",
                Severity.WARNING,
                f"the text part has {body_words} words, the HTML {html_words}:"
                " readers of plain text miss most of it",
            )
        ]
    return []


def _contrast(html: str) -> list[Finding]:
    found = []
    modes = [("light", html)] + [("dark", dark_inlined(html))] * supports_dark(html)
    for mode, page in modes:
        for run in low_contrast(page, mode=mode):
            found.append(
                Finding(
                    "contrast",
                    Severity.ERROR,
                    f"{mode} mode: {hex_of(run.color)} on {hex_of(run.background)} is"
                    f" {run.ratio:.2f}:1, below WCAG AA {run.required:g}:1",
                    _excerpt(run.text),
                )
            )
    return found


def _excerpt(text: str, length: int = 40) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


class _Anatomy(HTMLParser):
    """What the inbox checks read of a page: links with their text, images with their alt,
    and its text outside the head (a hidden preheader included)."""

    _HIDDEN = frozenset({"script", "style", "title", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str | None, str]] = []
        self.images: list[tuple[str | None, str | None]] = []
        self.text: list[str] = []
        self._open: list[tuple[str | None, list[str]]] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "a":
            self._open.append((values.get("href"), []))
        elif tag == "img":
            self.images.append((values.get("src"), values.get("alt")))
            if self._open and values.get("alt"):
                self._open[-1][1].append(values.get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag == "a" and self._open:
            href, text = self._open.pop()
            self.anchors.append((href, "".join(text)))

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self.text.append(data)
        for _, text in self._open:
            text.append(data)
