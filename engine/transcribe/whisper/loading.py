"""Whisper model names to loaded (model, tokenizer) pairs, through the shared model cache."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ... import models
from ...errors import CheckpointError
from ...jobs import JobState
from ...models.whisper import Whisper
from .tokenizer import Tokenizer

DEFAULT_MODEL = "whisper-tiny.en"


def model_id(name: str) -> str:
    """'tiny.en' -> 'whisper-tiny.en'; catalog ids pass through."""
    return name if name.startswith("whisper-") else f"whisper-{name}"


def resolve_folder(name: str | os.PathLike, state: JobState | None = None) -> Path:
    """A folder (or .pt file) path as is; otherwise a catalog id (or short name) through the model store."""
    p = Path(name).expanduser()
    return p if p.exists() else models.resolve(model_id(str(name)), state, family="whisper")[0]


def find_tokenizer(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    if (folder / "tokenizer.json").exists():
        return folder / "tokenizer.json"
    raise CheckpointError(f"No tokenizer.json next to the Whisper weights in {folder}")


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str, n_vocab: int) -> Tokenizer:
    return Tokenizer(find_tokenizer(Path(path)), n_vocab)


def load(name: str | os.PathLike = DEFAULT_MODEL, state: JobState | None = None, int8: bool | None = None,
         device: str = "cpu") -> tuple[Whisper, Tokenizer]:
    """(model, tokenizer) for a catalog id, a short name ('base') or a local folder; cached.

    ``int8`` (default: on the CPU) quantises the Linear layers (``models.whisper.INT8_DEFAULT``
    split) on the CPU.
    """
    folder = resolve_folder(name, state)
    model = models.load(folder, state=state, device=device, int8=int8, family="whisper")
    return model, _tokenizer(str(folder), model.cfg.n_vocab)
