"""Check installed packages, the locks and pyproject.toml against requirements/floors.toml.

Usage: python scripts/check_floors.py [--root DIR]

Where no vulnerability database can be reached, this is the check that CI runs instead of
`pip-audit`: every package named in floors.toml that is installed here must be at or above
its floor, every pin in requirements/*.txt too, and so must every lower bound that
pyproject.toml declares for it. Exits 1 naming each package that is below its floor.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

#: A pin line of a lock file: `name==version \`.
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)")


@dataclass(frozen=True)
class Floor:
    """The lowest version accepted for one package, and the advisories it answers."""

    package: str
    version: Version
    advisories: tuple[str, ...]


def read_floors(path: Path) -> list[Floor]:
    """The floors of `path`; a floor without a version or an advisory is an error."""
    data = tomllib.loads(path.read_text())
    floors = []
    for name, entry in data.get("floors", {}).items():
        if not entry.get("version") or not entry.get("advisories"):
            raise ValueError(f"{path}: [floors.{name}] needs a version and its advisories")
        floors.append(
            Floor(canonicalize_name(name), Version(entry["version"]), tuple(entry["advisories"]))
        )
    return floors


def installed_version(package: str) -> Version | None:
    """The version installed in this interpreter's environment, or None."""
    try:
        return Version(metadata.version(package))
    except metadata.PackageNotFoundError:
        return None


def lock_pins(path: Path) -> dict[str, Version]:
    """The exact pins of a requirements lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def declared_floors(pyproject: Path) -> dict[str, Version]:
    """The lower bound pyproject.toml declares for each dependency that has one."""
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    bounds: dict[str, Version] = {}
    for text in declared:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator in (">=", "==", "~=", ">"):
                bounds[canonicalize_name(requirement.name)] = Version(spec.version)
    return bounds


def problems(
    floors: Iterable[Floor],
    *,
    installed: Callable[[str], Version | None],
    locks: dict[str, dict[str, Version]],
    declared: dict[str, Version],
) -> list[str]:
    """One line per version below its floor: installed, pinned by a lock, or declared."""
    found = []
    for floor in floors:
        answers = "; ".join(floor.advisories)
        have = installed(floor.package)
        if have is not None and have < floor.version:
            found.append(f"{floor.package} {have} is installed, below {floor.version} ({answers})")
        for lock, pins in locks.items():
            pinned = pins.get(floor.package)
            if pinned is not None and pinned < floor.version:
                found.append(f"{lock} pins {floor.package}=={pinned}, below {floor.version}")
        bound = declared.get(floor.package)
        if bound is not None and bound < floor.version:
            found.append(f"pyproject.toml admits {floor.package}>={bound}, below {floor.version}")
    return found


def check(root: Path) -> list[str]:
    """Every problem of the project at `root`, checked against the running environment."""
    requirements = root / "requirements"
    locks = {str(p.relative_to(root)): lock_pins(p) for p in sorted(requirements.glob("*.txt"))}
    return problems(
        read_floors(requirements / "floors.toml"),
        installed=installed_version,
        locks=locks,
        declared=declared_floors(root / "pyproject.toml"),
    )


def main(argv: list[str] | None = None) -> int:
    """Print each problem; 0 when every floor is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    found = check(args.root)
    for line in found:
        print(f"below a security floor: {line}", file=sys.stderr)
    if not found:
        count = len(read_floors(args.root / "requirements" / "floors.toml"))
        print(f"security floors: all {count} met (installed, locked and declared)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
