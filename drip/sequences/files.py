"""Where the file a sequence offers (`download.file`) may live: under `<sequences dir>/files/`.

A sequence file is written by a marketer, but what it names is served to anyone holding a
download link, so the rule is strict and written once: the name is relative to the
sequences folder, has no absolute part and no `..`, and once symbolic links are resolved
it is a regular file inside `files/`. The loader refuses a sequence that breaks it, and the
download endpoint asks the same function before it serves a byte.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from drip.errors import DripError

#: Offered files live here, below the sequences folder; nothing outside it is ever served.
FILES_SUBDIR = "files"


class OfferFileError(DripError, ValueError):
    """A sequence's offered file breaks the rule above; the message says how."""


def check_offer_name(name: str) -> str:
    """Return `name` if it is written as a path inside `files/`; raise OfferFileError if not.

    Checks the text only (no file system), so the sequence format can refuse a bad name
    where it is written, with its line."""
    if not name or "\x00" in name or "\\" in name:
        raise OfferFileError(
            f"{name!r} is not a file name: write it with '/' such as '{FILES_SUBDIR}/guide.pdf'"
        )
    path = PurePosixPath(name)
    if path.is_absolute() or PureWindowsPath(name).drive:
        raise OfferFileError(
            f"{name!r} is an absolute path: name a file under {FILES_SUBDIR}/, "
            f"such as '{FILES_SUBDIR}/guide.pdf'"
        )
    if ".." in path.parts:
        raise OfferFileError(f"{name!r} contains '..': name a file under {FILES_SUBDIR}/")
    if len(path.parts) < 2 or path.parts[0] != FILES_SUBDIR:
        raise OfferFileError(
            f"{name!r} is not under {FILES_SUBDIR}/: offered files live in "
            f"<sequences dir>/{FILES_SUBDIR}/, such as '{FILES_SUBDIR}/guide.pdf'"
        )
    return name


def resolve_offer_file(sequences_dir: Path, name: str) -> Path:
    """The absolute path of the offered file `name` (e.g. `files/guide.pdf`, relative to
    `sequences_dir`), guaranteed to be a regular file inside `<sequences_dir>/files/` after
    symbolic links are resolved; raise OfferFileError naming the problem otherwise."""
    check_offer_name(name)
    root = (sequences_dir / FILES_SUBDIR).resolve()
    path = (sequences_dir / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise OfferFileError(f"{name!r} leads outside {root} (through a symbolic link)")
    if not path.is_file():
        raise OfferFileError(f"{name!r} is not a file under {root}")
    return path
