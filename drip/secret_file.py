"""The development signing key, generated once into a file only its owner can read.

The file is created with `O_CREAT | O_EXCL` and mode 0600 from the first byte, so it is
never readable by others, not even for a moment. The key is written to a private
temporary file first and then hard-linked into place: linking fails if the name exists,
so when two processes start at once exactly one key wins, and the loser reads it. A
reader never sees a half-written key, because the name appears only once it is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: Bytes of randomness in a generated key (64 characters once encoded).
KEY_BYTES = 48


def read_or_create_secret(path: Path) -> str:
    """The key stored at `path`, creating it (and its folder, mode 0700) if it is missing."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create(path, secrets.token_urlsafe(KEY_BYTES))
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # made by an older version, which wrote it before narrowing it
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty: delete it and a new key is generated")
    return key


def _create(path: Path, key: str) -> None:
    """Publish `key` at `path` unless another process already did."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(key)
            stream.flush()
            os.fsync(stream.fileno())
        # If another process published its key first, that one is the key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
