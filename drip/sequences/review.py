"""The inbox checks over whole sequences, each finding placed in its sequence file.

`drip sequences validate` and the studio both call `review_sequence`: every step rendered
(`compose_specimen`, the worker's path) for every sample contact, checked by
`drip.render.checks.inbox_findings`, and each finding given the line of the field it is
about (the subject, the preheader, else the template). A finding that several samples
share is reported once, naming them.
"""

from __future__ import annotations

from dataclasses import dataclass

from drip.errors import RenderError
from drip.render.checks import Finding, Severity
from drip.render.renderer import Renderer
from drip.sequences.catalog import LoadedSequence
from drip.sequences.loader import ParsedFile, parse_sequence_file
from drip.sequences.samples import Sample
from drip.sequences.specimen import compose_specimen

#: The step field each check is about, for its line in the sequence file.
_FIELD_OF = {"subject-length": "subject", "subject-capitals": "subject", "preheader": "preheader"}


@dataclass(frozen=True)
class Placed:
    """A finding with where it is: file, line, field, and the samples it was found for."""

    file: str
    line: int | None
    field: str
    finding: Finding
    samples: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        """Whether it fails validation."""
        return self.finding.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        who = f" (samples: {', '.join(self.samples)})" if self.samples else ""
        example = f" ({self.finding.example!r})" if self.finding.example else ""
        return (
            f"{where}: {self.field}: {self.finding.severity}: {self.finding.check}:"
            f" {self.finding.message}{example}{who}"
        )


def review_sequence(
    loaded: LoadedSequence,
    renderer: Renderer,
    samples: tuple[Sample, ...],
    *,
    postal_address: str,
) -> list[Placed]:
    """Every inbox finding of every step of a checked sequence, for every sample."""
    parsed = parse_sequence_file(loaded.path)
    placed: dict[tuple[int, str, str], Placed] = {}
    for index, step in enumerate(loaded.definition.steps):
        for sample in samples:
            try:
                specimen = compose_specimen(renderer, loaded.definition, step, sample.contact)
            except RenderError:
                continue  # the catalog reports a step that does not render
            for finding in specimen.findings(step, postal_address=postal_address):
                key = (index, finding.check, finding.message)
                if key in placed:
                    before = placed[key]
                    placed[key] = Placed(
                        before.file,
                        before.line,
                        before.field,
                        finding,
                        (*before.samples, sample.label),
                    )
                else:
                    placed[key] = _place(parsed, index, finding, sample.label)
    return list(placed.values())


def _place(parsed: ParsedFile, index: int, finding: Finding, sample: str) -> Placed:
    step = parsed.sequence.steps[index]
    name = _FIELD_OF.get(finding.check, "template")
    if name == "preheader" and step.preheader is None:
        loc: tuple[str | int, ...] = ("steps", index)
        dotted = f"steps[{index}]"
    else:
        loc = ("steps", index, name)
        dotted = f"steps[{index}].{name}"
    return Placed(str(parsed.path), parsed.line_of(*loc), dotted, finding, (sample,))
