"""The inbox checks, each on a small email that fails it and on one that passes."""

from __future__ import annotations

import pytest

from drip.render.checks import (
    GMAIL_CLIP_BYTES,
    GMAIL_WARN_BYTES,
    Finding,
    Severity,
    inbox_findings,
)
from drip.render.contrast import contrast_ratio, low_contrast, parse_color, text_runs
from drip.render.darkmode import dark_inlined, dark_rules, dark_variant, supports_dark
from drip.render.renderer import RenderedEmail

UNSUBSCRIBE = "https://example.com/unsubscribe/token?sequence=s"
ADDRESS = "The Resume Studio, 100 Example Street, Springfield, USA"
FOOTER = f'<p><a href="{UNSUBSCRIBE}">Unsubscribe</a> {ADDRESS}</p>'
BODY = "<p>Write the title you want at the top of the page, then one result per line.</p>"
TEXT = (
    "Write the title you want at the top of the page, then one result per line.\n"
    f"\n--\nUnsubscribe: {UNSUBSCRIBE}\n{ADDRESS}\n"
)


def email(
    body: str = BODY,
    *,
    subject: str = "One result per line",
    text: str = TEXT,
    head: str = "",
    preheader: str = "Results, not duties.",
) -> RenderedEmail:
    html = (
        f"<html><head>{head}</head><body><div style='display: none'>{preheader}</div>"
        f"{body}{FOOTER}</body></html>"
    )
    return RenderedEmail(subject=subject, html=html, text=text)


def findings(mail: RenderedEmail, preheader: str | None = "Results, not duties.") -> list[Finding]:
    return inbox_findings(
        mail,
        preheader=preheader,
        unsubscribe_url=UNSUBSCRIBE,
        postal_address=ADDRESS,
        own_links=frozenset({"https://example.com/download/s/token"}),
    )


def by_check(found: list[Finding]) -> dict[str, Severity]:
    return {f.check: f.severity for f in found}


def test_a_clean_email_has_no_finding() -> None:
    assert findings(email()) == []


def test_gmail_clips_over_102_kb_an_error_and_near_it_a_warning() -> None:
    pad = GMAIL_CLIP_BYTES - len(email().html.encode())
    over = email(BODY + "<!--" + "x" * (pad + 1) + "-->")
    assert len(over.html.encode()) == GMAIL_CLIP_BYTES + 8
    assert by_check(findings(over))["gmail-clipping"] is Severity.ERROR
    at_limit = email(BODY + "<!--" + "x" * (pad - 7) + "-->")
    assert len(at_limit.html.encode()) == GMAIL_CLIP_BYTES
    assert by_check(findings(at_limit))["gmail-clipping"] is Severity.WARNING
    below_warning = email(BODY + "<!--" + "x" * (GMAIL_WARN_BYTES - len(email().html) - 7) + "-->")
    assert "gmail-clipping" not in by_check(findings(below_warning))


def test_an_image_without_alt_is_an_error_and_an_empty_alt_is_fine() -> None:
    found = findings(email(BODY + '<img src="https://example.com/chart.png">'))
    assert (
        Finding(
            "image-alt",
            Severity.ERROR,
            "image 'https://example.com/chart.png' has no alt text"
            ' (describe it, or alt="" for a decorative image)',
        )
        in found
    )
    assert findings(email(BODY + '<img src="https://example.com/spacer.gif" alt="">')) == []


@pytest.mark.parametrize(
    ("link", "check", "severity"),
    [
        ('<a href="http://example.com/guide">the guide</a>', "insecure-link", Severity.WARNING),
        ('<a href="ftp://example.com/guide">the guide</a>', "insecure-link", Severity.WARNING),
        ('<a href="#">the guide</a>', "empty-link", Severity.ERROR),
        ('<a href="">the guide</a>', "empty-link", Severity.ERROR),
        ('<a href="  ">the guide</a>', "empty-link", Severity.ERROR),
        (
            '<a href="https://tracker.example.net/c/1">https://example.com/guide</a>',
            "link-text-url",
            Severity.WARNING,
        ),
        (
            '<a href="https://tracker.example.net/c/1">www.example.com</a>',
            "link-text-url",
            Severity.WARNING,
        ),
    ],
)
def test_links_that_mislead_or_go_nowhere(link: str, check: str, severity: Severity) -> None:
    assert by_check(findings(email(BODY + f"<p>{link}</p>"))) == {check: severity}


@pytest.mark.parametrize(
    "link",
    [
        '<a href="https://example.com/guide">the guide</a>',
        '<a href="https://example.com/guide/">example.com/guide</a>',
        '<a href="https://www.example.com">https://example.com</a>',
        '<a href="mailto:coach@example.com">coach@example.com</a>',
        '<a href="tel:+15551234567">call us</a>',
        # drip's own links follow DRIP_BASE_URL, which production requires to be https
        '<a href="https://example.com/download/s/token">the template</a>',
    ],
)
def test_links_that_pass(link: str) -> None:
    assert findings(email(BODY + f"<p>{link}</p>")) == []


def test_a_long_subject_and_one_in_capitals_are_warnings() -> None:
    long_subject = "Your executive resume template is here, Maximiliana-Josephine Alexandrovna"
    assert by_check(findings(email(subject=long_subject))) == {"subject-length": Severity.WARNING}
    assert by_check(findings(email(subject="FREE TEMPLATE INSIDE"))) == {
        "subject-capitals": Severity.WARNING
    }
    assert by_check(findings(email(subject="LAST CHANCE: GET THE free template"))) == {
        "subject-capitals": Severity.WARNING
    }
    assert findings(email(subject="Your CV in the USA and the UK")) == []


