"""The security floors of requirements/floors.toml hold for what is installed and locked."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_floors", ROOT / "scripts/check_floors.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_floors"] = module
    spec.loader.exec_module(module)
    return module


check_floors = _checker()


def test_what_is_installed_locked_and_declared_meets_every_floor() -> None:
    assert check_floors.check(ROOT) == []


def test_the_floors_the_security_review_asked_for_are_written_with_their_advisories() -> None:
    floors = {f.package: f for f in check_floors.read_floors(ROOT / "requirements/floors.toml")}
    assert floors["jinja2"].version >= Version("3.1.6")
    assert floors["starlette"].version >= Version("0.49.1")
    assert floors["python-multipart"].version >= Version("0.0.18")
    assert all(f.advisories for f in floors.values())


def test_both_locks_pin_every_floored_package_with_hashes() -> None:
    floors = check_floors.read_floors(ROOT / "requirements/floors.toml")
    app = check_floors.lock_pins(ROOT / "requirements/app.txt")
    dev = check_floors.lock_pins(ROOT / "requirements/dev.txt")
    dev_only = {"requests"}  # a development tool's dependency only
    for floor in floors:
        assert floor.package in dev, floor.package
        assert floor.package in app or floor.package in dev_only, floor.package
    for lock in ("app.txt", "dev.txt"):
        lines = (ROOT / "requirements" / lock).read_text().splitlines()
        pins = [i for i, line in enumerate(lines) if check_floors.PIN.match(line)]
        assert pins
        assert all(lines[i + 1].strip().startswith("--hash=sha256:") for i in pins), lock


def test_an_installed_version_below_its_floor_is_named_with_its_advisory() -> None:
    floor = check_floors.Floor("jinja2", Version("3.1.6"), ("CVE-2025-27516: |attr escape",))
    found = check_floors.problems(
        [floor],
        installed=lambda _: Version("3.1.4"),
        locks={"requirements/app.txt": {"jinja2": Version("3.1.5")}},
        declared={"jinja2": Version("3.1")},
    )
    assert found == [
        "jinja2 3.1.4 is installed, below 3.1.6 (CVE-2025-27516: |attr escape)",
        "requirements/app.txt pins jinja2==3.1.5, below 3.1.6",
        "pyproject.toml admits jinja2>=3.1, below 3.1.6",
    ]


def test_the_command_fails_when_a_floor_is_not_met(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements/floors.toml").write_text(
        '[floors.pytest]\nversion = "999"\nadvisories = ["a floor no release meets"]\n'
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = []\n')
    assert check_floors.main(["--root", str(tmp_path)]) == 1


def test_every_declared_dependency_is_pinned_in_its_lock() -> None:
    """A dependency added to pyproject.toml without `make lock` would not be installed."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    app = check_floors.lock_pins(ROOT / "requirements/app.txt")
    dev = check_floors.lock_pins(ROOT / "requirements/dev.txt")
    for text in project["dependencies"]:
        name = canonicalize_name(Requirement(text).name)
        assert name in app, f"{name}: run `make lock`"
        assert name in dev, f"{name}: run `make lock`"
    for text in project["optional-dependencies"]["dev"]:
        assert canonicalize_name(Requirement(text).name) in dev, f"{text}: run `make lock`"


def test_make_the_image_and_ci_install_from_the_hashed_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    installs = [line.strip() for line in makefile.splitlines() if "$(BIN)/pip install" in line]
    assert any(line.endswith("--require-hashes -r $(LOCK)") for line in installs)
    assert any(line.endswith("--require-hashes -r $(LOCK_DEV)") for line in installs)
    # Anything else the project's environment gets is drip itself, without dependencies
    for line in installs:
        assert "--require-hashes -r" in line or line.endswith("--no-deps -e ."), line
    assert (
        "pip install --require-hashes -r requirements/app.txt" in (ROOT / "Dockerfile").read_text()
    )
    assert "make floors" in (ROOT / ".ci/run").read_text()
