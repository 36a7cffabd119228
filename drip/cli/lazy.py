"""Commands imported when they are used: `drip worker` imports the worker's modules, not the
API's, the contacts' or the studio's (each command module pulls in its own stack, and
importing all of them took longer than the rest of a worker's start-up).

A group names its commands, in the order help lists them, and where each is defined. A
command's module is imported the first time the command is looked up: to run it, or for
help, which lists them all.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from typer._click import Command  # the Click that Typer carries (typer >= 0.20)


def imported(module_name: str) -> ModuleType:
    """Import `module_name` with the garbage collector paused, then freeze what it built.

    An import builds modules, classes and functions that live as long as the process, and
    no garbage worth collecting: the collector's passes over them cost about a fifth of a
    command's start-up (0.2 s of drip.runtime's 1.0 s), and re-enabling it with them still
    in the young generations costs another 70 ms at the next allocation. Frozen
    (`gc.freeze`), they are out of every later collection, as `drip api` does for its app.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(module_name)
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def build_command(name: str, source: str) -> Command:
    """The command `name` from `source` ("module:attribute"): a function becomes a command,
    a `typer.Typer` a group of commands."""
    module_name, _, attribute = source.partition(":")
    target = getattr(imported(module_name), attribute)
    if isinstance(target, typer.Typer):
        command: Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class CommandsOnDemand(MutableMapping[str, "Command"]):
    """A group's commands by name, in the order help lists them; each is built from its
    source the first time it is read."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)
        self._names = list(sources)
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name in self._built:
            return self._built[name]
        if name not in self._sources:
            raise KeyError(name)
        try:
            command = build_command(name, self._sources[name])
        except KeyError as exc:
            # Click looks commands up with `.get`, which would read this as "No such command".
            raise RuntimeError(f"the command {name!r} could not be built: {exc!r}") from exc
        self._built[name] = command
        return command

    def __setitem__(self, name: str, command: Command) -> None:
        if name not in self._names:
            self._names.append(name)
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._sources.pop(name, None)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


class LazyGroup(TyperGroup):
    """A Typer group whose commands are imported when one is run or help lists them; pass a
    subclass that sets `sources` as `typer.Typer(cls=...)`."""

    #: Each command's name, in the order help lists them, and where it is defined.
    sources: ClassVar[dict[str, str]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        on_demand = CommandsOnDemand(self.sources)
        on_demand.update(self.commands)  # any registered on the Typer app itself
        self.commands = on_demand
