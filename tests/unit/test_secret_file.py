"""The generated development key: private from its first byte, and one key however many
processes start at once."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from drip import secret_file
from drip.config import Settings
from drip.secret_file import read_or_create_secret


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that narrows nothing, so only the mode drip asks for protects the file."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_key_is_private_before_its_name_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    # Watch the moment the key is published under its name
    seen: list[int] = []
    real_link = os.link

    def link(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        seen.append(stat.S_IMODE(os.stat(source).st_mode))
        real_link(source, target)

    monkeypatch.setattr(secret_file.os, "link", link)
    key = Settings(state_dir=tmp_path / ".drip", _env_file=None).resolved_secret_key()  # type: ignore[call-arg]
    path = tmp_path / ".drip" / "secret"
    # Then the file had mode 0600 before anyone could open it by name, and keeps it
    assert seen == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == key
    assert len(key) >= 32
    # No temporary file is left behind
    assert [p.name for p in path.parent.iterdir()] == ["secret"]


def test_a_process_that_loses_the_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    real_link = os.link

    def link_after_a_rival(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        # Another process publishes its key between our check and our link
        Path(target).write_text("the-rival-key")
        real_link(source, target)

    monkeypatch.setattr(secret_file.os, "link", link_after_a_rival)
    assert read_or_create_secret(path) == "the-rival-key"
    assert path.read_text() == "the-rival-key"


def test_processes_starting_together_end_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret"
    with ProcessPoolExecutor(max_workers=6) as pool:
        keys = set(pool.map(read_or_create_secret, [path] * 24))
    assert keys == {path.read_text()}


def test_a_key_file_left_readable_by_an_older_version_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("an-old-key\n")
    path.chmod(0o644)
    assert read_or_create_secret(path) == "an-old-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_key_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="secret is empty"):
        read_or_create_secret(path)
