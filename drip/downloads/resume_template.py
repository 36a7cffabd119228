"""Build the executive resume template (DOCX) that email 1 delivers: `make template`.

The document is plain enough for applicant tracking systems (one column of text, real
headings, no text boxes), with a three-column competencies table, and every section
filled with guidance the reader overwrites.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt, RGBColor

NAVY = RGBColor(0x14, 0x21, 0x3D)
GREY = RGBColor(0x5A, 0x5F, 0x65)

COMPETENCIES = [
    "P&L Ownership",
    "Strategic Planning",
    "Turnaround Leadership",
    "Mergers & Acquisitions",
    "Board Reporting",
    "Operational Excellence",
    "Talent Development",
    "Digital Transformation",
    "Stakeholder Alignment",
]

ROLES = [
    (
        "Chief Operating Officer",
        "Company Name, City",
        "2019 - Present",
        "One line on the company: industry, revenue, headcount, what you were hired to fix.",
        [
            "Grew revenue from $X to $Y in N years by <the one decision that made it happen>.",
            "Cut operating cost by X% while raising customer satisfaction from A to B.",
            "Led the integration of <acquisition>, keeping 95% of key staff, on schedule.",
        ],
    ),
    (
        "Vice President, Operations",
        "Company Name, City",
        "2014 - 2019",
        "One line of context: the scope you inherited and the situation at the time.",
        [
            "Context, action, result: took over <situation>, did <action>, achieved <number>.",
            "Built a leadership team of N that delivered <result> for three consecutive years.",
        ],
    ),
]


def _rule_below(paragraph) -> None:  # type: ignore[no-untyped-def]
    """A thin navy line under a heading, drawn as a paragraph border (ATS-safe)."""
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "14213D")):
        bottom.set(qn(key), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().append(borders)


def _heading(document, text: str) -> None:  # type: ignore[no-untyped-def]
    paragraph = document.add_paragraph()
    paragraph.paragraph_format.space_before = Pt(12)
    paragraph.paragraph_format.space_after = Pt(4)
    run = paragraph.add_run(text.upper())
    run.bold, run.font.size, run.font.color.rgb = True, Pt(11), NAVY
    _rule_below(paragraph)


def _guidance(document, text: str) -> None:  # type: ignore[no-untyped-def]
    run = document.add_paragraph().add_run(text)
    run.italic, run.font.color.rgb = True, GREY


def build_resume_template(path: Path) -> Path:
    """Write the executive resume template to `path` and return it."""
    document = Document()
    for section in document.sections:
        section.left_margin = section.right_margin = Inches(0.8)
        section.top_margin = section.bottom_margin = Inches(0.7)
    normal = document.styles["Normal"]
    normal.font.name, normal.font.size = "Calibri", Pt(10.5)
    normal.paragraph_format.space_after = Pt(3)
    document.core_properties.title = "Executive resume template"
    document.core_properties.author = "The Resume Studio"

    name = document.add_paragraph()
    name.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = name.add_run("FIRST LAST")
    run.bold, run.font.size, run.font.color.rgb = True, Pt(22), NAVY
    target = document.add_paragraph()
    target.alignment = WD_ALIGN_PARAGRAPH.CENTER
    run = target.add_run("Target Role  |  Industry  |  Signature Strength")
    run.font.size, run.font.color.rgb = Pt(12), NAVY
    contact = document.add_paragraph(
        "City, Country  |  +1 555 0100  |  name@example.com  |  linkedin.com/in/name"
    )
    contact.alignment = WD_ALIGN_PARAGRAPH.CENTER

    _heading(document, "Executive Summary")
    _guidance(
        document,
        "Four to six lines: what you lead (function, scale, industry), the two or three "
        "results people mention when they introduce you, and the role you want next. "
        "Delete every adjective a competitor could also claim.",
    )

    _heading(document, "Core Competencies")
    table = document.add_table(rows=3, cols=3)
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for index, competency in enumerate(COMPETENCIES):
        table.cell(index // 3, index % 3).text = competency

    _heading(document, "Professional Experience")
    for title, company, dates, context, bullets in ROLES:
        line = document.add_paragraph()
        line.paragraph_format.space_before = Pt(6)
        run = line.add_run(title)
        run.bold = True
        line.add_run(f"  |  {company}  |  {dates}")
        _guidance(document, context)
        for bullet in bullets:
            document.add_paragraph(bullet, style="List Bullet")
    _guidance(document, "Earlier career: one line per role (title, company, years).")

    _heading(document, "Board & Advisory Roles")
    document.add_paragraph(
        "Board Member, Organisation Name (2021 - Present): the committee and one result.",
        style="List Bullet",
    )
    _heading(document, "Education & Certifications")
    document.add_paragraph("MBA, University Name")
    document.add_paragraph("BSc, Subject, University Name")

    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


if __name__ == "__main__":
    target_path = Path(
        sys.argv[1] if len(sys.argv) > 1 else "sequences/files/executive-resume-template.docx"
    )
    print(build_resume_template(target_path))
