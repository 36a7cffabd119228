"""Parse one sequence file, reporting each problem with file, line and field.

A sequence file is read by the service at startup and by CI, so a hostile or broken one
must fail fast rather than hang them: it is capped in size, YAML anchors and aliases
(whose nesting expands exponentially, the "billion laughs") are refused where they appear,
and so is nesting deeper than any sequence needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from drip.errors import Problem, SequenceError
from drip.sequences.definition import Sequence

#: Sequence files are the YAML files at the top of the sequences folder.
SEQUENCE_SUFFIXES = (".yaml", ".yml")

#: YAML files at the top of the folder that are not sequences (`drip.sequences.samples`,
#: `drip.webhooks.config_file`).
NOT_SEQUENCES = frozenset({"samples.yaml", "webhooks.yaml"})

#: Templates live here, below the sequences folder.
TEMPLATES_SUBDIR = "templates"

#: The largest sequence file read: ten steps take about 4 KiB, so this is room to spare.
MAX_SEQUENCE_FILE_BYTES = 256 * 1024

#: The deepest nesting of mappings and lists accepted (a sequence file needs four).
MAX_NESTING = 32


class _SequenceYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses anchors, aliases and deep nesting where they are."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name, <<) are not allowed in a sequence file:"
                " write the value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_NESTING} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def sequence_files(paths: Iterable[Path]) -> list[Path]:
    """The sequence files named by `paths`: files as given, folders for their top-level YAML."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.suffix in SEQUENCE_SUFFIXES and p.name not in NOT_SEQUENCES
                )
            )
        else:
            found.append(path)
    return found


@dataclass(frozen=True)
class ParsedFile:
    """A sequence file that matches the format, with the YAML nodes to locate later problems."""

    sequence: Sequence
    path: Path
    root: yaml.Node

    def line_of(self, *loc: int | str) -> int | None:
        """The line of the field at `loc`, e.g. `line_of("steps", 2, "template")`."""
        return _line_of(self.root, loc)


def parse_sequence_file(path: Path) -> ParsedFile:
    """Parse one YAML file into a Sequence; raise SequenceError with file, line and field."""
    name = str(path)
    root, data = read_yaml(path, what="a sequence file")
    if not isinstance(data, dict) or root is None:
        raise SequenceError(
            [Problem(name, 1, "file", "a sequence file is a mapping with id, name, steps, ...")]
        )

    problems = _duplicate_step_ids(name, data, root)
    try:
        sequence = Sequence.model_validate(data)
    except ValidationError as exc:
        problems += [
            Problem(name, _line_of(root, err["loc"]), _field_name(err["loc"]), _message(err))
            for err in exc.errors()
        ]
        raise SequenceError(problems) from exc
    if problems:
        raise SequenceError(problems)
    return ParsedFile(sequence, path, root)


def read_yaml(path: Path, *, what: str) -> tuple[yaml.Node | None, Any]:
    """A file marketers or operators write (a sequence, the samples, `webhooks.yaml`): its
    node tree (for line numbers) and its data. At most MAX_SEQUENCE_FILE_BYTES are read, and
    anchors, aliases and deep nesting are refused; any problem raises SequenceError with the
    file and, where there is one, the line."""
    name = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_SEQUENCE_FILE_BYTES + 1)
        if len(raw) > MAX_SEQUENCE_FILE_BYTES:
            limit = f"is larger than {MAX_SEQUENCE_FILE_BYTES // 1024} KiB, the most {what} may be"
            raise SequenceError([Problem(name, None, "file", limit)])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SequenceError([Problem(name, None, "file", f"cannot be read: {exc}")]) from exc
    try:
        return _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SequenceError([Problem(name, line, "yaml", str(exc.problem or exc))]) from exc
    except yaml.YAMLError as exc:
        raise SequenceError([Problem(name, None, "yaml", str(exc))]) from exc


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, parsed once."""
    loader = _SequenceYamlLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def content_version(path: Path, template_paths: Iterable[Path]) -> str:
    """A short hash of the file and every template it uses: changes whenever an email could."""
    digest = hashlib.sha256(path.read_bytes())
    for template in sorted(set(template_paths)):
        digest.update(template.name.encode())
        if template.exists():
            digest.update(template.read_bytes())
    return digest.hexdigest()[:12]


def _duplicate_step_ids(name: str, data: dict[str, Any], root: yaml.Node | None) -> list[Problem]:
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    problems, seen = [], set()
    for index, step in enumerate(steps):
        step_id = step.get("id") if isinstance(step, dict) else None
        if step_id is None:
            continue
        if step_id in seen:
            loc = ("steps", index, "id")
            problems.append(
                Problem(
                    name,
                    _line_of(root, loc),
                    _field_name(loc),
                    f"step id {step_id!r} is used twice",
                )
            )
        seen.add(step_id)
    return problems


def _field_name(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out or "file"


def _message(error: Any) -> str:
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "is not a field of a sequence file (check the spelling)"
    return message


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            key = "from" if part == "from_" else part
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                return line
            line = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
