"""Every variant of a subject test is rendered when the sequence is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from drip.errors import SequenceError
from drip.sequences.catalog import SequenceCatalog


def test_a_broken_second_variant_is_refused_at_load(sequences_dir: Path) -> None:
    path = sequences_dir / "quick.yaml"
    path.write_text(
        path.read_text().replace(
            'subject: "Second email"',
            'subject: {variants: ["Second email", "Second, {{ contact.no_such_field }}"]}',
        )
    )
    with pytest.raises(SequenceError) as refused:
        SequenceCatalog.load(sequences_dir, postal_address="1 Example Street")
    assert any(
        p.field == "steps[1]" and "no_such_field" in p.message for p in refused.value.problems
    ), refused.value.problems
