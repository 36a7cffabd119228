"""The sequences folder as the studio shows it: a snapshot taken again on every save.

A snapshot never fails: each sequence file that parses is listed with its steps (so the
emails that still render can be shown while another file is broken), and every problem
(the catalog's checks, a broken samples file, anything unexpected) is kept with its file
and line, to be shown in place with an excerpt of the file.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from drip.errors import Problem, SequenceError
from drip.render.renderer import Renderer
from drip.sequences.catalog import SequenceCatalog
from drip.sequences.definition import Sequence
from drip.sequences.loader import TEMPLATES_SUBDIR, parse_sequence_file, sequence_files
from drip.sequences.samples import BUILTIN_SAMPLES, Sample, load_samples

#: Lines of context shown above and below the offending line of a file.
EXCERPT_CONTEXT = 2


@dataclass(frozen=True)
class ExcerptLine:
    """One numbered line of a file, marked when it is the offending one."""

    number: int
    text: str
    marked: bool


def excerpt(path: str, line: int | None, context: int = EXCERPT_CONTEXT) -> list[ExcerptLine]:
    """The lines around `line` of the file at `path` (empty when it cannot be read)."""
    if line is None:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    first, last = max(1, line - context), min(len(lines), line + context)
    return [ExcerptLine(n, lines[n - 1], n == line) for n in range(first, last + 1)]


@dataclass(frozen=True)
class SequenceEntry:
    """A sequence file: its parsed sequence when it parses, and the file's path."""

    path: Path
    sequence: Sequence | None


@dataclass(frozen=True)
class Snapshot:
    """The folder at one moment: sequences, samples, a renderer and every problem found."""

    generation: int
    folder: Path
    renderer: Renderer
    entries: tuple[SequenceEntry, ...]
    samples: tuple[Sample, ...]
    problems: tuple[Problem, ...]
    catalog: SequenceCatalog | None = None
    sequences: dict[str, Sequence] = field(default_factory=dict)

    def sequence(self, sequence_id: str) -> Sequence | None:
        """The parsed sequence with `sequence_id`, if a file defines it."""
        return self.sequences.get(sequence_id)


def take_snapshot(folder: Path, *, postal_address: str, generation: int) -> Snapshot:
    """Read `folder` as the service would, keeping every problem instead of raising."""
    renderer = Renderer(folder / TEMPLATES_SUBDIR, postal_address=postal_address)
    problems: list[Problem] = []
    entries: list[SequenceEntry] = []
    sequences: dict[str, Sequence] = {}
    catalog: SequenceCatalog | None = None
    samples: tuple[Sample, ...] = BUILTIN_SAMPLES
    try:
        for path in sequence_files([folder]) if folder.is_dir() else []:
            try:
                parsed = parse_sequence_file(path).sequence
            except SequenceError:
                parsed = None  # the catalog below reports it
            entries.append(SequenceEntry(path, parsed))
            if parsed is not None:
                sequences.setdefault(parsed.id, parsed)
        # A broken samples file: the catalog reports it, and the built-in samples stand in.
        with contextlib.suppress(SequenceError):
            samples = load_samples(folder)
        try:
            catalog = SequenceCatalog.load(folder, postal_address=postal_address)
        except SequenceError as exc:
            problems.extend(exc.problems)
    except Exception as exc:  # a studio shows what went wrong, whatever it is, and lives on
        problems.append(Problem(str(folder), None, "studio", f"{type(exc).__name__}: {exc}"))
    return Snapshot(
        generation,
        folder,
        renderer,
        tuple(entries),
        samples,
        tuple(problems),
        catalog,
        sequences,
    )


class Workspace:
    """The latest snapshot of a folder; `reload` takes a new one (thread-safe)."""

    def __init__(self, folder: Path, *, postal_address: str) -> None:
        self.folder = folder
        self.postal_address = postal_address
        self._lock = threading.Lock()
        self._snapshot = take_snapshot(folder, postal_address=postal_address, generation=1)

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        return self._snapshot

    def reload(self) -> Snapshot:
        """Read the folder again; the new snapshot has the next generation."""
        with self._lock:
            self._snapshot = take_snapshot(
                self.folder,
                postal_address=self.postal_address,
                generation=self._snapshot.generation + 1,
            )
            return self._snapshot
