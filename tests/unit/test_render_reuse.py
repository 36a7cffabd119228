"""A step rendered once per distinct input gives every contact exactly the email a full
render gives them, and a template that uses its links any other way is rendered in full."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from drip.render.renderer import Renderer, TemplateContact
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence, Step, Utm
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


#: Outbound links a tracked step carries: plain, with a query and an entity, a fragment,
#: one tagged by hand, one repeated, and links that are not tracked.
TRACKED_BODY = (
    '<p>Hi {{ contact.first_name or "there" }}: <a href="https://example.org/guide">guide</a>,'
    ' <a href="https://example.org/s?q=cv&amp;page=2#top">search</a>,'
    ' <a href="https://example.org/p?utm_source=own">tagged</a>,'
    ' <a href="https://example.org/guide">again</a>,'
    ' <a href="mailto:coach@example.com">mail</a>, <a href="/relative">relative</a>.</p>\n'
)


def tracked(sequence: Sequence) -> Sequence:
    return sequence.model_copy(
        update={
            "track_clicks": True,
            "utm": Utm(source="drip", medium="email", content="{{ step.id }}"),
        }
    )


@pytest.mark.parametrize("folder", [REPO / "sequences", REPO / "tests" / "data" / "sequences"])
def test_tracked_links_reused_equal_full_renders_byte_for_byte(
    folder: Path, tmp_path: Path
) -> None:
    # Given every sample step with an outbound link of each kind, tracked and UTM-tagged
    copy = tmp_path / "sequences"
    shutil.copytree(folder, copy)
    for template in (copy / "templates").rglob("*.html"):
        if "layouts" not in template.parts:
            template.write_text(TRACKED_BODY + template.read_text())
    catalog = SequenceCatalog.load(copy, postal_address="1 Example Street")
    full = Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street", reuse=False)
    compared = shared = 0
    for loaded in catalog:
        sequence = tracked(loaded.definition)
        for delivery_id, step in enumerate(sequence.steps, 100):
            for _ in range(2):
                for contact in CONTACTS:
                    # When each contact's email is rendered from the shared body and in full
                    public_id = contact.email.split("@")[0] * 4
                    kwargs = {
                        "unsubscribe_url": LINKS.footer_unsubscribe_url(
                            LINKS.unsubscribe_url(public_id), sequence.id
                        ),
                        "links": LINKS.for_contact(public_id, sequence, step.id),
                        "own_url": LINKS.base_url,
                        "track": LINKS.click_maker(delivery_id),
                    }
                    reused = catalog.renderer.render(sequence, step, contact, **kwargs)
                    expected = full.render(sequence, step, contact, **kwargs)
                    # Then they are the same bytes, tracked links included
                    assert reused == expected, (sequence.id, step.id, contact)
                    assert len(reused.targets) >= 4  # the four above, and any of its own
                    compared += 1
                    shared += reused.shared is not None
    assert compared >= 2 * len(CONTACTS) * 3
    assert shared >= compared // 2, "tracked steps were not reused"


def test_each_email_gets_its_own_tracked_links_in_both_parts(sequences_dir: Path) -> None:
    welcome = sequences_dir / "templates" / "quick" / "welcome.html"
    welcome.write_text(TRACKED_BODY + '<a href="{{ links.download }}">download</a>\n')
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    sequence = tracked(catalog.get("quick").definition)
    step = sequence.steps[0]
    emails = [
        catalog.renderer.render(
            sequence,
            step,
            CONTACTS[0],
            unsubscribe_url="https://drip.example.com/unsubscribe/x",
            links={"download": "https://drip.example.com/download/quick/t"},
            own_url=LINKS.base_url,
            track=LINKS.click_maker(delivery_id),
        )
        for delivery_id in (1, 2)
    ]
    first, second = emails
    assert first.shared is not None
    assert second.shared is not None
    tracked_first = re.findall(r"https://drip\.example\.com/l/[\w.-]+", first.html)
    assert len(tracked_first) == 4
    assert not set(tracked_first) & set(re.findall(r"/l/[\w.-]+", second.html))
    claims = [LINKS.signer.read_click(url.rsplit("/", 1)[1]) for url in tracked_first]
    assert [(c.delivery_id, c.link_index) for c in claims] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    assert claims[0].url == (
        "https://example.org/guide?utm_source=drip&utm_medium=email&utm_content=welcome"
    )
    # The text part carries the tracked links too (the first of a repeated one), and leaves
    # the download, mailto and unsubscribe links as they are
    assert tracked_first[0] in first.text
    assert tracked_first[1] in first.text
    assert "https://example.org" not in first.text
    assert "https://drip.example.com/download/quick/t" in first.html
    assert "https://drip.example.com/download/quick/t" in first.text
    assert "mailto:coach@example.com" in first.html
    assert 'href="/relative"' in first.html


def test_utm_tags_are_part_of_what_a_shared_render_is_for(sequences_dir: Path) -> None:
    (sequences_dir / "templates" / "quick" / "second.html").write_text(TRACKED_BODY)
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    plain_sequence = catalog.get("quick").definition
    tagged = plain_sequence.model_copy(update={"utm": Utm(source="drip")})
    step = plain_sequence.steps[1]
    url = "https://drip.example.com/unsubscribe/x"
    first = catalog.renderer.render(plain_sequence, step, CONTACTS[0], unsubscribe_url=url)
    second = catalog.renderer.render(tagged, step, CONTACTS[0], unsubscribe_url=url)
    assert first.shared is not None
    assert second.shared is not None
    assert "guide?utm_source" not in first.html
    assert "https://example.org/guide?utm_source=drip" in second.html
