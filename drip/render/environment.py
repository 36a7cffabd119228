"""The Jinja2 environment every template runs in, and the static checks made before it runs.

Sandboxed (templates cannot reach Python internals), StrictUndefined (a misspelt
variable is an error, never an empty string), autoescaped for `.html` templates and
not for `.txt` templates or subjects.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    PrefixLoader,
    StrictUndefined,
    nodes,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

#: drip's own templates, available to every sequence under the `drip/` prefix.
BUILTIN = Path(__file__).parent / "builtin"


def build_environment(templates_dir: Path) -> SandboxedEnvironment:
    """The sandboxed environment for templates under `templates_dir`."""
    return SandboxedEnvironment(
        # A sequence's own templates first; drip's built-in ones (e.g. `drip/confirm.html`) after.
        loader=ChoiceLoader(
            [
                FileSystemLoader(str(templates_dir)),
                PrefixLoader({"drip": FileSystemLoader(str(BUILTIN))}),
            ]
        ),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm"), default_for_string=False, default=False
        ),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once, when the catalog is loaded and checked: a file edited
        # later is not sent unchecked, and no render pays a stat() per template.
        auto_reload=False,
    )


def unsafe_attributes(tree: nodes.Template) -> list[tuple[int, str]]:
    """Line and name of every attribute or key access to an underscore name (`__class__`...).

    The sandbox refuses such access when it runs; finding it in the syntax tree refuses
    it at validation time too, even in a branch that sample contacts never reach.
    """
    found: list[tuple[int, str]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = str(node.arg.value)
        else:
            continue
        if name.startswith("_"):
            found.append((node.lineno, name))
    return found
