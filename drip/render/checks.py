"""What a template and a rendered email must satisfy before anything is sent.

The catalog (`drip.sequences.catalog`) runs these on every template a sequence names and on
every step rendered for sample contacts, and reports what they find with the sequence
file's line. They live here, beside the renderer, and know nothing of sequence files.

The footer rule is the one the law asks of every marketing email: the HTML part has a
working unsubscribe link (an `<a href>` whose target is the contact's unsubscribe URL,
not the URL as text, and not a link hidden in a comment) and the sender's postal address,
and so does the text part.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import Environment, TemplateSyntaxError, meta, nodes

from drip.errors import Problem
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
