"""Rendering: contact data escaped, undefined variables named, both parts, headers clean."""

from pathlib import Path

import pytest

from drip.errors import RenderError, SequenceError
from drip.render.renderer import Renderer, TemplateContact
from drip.sequences.catalog import SequenceCatalog, sample_links

UNSUBSCRIBE = "https://drip.test/unsubscribe/t0ken"


@pytest.fixture
def catalog(sequences_dir: Path) -> SequenceCatalog:
    return SequenceCatalog.load(sequences_dir, postal_address="1 Example Street, Springfield")


def render(catalog: SequenceCatalog, contact: TemplateContact, step: int = 0, renderer=None):  # type: ignore[no-untyped-def]
    sequence = catalog.get("quick").definition
    return (renderer or catalog.renderer).render(
        sequence,
        sequence.steps[step],
        contact,
        unsubscribe_url=UNSUBSCRIBE,
        links=sample_links(sequence),
    )


def test_contact_data_is_escaped_in_html_and_plain_in_text(catalog: SequenceCatalog) -> None:
    email = render(catalog, TemplateContact(email="a@example.com", first_name="<b>Al</b> & Co"))
    assert "Hello &lt;b&gt;Al&lt;/b&gt; &amp; Co" in email.html
    assert "<b>Al</b>" not in email.html
    assert "Hello <b>Al</b> & Co" in email.text or "Hello Al & Co" in email.text


def test_the_footer_carries_the_unsubscribe_link_and_postal_address_in_both_parts(
    catalog: SequenceCatalog,
) -> None:
    email = render(catalog, TemplateContact(email="a@example.com"))
    assert f'href="{UNSUBSCRIBE}"' in email.html
    assert "1 Example Street, Springfield" in email.html
    assert email.text.endswith(f"Unsubscribe: {UNSUBSCRIBE}\n1 Example Street, Springfield\n")


def test_css_is_inlined(catalog: SequenceCatalog) -> None:
    email = render(catalog, TemplateContact(email="a@example.com"))
    assert '<p style="color: #333333;">' in email.html


def test_a_text_template_beside_the_html_is_used_for_the_text_part(
    sequences_dir: Path,
) -> None:
    text_template = sequences_dir / "templates" / "quick" / "second.txt"
    text_template.write_text("The plain second email, {{ contact.email }}.")
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    email = render(catalog, TemplateContact(email="a@example.com"), step=1)
    assert email.text.startswith("The plain second email, a@example.com.\n")


def test_templates_edited_after_loading_are_not_sent_until_checked_again(
    catalog: SequenceCatalog,
) -> None:
    # Given a catalog loaded and checked, then a template edited into one that cannot render
    before = render(catalog, TemplateContact(email="a@example.com"))
    template = catalog.renderer.templates_dir / "quick" / "welcome.html"
    template.write_text("{{ contact.no_such_field }}")
    (template.parent / "welcome.txt").write_text("unchecked text")
    # Then the worker keeps sending what it checked, the text part too
    assert render(catalog, TemplateContact(email="a@example.com")) == before
    # And a new load sees (and refuses) the edit
    with pytest.raises(SequenceError, match="no_such_field"):
        SequenceCatalog.load(catalog.renderer.templates_dir.parent, postal_address="1 Example St")


def unchecked(catalog: SequenceCatalog) -> Renderer:
    """A renderer reading the templates as they are now, past the catalog's load checks."""
    return Renderer(catalog.renderer.templates_dir, postal_address="1 Example Street")


