"""Render one step of a sequence for one contact: subject, HTML (CSS inlined) and text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import css_inline
from jinja2 import Template, TemplateError, TemplateNotFound
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from drip.errors import RenderError
from drip.render.environment import build_environment
from drip.render.reuse import Shape, SharedBody, Tokens, fill, plain, shape_of
from drip.render.text import html_to_text, text_footer
from drip.render.tracking import LinkMaker, rewrite_links

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)

#: Rendered shapes kept per renderer (a step times the distinct contact fields it reads).
MAX_SHAPED = 4096


class Step(Protocol):
    """What the renderer reads of a step (a sequence file's `steps[i]`)."""

    @property
    def id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def preheader(self) -> str | None: ...


class Sender(Protocol):
    """What templates see as `sender`: the sequence's from address."""

    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str | None: ...


class Sequence(Protocol):
    """What the renderer reads of a sequence; the rendering needs nothing else of its file."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def from_(self) -> Sender: ...
    @property
    def layout(self) -> str: ...
    @property
    def utm(self) -> Utm | None: ...


class Utm(Protocol):
    """A sequence's `utm:` templates (`drip.sequences.definition.Utm`)."""

    def templates(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class TemplateContact:
    """What templates see as `contact`."""

    email: str
    first_name: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedEmail:
    """One email's subject, HTML and text for `build_email`, with what reuse and tracking need."""

    subject: str
    html: str
    text: str
    #: Where each tracked link leads, by its index (empty when links are not tracked).
    targets: tuple[str, ...] = ()
    #: Set when the body was reused (see `drip.render.reuse`); not part of the email itself.
    shared: SharedBody | None = field(default=None, compare=False)


def text_template_names(template: str) -> tuple[str, ...]:
    """Where a step's own text part may be: `name.txt` or `name.html.txt` beside the HTML."""
    path = Path(template)
    return (str(path.with_suffix(".txt")), f"{template}.txt")


def clean_header(value: str) -> str:
    """One header line: CR, LF and other control characters folded to spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


class Renderer:
    """Renders sequences whose templates live under one folder; compiled templates are cached."""

    def __init__(self, templates_dir: Path, *, postal_address: str, reuse: bool = True) -> None:
        self.templates_dir = templates_dir
        self.postal_address = postal_address
        self.environment = build_environment(templates_dir)
        self._subjects: dict[str, Template] = {}
        self._text_templates: dict[str, str | None] = {}
        self.reuse = reuse
        self._tokens = Tokens()
        self._shapes: dict[tuple[str, str, str, str, str], Shape | None] = {}
        self._shaped: dict[tuple[object, ...], RenderedEmail] = {}

    def render(
        self,
        sequence: Sequence,
        step: Step,
        contact: TemplateContact,
        *,
        unsubscribe_url: str,
        links: dict[str, str] | None = None,
        own_url: str | None = None,
        track: LinkMaker | None = None,
    ) -> RenderedEmail:
        """Render `step` for `contact`; raise RenderError naming the template and the problem.

        The sequence's `utm:` tags go on outbound links, and `track(index, target)` (when
        given) makes each tracked link (`drip.render.tracking`); links under `own_url`,
        the unsubscribe link and `links` are left alone. A step whose templates allow it is
        rendered once per distinct input (`reuse`)."""
        links = links or {}
        shape = self._shape(sequence, step) if self.reuse else None

        def in_full() -> RenderedEmail:
            return self._render(
                sequence,
                step,
                contact,
                unsubscribe_url=unsubscribe_url,
                links=links,
                own_url=own_url,
                track=track,
            )

        if shape is None or not plain([unsubscribe_url, *links.values()]):
            return in_full()
        # Everything the templates see, but the links (tokens) and the contact fields unread.
        key = (
            *self._shape_key(sequence, step),
            sequence.name,
            sequence.from_.email,
            sequence.from_.name,
            step.preheader,
            tuple(links),
            sequence.utm,
            own_url,
            track is not None,
            *(getattr(contact, name) for name in shape.fields),
        )
        link_tokens = self._tokens.links(links)
        shaped = self._shaped.get(key)
        if shaped is None:
            if len(self._shaped) >= MAX_SHAPED:
                self._shaped.clear()
            shaped = self._shaped[key] = self._render(
                sequence,
                step,
                contact,
                unsubscribe_url=self._tokens.unsubscribe,
                links=link_tokens,
                own_url=own_url,
                track=None if track is None else lambda index, _: self._tokens.click(index),
            )
        tracked = {}
        if track is not None:
            tracked = {
                self._tokens.click(index): track(index, target)
                for index, target in enumerate(shaped.targets)
            }
            if not plain(tracked.values()):
                return in_full()
        replacements = (
            {self._tokens.unsubscribe: unsubscribe_url}
            | {link_tokens[name]: value for name, value in links.items()}
            | tracked
        )
        return RenderedEmail(
            subject=fill(shaped.subject, replacements),
            html=fill(shaped.html, replacements),
            text=fill(shaped.text, replacements),
            targets=shaped.targets,
            shared=SharedBody(key, shaped.html, shaped.text, replacements),
        )

    def _shape(self, sequence: Sequence, step: Step) -> Shape | None:
        """Whether (and by which contact fields) a step's rendering may be reused; worked
        out once per step from its templates' syntax trees."""
        text_template = self._text_template(step.template)
        key = self._shape_key(sequence, step)
        if key not in self._shapes:
            try:
                sources = [step.subject] + [
                    self.environment.loader.get_source(self.environment, name)[0]  # type: ignore[union-attr]
                    for name in (step.template, sequence.layout, text_template)
                    if name is not None
                ]
                self._shapes[key] = shape_of(self.environment, sources)
            except TemplateError:
                self._shapes[key] = None  # rendered in full, which names the problem
        return self._shapes[key]

    @staticmethod
    def _shape_key(sequence: Sequence, step: Step) -> tuple[str, str, str, str, str]:
        return (sequence.id, step.id, step.template, step.subject, sequence.layout)

    def _render(
        self,
        sequence: Sequence,
        step: Step,
        contact: TemplateContact,
        *,
        unsubscribe_url: str,
        links: dict[str, str],
        own_url: str | None,
        track: LinkMaker | None,
    ) -> RenderedEmail:
        context: dict[str, Any] = {
            "contact": contact,
            "sequence": {"id": sequence.id, "name": sequence.name},
            "step": {"id": step.id, "preheader": step.preheader or ""},
            "sender": sequence.from_,
            "unsubscribe_url": unsubscribe_url,
            "postal_address": self.postal_address,
            "links": links,
        }
        where = step.template
        try:
            subject = clean_header(self._subject(step.subject).render(context))
            if not subject:
                raise RenderError(f"{sequence.id}/{step.id}: the subject renders empty")
            context["subject"] = subject
            content = self.environment.get_template(step.template).render(context)
            where = sequence.layout
            html = self.environment.get_template(sequence.layout).render(
                context,
                content=Markup(content),  # noqa: S704 - rendered by the autoescaping sandbox
            )
            where = f"{step.template} (text part)"
            text = self._render_text(step, context, content, unsubscribe_url)
            where = "utm"
            utm = self._utm(sequence, context)
        except TemplateNotFound as exc:
            raise RenderError(f"{where}: template {exc.name!r} not found") from exc
        except SecurityError as exc:
            raise RenderError(f"{where}: refused by the sandbox: {exc}") from exc
        except TemplateError as exc:
            raise RenderError(f"{where}: {exc}") from exc
        except Exception as exc:  # e.g. 1 // 0 in a template: this contact's data, not a bug
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from exc
        keep = [unsubscribe_url, *links.values(), *([own_url.rstrip("/") + "/"] if own_url else [])]
        out = rewrite_links(_INLINER.inline(html), text, utm=utm, track=track, keep=keep)
        return RenderedEmail(subject=subject, html=out.html, text=out.text, targets=out.targets)

    def _utm(self, sequence: Sequence, context: dict[str, Any]) -> dict[str, str]:
        """The sequence's UTM values for this step: rendered from `sequence` and `step` only."""
        if sequence.utm is None:
            return {}
        scope = {"sequence": context["sequence"], "step": context["step"]}
        values = {
            name: clean_header(self._subject(template).render(scope))
            for name, template in sequence.utm.templates().items()
        }
        return {name: value for name, value in values.items() if value}

    def _subject(self, source: str) -> Template:
        """The compiled subject template, compiled once per distinct subject."""
        compiled = self._subjects.get(source)
        if compiled is None:
            compiled = self._subjects[source] = self.environment.from_string(source)
        return compiled

    def _text_template(self, template: str) -> str | None:
        """The name of a step's own text template, if it has one; looked up once."""
        if template not in self._text_templates:
            self._text_templates[template] = next(
                (n for n in text_template_names(template) if (self.templates_dir / n).is_file()),
                None,
            )
        return self._text_templates[template]

    def _render_text(
        self, step: Step, context: dict[str, Any], html_content: str, unsubscribe_url: str
    ) -> str:
        text_template = self._text_template(step.template)
        if text_template is not None:
            body = self.environment.get_template(text_template).render(context)
        else:
            body = html_to_text(html_content)
        return (
            body.rstrip()
            + "\n"
            + text_footer(unsubscribe_url=unsubscribe_url, postal_address=self.postal_address)
        )
