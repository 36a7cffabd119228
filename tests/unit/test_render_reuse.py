"""A step rendered once per distinct input gives every contact exactly the email a full
render gives them, and a template that uses its links any other way is rendered in full."""

from __future__ import annotations

from pathlib import Path

import pytest

from drip.render.renderer import Renderer, TemplateContact
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence, Step
from drip.unsubscribe.links import Links
from drip.unsubscribe.tokens import TokenSigner
from tests.conftest import REPO

CONTACTS = [
    TemplateContact(email="ann@example.com"),
    TemplateContact(email="ben@example.com", first_name="Ben"),
    TemplateContact(email="cal@example.com", first_name="Ben"),
    TemplateContact(email="dee@example.com", first_name='<b>Dee</b> & "Co"'),
    TemplateContact(email="eve@example.com", first_name="Ève", timezone="Europe/Paris"),
]
LINKS = Links(signer=TokenSigner("reuse-test"), base_url="https://drip.example.com")


def every_step(sequence: Sequence) -> list[Step]:
    return [*sequence.steps, sequence.confirmation_step()]


def render_both(
    reused: Renderer, full: Renderer, sequence: Sequence, step: Step, contact: TemplateContact
) -> tuple[object, object]:
    public_id = contact.email.split("@")[0] * 4
    url = LINKS.footer_unsubscribe_url(LINKS.unsubscribe_url(public_id), sequence.id)
    links = LINKS.for_contact(public_id, sequence, step.id)
    return (
        reused.render(sequence, step, contact, unsubscribe_url=url, links=links),
        full.render(sequence, step, contact, unsubscribe_url=url, links=links),
    )


@pytest.mark.parametrize("folder", [REPO / "sequences", REPO / "tests" / "data" / "sequences"])
def test_reused_renders_equal_full_renders_byte_for_byte(folder: Path) -> None:
    catalog = SequenceCatalog.load(folder, postal_address="1 Example Street")
    full = Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street", reuse=False)
    compared = 0
    for loaded in catalog:
        for step in every_step(loaded.definition):
            for _ in range(2):  # the first render fills the cache, the second reads it
                for contact in CONTACTS:
                    reused, expected = render_both(
                        catalog.renderer, full, loaded.definition, step, contact
                    )
                    assert reused == expected, (loaded.definition.id, step.id, contact)
                    compared += 1
    assert compared >= 2 * len(CONTACTS) * 4


def test_the_sample_series_is_rendered_once_per_step_and_name() -> None:
    catalog = SequenceCatalog.load(REPO / "sequences", postal_address="1 Example Street")
    sequence = catalog.get("executive-resume").definition
    full = Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street", reuse=False)
    catalog.renderer._shaped.clear()  # loading rendered the sample contacts
    for step in sequence.steps:
        for contact in CONTACTS:
            render_both(catalog.renderer, full, sequence, step, contact)
    # Step 1 greets by first name (four distinct: none, Ben, Dee's, Ève); the other nine
    # read nothing of the contact: once each
    per_step = [k[1] for k in catalog.renderer._shaped if k[0] == "executive-resume"]
    assert per_step.count("template-delivery") == 4
    assert all(per_step.count(step.id) == 1 for step in sequence.steps[1:])


@pytest.mark.parametrize(
    "use",
    [
        "{% if links.download %}<a href='{{ links.download }}'>get it</a>{% endif %}",
        "<a href='{{ links.download | lower }}'>get it</a>",
        "<a href='{{ links['download'] }}'>get it</a>",
        "{% set url = links.download %}<a href='{{ url }}'>get it</a>",
        "<p>{{ contact.attributes }}</p>",
        "{% include 'quick/second.html' %}",
    ],
)
def test_templates_that_use_links_or_contacts_otherwise_are_rendered_in_full(
    sequences_dir: Path, use: str
) -> None:
    (sequences_dir / "templates" / "quick" / "welcome.html").write_text(use)
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    sequence = catalog.get("quick").definition
    full = Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street", reuse=False)
    for contact in CONTACTS:
        reused, expected = render_both(catalog.renderer, full, sequence, sequence.steps[0], contact)
        assert reused == expected
    assert not [k for k in catalog.renderer._shaped if k[1] == "welcome"]


def test_a_link_html_would_escape_is_rendered_in_full(sequences_dir: Path) -> None:
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    sequence = catalog.get("quick").definition
    odd = "https://drip.example.com/unsubscribe/t?a=1&b=<2>"
    catalog.renderer._shaped.clear()  # loading rendered the sample contacts
    rendered = catalog.renderer.render(
        sequence, sequence.steps[1], CONTACTS[0], unsubscribe_url=odd, links={"download": "d"}
    )
    full = Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street", reuse=False)
    assert rendered == full.render(
        sequence, sequence.steps[1], CONTACTS[0], unsubscribe_url=odd, links={"download": "d"}
    )
    assert f"Unsubscribe: {odd}\n" in rendered.text
    assert not [k for k in catalog.renderer._shaped if k[1] == "second"]