def test_an_undefined_variable_is_named_in_the_error(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text("{{ contact.company }}")
    with pytest.raises(RenderError, match="company"):
        render(catalog, TemplateContact(email="a@example.com"), 2, unchecked(catalog))


def test_the_sandbox_refuses_python_internals_at_render_time(catalog: SequenceCatalog) -> None:
    (catalog.renderer.templates_dir / "quick" / "third.html").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    with pytest.raises(RenderError):
        render(catalog, TemplateContact(email="a@example.com"), 2, unchecked(catalog))


def test_line_breaks_in_a_name_never_reach_the_subject(catalog: SequenceCatalog) -> None:
    email = render(
        catalog, TemplateContact(email="a@example.com", first_name="Eve\r\nBcc: x@evil.test")
    )
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.subject == "Welcome, Eve Bcc: x@evil.test"


@pytest.mark.parametrize("suffix", [".j2", ".htm", ".email", ""])
def test_a_step_template_of_any_extension_escapes_contact_data(
    sequences_dir: Path, suffix: str
) -> None:
    # Given a step template whose name does not end in .html
    (sequences_dir / "templates" / "quick" / f"welcome{suffix}").write_text(
        "<p>Hello {{ contact.first_name or 'friend' }}</p>"
    )
    path = sequences_dir / "quick.yaml"
    path.write_text(path.read_text().replace("quick/welcome.html", f"quick/welcome{suffix}"))
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    # When a subscriber's name is markup, then it is shown, not obeyed
    email = render(catalog, TemplateContact(email="a@example.com", first_name="<b>x</b>"))
    assert "Hello &lt;b&gt;x&lt;/b&gt;" in email.html
    assert "<b>x</b>" not in email.html
    assert "Hello <b>x</b>" in email.text  # the text part is plain text, not HTML


def test_a_plain_text_part_is_not_escaped(sequences_dir: Path) -> None:
    (sequences_dir / "templates" / "quick" / "welcome.txt").write_text(
        "Hello {{ contact.first_name }} & welcome"
    )
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    email = render(catalog, TemplateContact(email="a@example.com", first_name="Ann & <Bo>"))
    assert email.text.startswith("Hello Ann & <Bo> & welcome\n")


@pytest.mark.parametrize(
    ("expression", "refusal"),
    [
        ("'x' * 1000000000", "repeating 1 item(s) 1000000000 times"),
        ("1000000000 * 'x'", "repeating 1 item(s) 1000000000 times"),
        ("[0, 1] * 60000", "repeating 2 item(s) 60000 times"),
        ("10 ** 100000000", "a power of exponent 100000000"),
        ("(2 ** 4000) ** 2", "a power of exponent 2 is larger than 4096 bits"),
        ("(2 ** 4000) * (2 ** 4000)", "the product is larger than 4096 bits"),
    ],
)
def test_the_sandbox_refuses_operators_that_would_exhaust_memory(
    sequences_dir: Path, expression: str, refusal: str
) -> None:
    # Given a template whose arithmetic would build a huge value
    template = sequences_dir / "templates" / "quick" / "third.html"
    template.write_text(f"<p>{{{{ {expression} }}}}</p>")
    # When the sequences are validated, then it is refused by the sandbox, naming the step
    with pytest.raises(SequenceError) as caught:
        SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    (problem,) = caught.value.problems
    assert problem.field == "steps[2]"
    assert "quick/third.html: refused by the sandbox:" in problem.message
    assert refusal in problem.message


def test_the_sandbox_allows_small_arithmetic(sequences_dir: Path) -> None:
    template = sequences_dir / "templates" / "quick" / "third.html"
    template.write_text("<p>{{ '-' * 20 }} {{ 2 ** 10 }} {{ [1] * 3 }} {{ 2.5 * 2 }}</p>")
    catalog = SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    email = render(catalog, TemplateContact(email="a@example.com"), 2)
    assert "-------------------- 1024 [1, 1, 1] 5.0" in email.html


def test_templates_cannot_change_what_they_are_given(sequences_dir: Path) -> None:
    template = sequences_dir / "templates" / "quick" / "third.html"
    template.write_text("<p>{{ contact.attributes.clear() }}</p>")
    with pytest.raises(SequenceError, match="refused by the sandbox"):
        SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
