"""One email as the studio shows it: the worker's rendering, its dark document, its checks.

A step that does not render is answered with the error in place of the email: the file
and line of the template where Jinja stopped (a syntax error's own line, or the template's
frame in the traceback of a runtime error) and an excerpt around it.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError

from drip.errors import RenderError
from drip.render.darkmode import dark_variant
from drip.sequences.samples import Sample
from drip.sequences.specimen import compose_specimen
from drip.studio.workspace import Snapshot, excerpt
from drip.unsubscribe.links import Links

#: Template files, as a traceback frame names them.
_TEMPLATE_SUFFIXES = (".html", ".txt")


def locate(exc: RenderError, templates_dir: Path) -> tuple[str | None, int | None]:
    """The template file and line a RenderError comes from, when Jinja says."""
    cause = exc.__cause__
    if isinstance(cause, TemplateSyntaxError):
        return cause.filename, cause.lineno
    if cause is not None:
        frames = traceback.extract_tb(cause.__traceback__)
        for frame in reversed(frames):
            if frame.filename.endswith(_TEMPLATE_SUFFIXES) and Path(frame.filename).is_file():
                return frame.filename, frame.lineno
    return None, None


def show_email(
    snapshot: Snapshot, sequence_id: str, step_id: str, sample: Sample, *, links: Links
) -> dict[str, Any]:
    """What the page shows for one step and sample: the inbox line, the HTML in light and dark
    mode, the text part and the checks; or the error with its file, line and excerpt."""
    sequence = snapshot.sequence(sequence_id)
    step = sequence.step(step_id) if sequence is not None else None
    if sequence is None or step is None:
        return {"missing": f"no step {step_id!r} in sequence {sequence_id!r} now"}
    try:
        specimen = compose_specimen(snapshot.renderer, sequence, step, sample.contact, links=links)
    except RenderError as exc:
        file, line = locate(exc, snapshot.renderer.templates_dir)
        return {
            "error": {
                "message": str(exc),
                "file": file,
                "line": line,
                "excerpt": [asdict(x) for x in excerpt(file, line)] if file else [],
            }
        }
    message = specimen.message
    sender = message.sender
    return {
        "inbox": {
            "from": f"{sender.name} <{sender.email}>" if sender.name else sender.email,
            "to": message.to_email,
            "subject": message.subject,
            "preheader": step.preheader or "",
            "reply_to": message.reply_to.email if message.reply_to else None,
        },
        "html": message.html,
        "html_dark": dark_variant(message.html),
        "text": message.text,
        "size": len(message.html.encode("utf-8")),
        "findings": [
            {
                "check": f.check,
                "severity": str(f.severity),
                "message": f.message,
                "example": f.example,
            }
            for f in specimen.findings(step, postal_address=snapshot.renderer.postal_address)
        ],
    }
