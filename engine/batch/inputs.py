"""The inputs of a batch: files, folders (walked for media by extension) and ``.txt`` lists of paths.

Each input gets a ``key``: where its outputs go under the output folder, without extension. A file
found in a folder keeps its place below that folder (``talks/2019/ep1.mp3`` -> ``2019/ep1``), a file
named directly or in a list keeps its stem (``ep1``). Two inputs wanting the same key (``a/x.wav`` and
``b/x.wav`` named directly, or ``x.wav`` beside ``x.mp3``) get distinct keys: the later one keeps its
extension (``x.mp3``), then a number is added (``x (2)``); the order of the inputs decides, so a
rerun gets the same keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..audio.io import AUDIO_EXTENSIONS

TEXT_EXTENSIONS = (".txt",)


@dataclass(frozen=True)
class Input:
    path: Path   # absolute
    key: str     # output name below the output folder, "/"-separated, no extension


def _walk(folder: Path, extensions: Sequence[str], skip: Path | None) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (skip is None or (here / d).resolve() != skip))
        out += [here / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower() in extensions]
    return out


def _list_file(path: Path) -> list[Path]:
    """Paths in a text file, one a line (blank lines and ``#`` comments skipped), relative to the list."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [(path.parent / Path(s).expanduser()) for s in (ln.strip() for ln in lines) if s and not s.startswith("#")]


def collect(args: Iterable[str | os.PathLike], extensions: Sequence[str] = AUDIO_EXTENSIONS,
            out_dir: str | os.PathLike | None = None) -> list[Input]:
    """The batch's inputs from command-line style arguments, in order, each path once.

    ``extensions``: what a folder walk keeps (media files; ``.txt`` for a task that reads text).
    A ``.txt`` argument is a list of paths unless the task reads text itself. A path that does not
    exist is kept (the batch records it as failed: "file not found"). ``out_dir`` is never walked.
    """
    reads_text = any(e in TEXT_EXTENSIONS for e in extensions)
    skip = Path(out_dir).resolve() if out_dir is not None else None
    found: list[tuple[Path, str]] = []
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            found += [(f, f.relative_to(p).with_suffix("").as_posix()) for f in _walk(p, extensions, skip)]
        elif p.suffix.lower() in TEXT_EXTENSIONS and not reads_text and p.is_file():
            found += [(f, f.stem) for f in _list_file(p)]
        else:
            found.append((p, p.stem))
    seen: set[Path] = set()
    used: set[str] = set()
    out = []
    for f, key in found:
        f = Path(os.path.abspath(f))
        if f in seen:
            continue
        seen.add(f)
        out.append(Input(f, _free_key(key, f, used)))
    return out


def _free_key(key: str, path: Path, used: set[str]) -> str:
    candidates = [key, f"{key}{path.suffix.lower()}"] if path.suffix else [key]
    for k in candidates:
        if k.lower() not in used:
            used.add(k.lower())
            return k
    n = 2
    while f"{key} ({n})".lower() in used:
        n += 1
    used.add(f"{key} ({n})".lower())
    return f"{key} ({n})"