def test_a_missing_long_or_unshown_preheader_is_a_warning() -> None:
    assert by_check(findings(email(preheader=""), preheader=None)) == {
        "preheader": Severity.WARNING
    }
    long = "word " * 40
    assert "140" in findings(email(preheader=long), preheader=long)[0].message
    unshown = findings(email(), preheader="A line the layout never prints.")
    assert [f.message for f in unshown] == [
        "the preheader is not in the HTML (the layout shows {{ step.preheader }})"
    ]


def test_the_footer_must_be_visible_in_both_parts() -> None:
    hidden_link = email().html.replace(f'<a href="{UNSUBSCRIBE}">', "<a>")
    mail = RenderedEmail("One result per line", hidden_link, TEXT.replace(ADDRESS, ""))
    assert [f.message for f in findings(mail) if f.check == "footer"] == [
        'its HTML has no working unsubscribe link (an <a href="{{ unsubscribe_url }}"> in the'
        " layout)",
        "its text part does not show the postal address",
    ]
    assert all(f.severity is Severity.ERROR for f in findings(mail) if f.check == "footer")


def test_an_empty_text_part_is_an_error_and_a_thin_one_a_warning() -> None:
    footer_only = f"\n--\nUnsubscribe: {UNSUBSCRIBE}\n{ADDRESS}\n"
    assert by_check(findings(email(text=footer_only))) == {"text-part": Severity.ERROR}
    thin = "Hello.\n" + footer_only
    assert by_check(findings(email(text=thin))) == {"text-part": Severity.WARNING}


def test_wcag_contrast_is_computed_as_the_standard_defines_it() -> None:
    black, white = parse_color("#000"), parse_color("white")
    assert black is not None
    assert white is not None
    assert contrast_ratio(black, white) == pytest.approx(21.0)
    grey = parse_color("#777777")
    assert grey is not None
    assert contrast_ratio(grey, white) == pytest.approx(4.48, abs=0.01)  # WebAIM's figure
    near_black = parse_color("#0a0a0a")  # its channels fall in the linear part of sRGB
    assert near_black is not None
    assert contrast_ratio(near_black, white) == pytest.approx(19.80, abs=0.01)
    assert parse_color("rgb(119, 119, 119)") == grey
    assert parse_color("rgba(0, 0, 0, 0.5)") == (0, 0, 0, 0.5)
    assert parse_color("#0000") == (0, 0, 0, 0.0)
    assert parse_color("var(--ink)") is None


def test_low_contrast_text_is_an_error_naming_colours_ratio_and_text() -> None:
    body = '<p style="color: #999999">Pale grey on white</p>'
    found = [f for f in findings(email(body)) if f.check == "contrast"]
    assert [(f.severity, f.message, f.example) for f in found] == [
        (
            Severity.ERROR,
            "light mode: #999999 on #ffffff is 2.85:1, below WCAG AA 4.5:1",
            "Pale grey on white",
        )
    ]


def test_large_text_needs_3_to_1_and_backgrounds_come_from_the_nearest_painted_ancestor() -> None:
    html = (
        '<table bgcolor="#14213d"><tr><td style="color: #ffffff">White on navy'
        '<p style="color: #5a6b8c">Slate on navy</p></td></tr></table>'
        '<h1 style="color: #949494">Big grey heading</h1>'
        '<p style="color: #949494; font-size: 14px">Small grey text</p>'
        '<p style="background: url(x.png) #fff; color: #eee">On an image</p>'
        '<p style="color: rgba(0, 0, 0, 0.3)">Faint black</p>'
        '<div style="display: none; color: #fff">Hidden preheader</div>'
    )
    runs = {run.text: run for run in text_runs(html)}
    assert "On an image" not in runs  # cannot be measured: not guessed
    assert "Hidden preheader" not in runs
    assert runs["Big grey heading"].large
    low = {run.text for run in low_contrast(html)}
    assert low == {"Slate on navy", "Small grey text", "Faint black"}


DARK_HEAD = """<meta name="color-scheme" content="light dark">
<style data-css-inline="keep">
  @media (prefers-color-scheme: dark) {
    .card { background-color: #22252b !important; }
    .content { color: #2a2a2a !important; }
  }
</style>"""


def test_dark_mode_applies_the_emails_own_dark_rules_and_checks_them_too() -> None:
    body = (
        '<table><tr><td class="card" style="background-color: #ffffff">'
        '<p class="content" style="color: #1f2328">Dark text on a card</p></td></tr></table>'
    )
    mail = email(body, head=DARK_HEAD)
    assert supports_dark(mail.html)
    assert ".content { color: #2a2a2a !important; }" in dark_rules(mail.html)
    variant = dark_variant(mail.html)
    assert variant.index(":root { color-scheme: dark; }") < variant.index("</head>")
    found = [f for f in findings(mail) if f.check == "contrast"]
    assert [f.message for f in found] == [
        "dark mode: #2a2a2a on #22252b is 1.07:1, below WCAG AA 4.5:1"
    ]
    inlined = dark_inlined(mail.html)
    assert "color: #2a2a2a !important" in inlined


def test_an_email_that_declares_no_dark_mode_is_shown_and_checked_light() -> None:
    mail = email('<p style="color: #333333">Dark grey, no background</p>')
    assert not supports_dark(mail.html)
    assert dark_variant(mail.html) == mail.html
    assert findings(mail) == []
    declared = email(
        '<p style="color: #333333">Dark grey, no background</p>',
        head='<meta name="color-scheme" content="light dark">',
    )
    assert [f.message for f in findings(declared)] == [
        "dark mode: #333333 on #121212 is 1.48:1, below WCAG AA 4.5:1"
    ]
