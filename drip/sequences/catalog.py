"""The sequences in force: every file in the sequences folder, checked as a whole.

A catalog is built only when every file parses, its step ids are unique, every template
it names exists and compiles, no template reaches outside the sandbox, its layout uses
`unsubscribe_url`, its offered file is inside `files/`, and every step renders for each
sample contact (`samples.yaml`, else one with and one without a first name) into an email
with a working unsubscribe link and the postal address in both parts. So a bad edit is
refused when the service starts or in CI, never at send time. The checks themselves are
the renderer's (`drip.render.checks`); this module says where in the sequence file each
problem is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from drip.errors import Problem, RenderError, SequenceError, UnknownSequence
from drip.render.checks import footer_problems, insecure_links, parse_template, uses_unsubscribe_url
from drip.render.renderer import Renderer, text_template_names
from drip.render.variants import each_variant
from drip.sequences.conditions import ConditionError, check_condition
from drip.sequences.definition import CONFIRM_STEP, Sequence, Step
from drip.sequences.files import OfferFileError, resolve_offer_file
from drip.sequences.loader import (
    TEMPLATES_SUBDIR,
    ParsedFile,
    content_version,
    parse_sequence_file,
    sequence_files,
)
from drip.sequences.samples import BUILTIN_SAMPLES, Sample, load_samples

#: The contacts every step is rendered for when the folder has no samples.yaml.
SAMPLE_CONTACTS = tuple(sample.contact for sample in BUILTIN_SAMPLES)

#: Stands in for a real unsubscribe link when rendering samples.
SAMPLE_UNSUBSCRIBE_URL = "https://example.com/unsubscribe/sample-token"


@dataclass(frozen=True)
class LoadedSequence:
    """A checked sequence, the file it came from and the hash of its content."""

    definition: Sequence
    path: Path
    version: str


class SequenceCatalog:
    """The checked sequences by id, with the renderer their templates need."""

    def __init__(self, sequences: dict[str, LoadedSequence], renderer: Renderer) -> None:
        self._sequences = sequences
        self.renderer = renderer

    @classmethod
    def load(
        cls,
        sequences_dir: Path,
        *,
        postal_address: str,
        files: Iterable[Path] | None = None,
        require_https: bool = False,
    ) -> SequenceCatalog:
        """Load and check `files` (default: every sequence file in `sequences_dir`)."""
        renderer = Renderer(sequences_dir / TEMPLATES_SUBDIR, postal_address=postal_address)
        paths = sequence_files([sequences_dir] if files is None else files)
        if files is None and not sequences_dir.is_dir():
            raise SequenceError(
                [Problem(str(sequences_dir), None, "folder", "the sequences folder does not exist")]
            )
        problems: list[Problem] = []
        try:
            samples = load_samples(sequences_dir)
        except SequenceError as exc:
            problems.extend(exc.problems)
            samples = BUILTIN_SAMPLES
        loaded: dict[str, LoadedSequence] = {}
        for path in paths:
            try:
                parsed = parse_sequence_file(path)
            except SequenceError as exc:
                problems.extend(exc.problems)
                continue
            found = check_templates(parsed, renderer, require_https=require_https, samples=samples)
            found += check_conditions(parsed)
            sequence = parsed.sequence
            if sequence.id in loaded:
                found.append(
                    Problem(
                        str(path),
                        parsed.line_of("id"),
                        "id",
                        f"sequence id {sequence.id!r} is also used by {loaded[sequence.id].path}",
                    )
                )
            problems.extend(found)
            if not found:
                used = [renderer.templates_dir / sequence.layout]
                for step in sequence.steps:
                    used.append(renderer.templates_dir / step.template)
                    used.extend(
                        renderer.templates_dir / n for n in text_template_names(step.template)
                    )
                loaded[sequence.id] = LoadedSequence(sequence, path, content_version(path, used))
        if problems:
            raise SequenceError(problems)
        return cls(loaded, renderer)

    def get(self, sequence_id: str) -> LoadedSequence:
        """The sequence with `sequence_id`; raise UnknownSequence when no file defines it."""
        try:
            return self._sequences[sequence_id]
        except KeyError:
            raise UnknownSequence(sequence_id) from None

    def __contains__(self, sequence_id: object) -> bool:
        return sequence_id in self._sequences

    def __iter__(self) -> Iterator[LoadedSequence]:
        return iter(self._sequences.values())

    def __len__(self) -> int:
        return len(self._sequences)


def check_templates(
    parsed: ParsedFile,
    renderer: Renderer,
    *,
    require_https: bool = False,
    samples: tuple[Sample, ...] = BUILTIN_SAMPLES,
) -> list[Problem]:
    """Every problem with the templates a parsed file names, its layout and its renders for
    each of `samples`."""
    sequence, name = parsed.sequence, str(parsed.path)
    env, root = renderer.environment, renderer.templates_dir
    problems: list[Problem] = []
    named = [(sequence.layout, ("layout",))] + [
        (step.template, ("steps", i, "template")) for i, step in enumerate(sequence.steps)
    ]
    named += [
        (text_name, ("steps", i, "template"))
        for i, step in enumerate(sequence.steps)
        for text_name in text_template_names(step.template)
        if (root / text_name).is_file()
    ]
    for template, loc in named:
        path = root / template
        if not path.is_file():
            problems.append(
                Problem(
                    name,
                    parsed.line_of(*loc),
                    _dotted(loc),
                    f"template {template!r} not found under {root}",
                )
            )
            continue
        tree, found = parse_template(env, path, template)
        problems.extend(found)
        if tree is not None and loc == ("layout",) and not uses_unsubscribe_url(tree):
            problems.append(
                Problem(
                    name,
                    parsed.line_of("layout"),
                    "layout",
                    f"layout {template!r} must show {{{{ unsubscribe_url }}}}",
                )
            )
    if sequence.download is not None:
        try:
            resolve_offer_file(root.parent, sequence.download.file)
        except OfferFileError as exc:
            problems.append(
                Problem(name, parsed.line_of("download", "file"), "download.file", str(exc))
            )
    if problems:
        return problems
    confirmation = sequence.confirmation_step()
    # Every variant of a subject test is rendered: a broken variant is found here, not by
    # the first subscriber it is chosen for.
    steps: list[tuple[Step, tuple[str | int, ...]]] = [
        (variant, ("steps", i))
        for i, step in enumerate(sequence.steps)
        for _, variant in each_variant(step)
    ]
    steps.append((confirmation, ("confirmation",)))
    for step, where in steps:
        for sample in samples:
            try:
                email = renderer.render(
                    sequence,
                    step,
                    sample.contact,
                    unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
                    links=sample_links(sequence, step),
                )
            except RenderError as exc:
                problems.append(
                    Problem(
                        name,
                        parsed.line_of(*where),
                        _dotted(where),
                        f"does not render for the sample contact {sample.label!r}: {exc}",
                    )
                )
                break
            missing = footer_problems(
                email,
                unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
                postal_address=renderer.postal_address,
            )
            if missing:
                problems.extend(
                    Problem(
                        name,
                        parsed.line_of(*where),
                        _dotted(where),
                        f"rendered with layout {sequence.layout!r}, {message}",
                    )
                    for message in missing
                )
                break
            if require_https:
                problems.extend(
                    Problem(
                        name,
                        parsed.line_of(*where, "template"),
                        f"{_dotted(where)}.template",
                        f"link {link!r} is not absolute https",
                    )
                    for link in sorted(set(insecure_links(email.html)))
                )
    return problems


def check_conditions(parsed: ParsedFile) -> list[Problem]:
    """Every step's `when:` parses and names only what conditions offer."""
    problems = []
    for i, step in enumerate(parsed.sequence.steps):
        if step.when is None:
            continue
        try:
            check_condition(step.when)
        except ConditionError as exc:
            where = ("steps", i, "when")
            problems.append(
                Problem(str(parsed.path), parsed.line_of(*where), _dotted(where), str(exc))
            )
    return problems


def sample_links(sequence: Sequence, step: Step | None = None) -> dict[str, str]:
    """Stand-ins for the per-contact links templates may use."""
    links = {}
    if sequence.download is not None:
        links["download"] = f"https://example.com/download/{sequence.id}/sample-token"
    if step is not None and step.id == CONFIRM_STEP:
        links["confirm"] = f"https://example.com/confirm/{sequence.id}/sample-token"
    return links


def _dotted(loc: tuple[int | str, ...]) -> str:
    return "".join(
        f"[{p}]" if isinstance(p, int) else (("." if i else "") + p) for i, p in enumerate(loc)
    )
