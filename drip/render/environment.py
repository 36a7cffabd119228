"""The Jinja2 environment every template runs in (its checks are in `drip.render.checks`).

Templates come from sequence files, so they are treated as untrusted code:

- sandboxed and immutable: no Python internals, and no changing the lists and dicts a
  template is given (`contact.attributes.clear()` is refused);
- bounded: `*` and `**` are intercepted, so `'x' * 10**9` or `9 ** 9 ** 9` is refused
  before it allocates, instead of exhausting the memory of `validate` or a worker;
- StrictUndefined: a misspelt variable is an error, never an empty string;
- autoescaped for every template file except plain-text parts (`.txt`): whatever the
  extension (`.html`, `.j2`, none), a subscriber's name cannot become markup. Subjects
  (rendered from strings) are headers, not HTML, and are not escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader, StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: drip's own templates, available to every sequence under the `drip/` prefix.
BUILTIN = Path(__file__).parent / "builtin"

#: Template files whose output is plain text, never escaped.
TEXT_SUFFIXES = (".txt",)

#: The longest string or list `*` may build (characters or items).
MAX_REPEAT = 100_000

#: The largest integer `*` or `**` may build, in bits (about 1,200 decimal digits).
MAX_INT_BITS = 4096


def escapes(template_name: str | None) -> bool:
    """Whether output of the template `template_name` is HTML-escaped: yes for every file
    but plain-text parts; no for templates made from strings (subjects)."""
    return template_name is not None and not template_name.endswith(TEXT_SUFFIXES)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox whose `*` and `**` refuse results past MAX_REPEAT and
    MAX_INT_BITS with a SecurityError, before computing them."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """`left <operator> right`, once its result is known to be small enough."""
        if operator == "*":
            _check_product(left, right)
        elif operator == "**":
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)


def _check_product(left: Any, right: Any) -> None:
    for items, count in ((left, right), (right, left)):
        if isinstance(items, (str, bytes, list, tuple)) and isinstance(count, int):
            if len(items) * count > MAX_REPEAT:
                raise SecurityError(
                    f"repeating {len(items)} item(s) {count} times makes more than"
                    f" {MAX_REPEAT:,}, the most a template may build"
                )
            return
    ints = isinstance(left, int) and isinstance(right, int)
    if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise SecurityError(
            f"the product is larger than {MAX_INT_BITS} bits, the most a template may build"
        )


def _check_power(base: Any, exponent: Any) -> None:
    ints = isinstance(base, int) and isinstance(exponent, int)
    # The result has at least (bit_length - 1) * exponent bits; testing the exponent alone
    # first keeps the estimate itself cheap.
    if (
        ints
        and exponent > 0
        and abs(base) > 1
        and (exponent > MAX_INT_BITS or (base.bit_length() - 1) * exponent > MAX_INT_BITS)
    ):
        raise SecurityError(
            f"a power of exponent {exponent} is larger than {MAX_INT_BITS} bits,"
            " the most a template may build"
        )


def build_environment(templates_dir: Path) -> BoundedSandbox:
    """The bounded, immutable sandbox for templates under `templates_dir`."""
    return BoundedSandbox(
        # A sequence's own templates first; drip's built-in ones (e.g. `drip/confirm.html`) after.
        loader=ChoiceLoader(
            [
                FileSystemLoader(str(templates_dir)),
                PrefixLoader({"drip": FileSystemLoader(str(BUILTIN))}),
            ]
        ),
        undefined=StrictUndefined,
        autoescape=escapes,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # Templates are read once, when the catalog is loaded and checked: a file edited
        # later is not sent unchecked, and no render pays a stat() per template.
        auto_reload=False,
    )
