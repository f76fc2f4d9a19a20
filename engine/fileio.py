"""Atomic file writing: write to a temporary file beside the target, then rename over it.

A crash, an error or a cancelled job never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``.

    ``suffix`` defaults to the target's suffix so that libraries that pick a format by
    extension keep working. On any exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created here with the user's umask (mkstemp would give 0600 to every export), so that a
    # folder we cannot write to fails now with a plain PermissionError.
    tmp_path = path.with_name(f".{path.stem}.{secrets.token_hex(6)}{path.suffix if suffix is None else suffix}")
    open(tmp_path, "xb").close()
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return path


def unique_path(path: str | os.PathLike) -> Path:
    """``path`` if free, else ``name (2).ext``, ``name (3).ext``...: exports never overwrite silently."""
    path = Path(path)
    if not path.exists():
        return path
    for i in itertools.count(2):
        candidate = path.with_name(f"{path.stem} ({i}){path.suffix}")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")
