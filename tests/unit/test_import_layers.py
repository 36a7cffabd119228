"""The packages depend on each other in one direction: `sequences` uses `render` (to check
its templates), and `render` knows nothing of sequence files."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

RENDER_MODULES = sorted(
    f"drip.render.{path.stem}"
    for path in (REPO / "drip" / "render").glob("*.py")
    if path.stem != "__init__"
)


def loaded_after(statement: str) -> set[str]:
    """The drip modules a fresh interpreter has loaded after running `statement`."""
    code = (
        f"import sys\n{statement}\nprint(' '.join(m for m in sys.modules if m.startswith('drip')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_render_modules_are_known() -> None:
    assert {"drip.render.renderer", "drip.render.checks", "drip.render.environment"} <= set(
        RENDER_MODULES
    )


@pytest.mark.parametrize("module", ["drip.render", *RENDER_MODULES])
def test_render_imports_nothing_of_sequences(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert not {m for m in loaded if m.startswith("drip.sequences")}


@pytest.mark.parametrize(
    "module", ["drip.sequences", "drip.sequences.catalog", "drip.sequences.definition"]
)
def test_each_sequences_module_imports_alone(module: str) -> None:
    assert module in loaded_after(f"import {module}")


def test_no_render_source_names_sequences_even_lazily() -> None:
    """Not inside a function, nor under TYPE_CHECKING: render takes what it reads as protocols."""
    for path in sorted((REPO / "drip" / "render").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not [n for n in names if n.startswith("drip.sequences")], (path, node.lineno)
