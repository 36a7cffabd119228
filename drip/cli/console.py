"""The consoles the CLI prints through: fitted to a terminal, never wrapped for a pipe.

Rich wraps text to the terminal's width, and when stdout is not a terminal it assumes 80
columns (or `COLUMNS`), so a line such as `ok  sequences/x.yaml  x  10 steps` piped into
`grep`, a file or a CI log could be split mid-line. Scripts read these lines: output that
does not go to a terminal is never wrapped or cut, whatever its length, and a table takes
its natural width. On a terminal, text wraps and tables fit as usual.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

#: Columns assumed for output that does not go to a terminal: wide enough that no line
#: drip prints is ever wrapped or cut.
UNLIMITED = 1_000_000


class CliConsole(Console):
    """A Rich console that fits a terminal and never wraps output to a pipe or a file.

    Whether the output is a terminal is asked of the stream at each print (Rich's own
    `FORCE_COLOR` and `TTY_COMPATIBLE` still decide colours, not wrapping), so a console
    made at import time is right for whatever stdout is when it prints.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        self._soft_wrap_on_terminal = False
        super().__init__(stderr=stderr)

    def writes_to_terminal(self) -> bool:
        """Whether the stream this console writes to is an interactive terminal."""
        isatty = getattr(self.file, "isatty", None)
        try:
            return bool(isatty is not None and isatty())
        except ValueError:  # a closed stream
            return False

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size; unlimited columns when the output is not a terminal."""
        measured = super().size
        if self.writes_to_terminal():
            return measured
        return ConsoleDimensions(UNLIMITED, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        """Set the size a terminal is drawn at (a pipe or a file stays unlimited)."""
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    @property
    def soft_wrap(self) -> bool:
        """Text is never wrapped or cropped for a pipe or a file; on a terminal, as set."""
        return self._soft_wrap_on_terminal or not self.writes_to_terminal()

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        """Set soft wrapping for a terminal (a pipe or a file never wraps)."""
        self._soft_wrap_on_terminal = value
