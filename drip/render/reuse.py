"""Render a step once per distinct input, not once per email.

Most of an email does not depend on who gets it: what does is the contact fields its
templates read and the contact's own links (`unsubscribe_url`, `links.*`, signed per
contact). When every template of a step (subject, content, layout, text) uses those links
only as plain output (`{{ links.download }}`: no filter, test or condition on them) and
reads the contact only through `contact.email`, `contact.first_name` or
`contact.timezone`, the step is rendered once per distinct value of the fields it reads,
with stand-in tokens where the links go; each email then gets its links put in place of
the tokens. Tracked links (`drip.render.tracking`) go in the same way: the shared render
has a token per outbound link, and each email gets its own signed `/l/` link in its place.
A link with a character HTML would escape, or a template that uses the links any other
way, is rendered in full: the result is the same byte for byte.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from jinja2 import Environment, nodes

#: Contact fields a reusable step may read; their values are part of what it is rendered for.
CONTACT_FIELDS = frozenset({"email", "first_name", "timezone"})

#: A link that reads the same escaped for HTML, in plain text and in a header.
_PLAIN = re.compile(r"[A-Za-z0-9:/._~?=%+-]*\Z")

#: Statements whose templates this analysis does not follow.
_OPAQUE = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport)


@dataclass(frozen=True)
class SharedBody:
    """What a reused render shares with every email of the same input: the body with the
    tokens, and this email's values for them. A provider that substitutes per recipient
    can carry many such emails in one request."""

    key: tuple[object, ...]
    html: str
    text: str
    substitutions: dict[str, str]


@dataclass(frozen=True)
class Shape:
    """How a step may be reused: the contact fields its templates read."""

    fields: tuple[str, ...]


def shape_of(environment: Environment, sources: Iterable[str]) -> Shape | None:
    """The step's shape when its templates allow reuse, else None."""
    fields: set[str] = set()
    for source in sources:
        found = _fields_if_reusable(environment.parse(source))
        if found is None:
            return None
        fields |= found
    return Shape(tuple(sorted(fields)))


def _fields_if_reusable(tree: nodes.Template) -> set[str] | None:
    fields: set[str] = set()
    for node, parent, grandparent in _walk(tree, None, None):
        if isinstance(node, _OPAQUE):
            return None
        if not isinstance(node, nodes.Name) or node.name not in (
            "contact",
            "links",
            "unsubscribe_url",
        ):
            continue
        if node.ctx != "load":
            return None  # a template assigning one of these names
        if node.name == "contact":
            if not (isinstance(parent, nodes.Getattr) and parent.attr in CONTACT_FIELDS):
                return None
            fields.add(parent.attr)
        elif node.name == "unsubscribe_url":
            if not isinstance(parent, nodes.Output):
                return None
        elif not (isinstance(parent, nodes.Getattr) and isinstance(grandparent, nodes.Output)):
            return None
    return fields


def _walk(
    node: nodes.Node, parent: nodes.Node | None, grandparent: nodes.Node | None
) -> Iterator[tuple[nodes.Node, nodes.Node | None, nodes.Node | None]]:
    yield node, parent, grandparent
    for child in node.iter_child_nodes():
        yield from _walk(child, node, parent)


class Tokens:
    """Stand-ins for one contact's links, unique to this process (none is a prefix of another)."""

    def __init__(self) -> None:
        self._prefix = f"dripslot{secrets.token_hex(6)}x"

    @property
    def unsubscribe(self) -> str:
        """The stand-in for the unsubscribe link in a shared body."""
        return f"{self._prefix}unsubscribez"

    def links(self, names: Iterable[str]) -> dict[str, str]:
        """A stand-in for each per-contact link named in `names`."""
        return {name: f"{self._prefix}link{n}z" for n, name in enumerate(names)}

    def click(self, index: int) -> str:
        """The stand-in for tracked link `index` (`drip.render.tracking`)."""
        return f"{self._prefix}click{index}z"


def plain(values: Iterable[str]) -> bool:
    """Whether every link reads the same in HTML, text and headers."""
    return all(_PLAIN.match(value) for value in values)


def fill(shaped: str, replacements: dict[str, str]) -> str:
    """One part of one contact's email: its links in place of the tokens."""
    for token, value in replacements.items():
        shaped = shaped.replace(token, value)
    return shaped
