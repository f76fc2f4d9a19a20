"""SpeechBrain's SepFormer as the reference (tests/test_sepformer.py, benchmarks/bench_separation.py).

SpeechBrain declares torchaudio, which does not work beside this torch: its separation inference path
never calls it, so an empty stand-in module is registered before the import."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch


def speechbrain_modules(quiet: bool = False):
    """(load_hyperpyyaml, SepformerSeparation); ImportError when SpeechBrain is not installed.
    ``quiet``: its warnings and log lines off for the rest of the process (a benchmark's table)."""
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    if quiet:
        import logging
        import warnings

        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.inference.separation import SepformerSeparation

    return load_hyperpyyaml, SepformerSeparation


def sb_folder(speechbrain, folder: Path, yaml_text: str, seed: int = 0):
    """Build SpeechBrain's SepFormer from ``yaml_text`` (random weights) and save it as a hub folder."""
    load_hyperpyyaml, SepformerSeparation = speechbrain
    torch.manual_seed(seed)
    hp = load_hyperpyyaml(yaml_text)
    ref = SepformerSeparation(modules=hp["modules"], hparams=hp)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(yaml_text)
    for name in ("encoder", "masknet", "decoder"):  # what SpeechBrain's checkpointer saves: the state dict
        torch.save(hp["modules"][name].state_dict(), folder / f"{name}.ckpt")
    return ref


def sb_separate(ref, x: np.ndarray) -> np.ndarray:
    """(n,) mixture -> (2, n) sources by the SpeechBrain model."""
    with torch.inference_mode():
        return ref.separate_batch(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0].T.numpy()
