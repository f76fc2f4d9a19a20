"""Model ids to loaded (model, tokenizer) pairs, through the model store; a small cache of loaded models."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..jobs import JobState
from ..models.whisper import Whisper, load_model
from .tokenizer import Tokenizer

DEFAULT_MODEL = "whisper-tiny.en"
_cache: dict[tuple, tuple[Whisper, Tokenizer]] = {}
_lock = threading.Lock()


def model_id(name: str) -> str:
    """'tiny.en' -> 'whisper-tiny.en'; catalog ids pass through."""
    return name if name.startswith("whisper-") else f"whisper-{name}"


def resolve_folder(name: str | os.PathLike, state: JobState | None = None) -> Path:
    """A folder (or .pt file) path as is; otherwise a catalog id (or short name) through the model store."""
    p = Path(name)
    if p.exists():
        return p
    from ..store import default_store

    return default_store().resolve(model_id(str(name)), state=state)


def find_tokenizer(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    if (folder / "tokenizer.json").exists():
        return folder / "tokenizer.json"
    raise CheckpointError(f"No tokenizer.json next to the Whisper weights in {folder}")


def load(name: str | os.PathLike = DEFAULT_MODEL, state: JobState | None = None, int8: bool | None = None,
         device: str = "cpu") -> tuple[Whisper, Tokenizer]:
    """(model, tokenizer) for a catalog id, a short name ('base') or a local folder; cached.

    ``int8`` (default: on CPU) applies dynamic int8 quantization to the Linear layers.
    """
    if int8 is None:
        int8 = device == "cpu"
    key = (str(name), bool(int8), device)
    with _lock:
        if key in _cache:
            return _cache[key]
    folder = resolve_folder(name, state)
    if state is not None:
        state.update(status="loading model")
    model = load_model(folder, device=device, dtype=torch.float16 if device == "cuda" else torch.float32)
    if int8 and device == "cpu":
        model.quantize_int8()
    tokenizer = Tokenizer(find_tokenizer(folder), model.cfg.n_vocab)
    with _lock:
        _cache.clear()  # keep one model in memory
        _cache[key] = (model, tokenizer)
    return model, tokenizer
