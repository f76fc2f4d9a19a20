"""The batch manifest: ``DIR/batch-manifest.json``, what a second run skips.

Per task and input (absolute path)::

    {"key": "2019/ep1", "size": 1234, "mtime_ns": ..., "sha256": "...",   # the input
     "options": "<sha256 of the task name and its options>",
     "status": "done" | "failed", "error": "...",                       # failed: why
     "outputs": {"2019/ep1.srt": 5120, ...},                              # relative to DIR: size in bytes
     "audio_seconds": 61.2, "seconds": 3.4, "worker": "pid 4242", "finished": 1790000000.0}

An input is complete when its record is "done", its content hash and the options hash match, and
every output is there with the size written. The content hash is a SHA-256 of the whole file; it is
recomputed only when the file's size or modification time (ns) differ from the record (the quick
check of make, rsync and git's index: rewriting a file changes its mtime, and a file that was only
touched keeps its hash and is still skipped). The manifest is rewritten atomically after every file
(engine.fileio), so a killed batch loses at most the files that were in flight.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import SonoscopeError
from ..fileio import write_text_atomic

NAME = "batch-manifest.json"
LOCK = ".batch.lock"
FORMAT = "sonoscope-batch-manifest"
VERSION = 1
HASH_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def identity(path: str | os.PathLike, previous: dict | None = None) -> dict:
    """``{"size", "mtime_ns", "sha256"}`` of a file; the hash is taken from ``previous`` (a record)
    when size and mtime are unchanged, else read from the content. Raises OSError for a missing file."""
    st = os.stat(path)
    ident = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if previous and previous.get("sha256") and all(previous.get(k) == v for k, v in ident.items()):
        return {**ident, "sha256": previous["sha256"]}
    return {**ident, "sha256": sha256_file(path)}


def options_hash(task: str, options: dict) -> str:
    """A hash of what decides a task's outputs (the options as JSON, keys sorted)."""
    text = json.dumps({"task": task, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def outputs_present(out_dir: Path, outputs: dict[str, int]) -> bool:
    for rel, size in outputs.items():
        try:
            if os.stat(out_dir / rel).st_size != size:
                return False
        except OSError:
            return False
    return True


class Manifest:
    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / NAME
        self.data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "tasks": {}}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise SonoscopeError(f"{self.path}: the batch manifest cannot be read ({e}); move it away "
                                     f"to start over") from None
            if data.get("format") != FORMAT:
                raise SonoscopeError(f"{self.path} is not a Sonoscope batch manifest")
            self.data = data

    def entries(self, task: str) -> dict[str, dict]:
        return self.data["tasks"].setdefault(task, {})

    def get(self, task: str, path: Path) -> dict | None:
        return self.entries(task).get(str(path))

    def complete(self, task: str, path: Path, ident: dict, opts_hash: str) -> bool:
        e = self.get(task, path)
        return bool(e and e.get("status") == "done" and e.get("sha256") == ident.get("sha256")
                    and e.get("options") == opts_hash and outputs_present(self.out_dir, e.get("outputs", {})))

    def record(self, task: str, path: Path, entry: dict) -> None:
        self.entries(task)[str(path)] = {**entry, "finished": round(time.time(), 3)}
        self.save()

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """One batch at a time per output folder (its manifest and staging folder are the driver's)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        yield
        return
    with open(out_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SonoscopeError(f"another batch is writing to {out_dir}; wait for it or choose another folder") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
