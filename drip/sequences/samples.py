"""The sample contacts every email is rendered for before it ships: `samples.yaml`.

The file sits beside the sequence files (`<sequences dir>/samples.yaml`) and lists the
people a marketer wants to see each email for: no first name, a long name, a name in
another script, attributes. `drip sequences validate`, `drip sequences preview` and the
studio all read it; without the file they use the built-in samples below. It is read with
the sequence files' YAML rules (no anchors, bounded size and depth) and every problem is
reported with file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drip.errors import Problem, SequenceError
from drip.render.renderer import TemplateContact
from drip.sequences.definition import check_timezone

# One owner of "YAML with lines": the sequence file loader's safe parse and its locator.
from drip.sequences.loader import (
    _field_name,
    _line_of,
    _message,
    read_yaml,
)

#: The samples file's name, beside the sequence files (and not one of them).
SAMPLES_FILE = "samples.yaml"

#: The address a sample renders with when it names none.
SAMPLE_EMAIL = "sample@example.com"


@dataclass(frozen=True)
class Sample:
    """A sample contact and the label a marketer picks it by."""

    label: str
    contact: TemplateContact


#: The samples when the folder has no samples.yaml: with a first name, and without.
BUILTIN_SAMPLES = (
    Sample("Alex", TemplateContact(email=SAMPLE_EMAIL, first_name="Alex", timezone="UTC")),
    Sample("no first name", TemplateContact(email=SAMPLE_EMAIL, first_name=None, timezone=None)),
)


class _SampleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=80)
    email: str = Field(default=SAMPLE_EMAIL, min_length=3, max_length=254)
    first_name: str | None = Field(default=None, max_length=200)
    timezone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class _SamplesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    samples: list[_SampleEntry] = Field(min_length=1, max_length=50)


def samples_path(sequences_dir: Path) -> Path:
    """Where a sequences folder keeps its samples."""
    return sequences_dir / SAMPLES_FILE


def load_samples(sequences_dir: Path) -> tuple[Sample, ...]:
    """The samples of `sequences_dir/samples.yaml`, else the built-in ones; raise
    SequenceError naming file, line and field when the file is broken."""
    path = samples_path(sequences_dir)
    if not path.is_file():
        return BUILTIN_SAMPLES
    return read_samples(path)


def read_samples(path: Path) -> tuple[Sample, ...]:
    """The samples in the file at `path`; raise SequenceError with file, line and field."""
    name = str(path)
    root, data = read_yaml(path, what="a samples file")
    try:
        parsed = _SamplesFile.model_validate(data)
    except ValidationError as exc:
        raise SequenceError(
            [
                Problem(name, _line_of(root, err["loc"]), _field_name(err["loc"]), _message(err))
                for err in exc.errors()
            ]
        ) from exc
    labels = [entry.label for entry in parsed.samples]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        index = labels.index(twice[0], labels.index(twice[0]) + 1)
        raise SequenceError(
            [
                Problem(
                    name,
                    _line_of(root, ("samples", index, "label")),
                    f"samples[{index}].label",
                    f"label {twice[0]!r} is used twice",
                )
            ]
        )
    return tuple(
        Sample(
            entry.label,
            TemplateContact(
                email=entry.email,
                first_name=entry.first_name,
                timezone=entry.timezone,
                attributes=dict(entry.attributes),
            ),
        )
        for entry in parsed.samples
    )


def find_sample(samples: tuple[Sample, ...], label: str | None) -> Sample:
    """The sample labelled `label` (the first when None); raise KeyError naming the labels."""
    if label is None:
        return samples[0]
    for sample in samples:
        if sample.label == label:
            return sample
    raise KeyError(f"no sample {label!r}; known: {', '.join(s.label for s in samples)}")
