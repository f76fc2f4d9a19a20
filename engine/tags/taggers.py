"""Every classifier behind one interface, so the tagging task knows nothing of model kinds.

A tagger has ``sample_rate``, ``window`` (its native window, seconds), ``labels``, ``multi_label``
(sigmoid scores, several labels at once; else softmax over exclusive classes), ``frame_seconds``
(None for clip classifiers; the frame stride of frame classifiers) and
``logits(windows (B, n) float32 at sample_rate) -> (B, C)`` or ``(B, T, C)`` for frame classifiers.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .. import models
from ..audio.dsp import ast_features, efficientat_mel
from ..errors import CheckpointError

DEFAULT_MODEL = "efficientat-mn04-as"
AUDIOSET_LABELS = Path(__file__).resolve().parent.parent / "catalog" / "audioset_labels.csv"


class Tagger:
    sample_rate: int
    window: float
    labels: list[str]
    multi_label = True
    frame_seconds: float | None = None
    name = ""

    def logits(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class EfficientATTagger(Tagger):
    """EfficientAT MobileNetV3 (any width): 32 kHz log-mel, any input length (trained on 10 s clips)."""

    window = 3.0  # trained on 10 s clips: shorter windows place sounds better but recognise them worse

    def __init__(self, model) -> None:
        self.model, self.sample_rate = model, 32000
        self.labels = model.cfg.labels
        if self.labels[0].startswith("class ") and model.cfg.num_classes == 527:
            from ..models.efficientat import read_labels

            self.labels = read_labels(AUDIOSET_LABELS)  # a bare checkpoint: AudioSet's own labels
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def logits(self, windows: np.ndarray) -> np.ndarray:
        mel = efficientat_mel(torch.from_numpy(np.ascontiguousarray(windows, np.float32)))  # (B, 128, N)
        return self.model(mel.to(self.device)).float().cpu().numpy()


class ASTTagger(Tagger):
    """Audio Spectrogram Transformer: 16 kHz Kaldi fbank, ``max_length`` frames (10.24 s for AudioSet)."""

    def __init__(self, model) -> None:
        self.model, self.sample_rate = model, 16000
        cfg = model.cfg
        self.labels = list(cfg.labels)
        self.window = cfg.max_length / 100.0  # 10 ms frames
        self.device = next(model.parameters()).device
        self.multi_label = cfg.num_labels > 35  # AudioSet (527): sigmoid; speech commands (35): softmax

    @torch.inference_mode()
    def logits(self, windows: np.ndarray) -> np.ndarray:
        c = self.model.cfg
        feats = np.stack([ast_features(w, max_length=c.max_length, mean=c.mean, std=c.std,
                                       num_mel_bins=c.num_mel_bins) for w in windows])
        return self.model(torch.from_numpy(feats).to(self.device)).float().cpu().numpy()


class Wav2Vec2Tagger(Tagger):
    """wav2vec2 / HuBERT sequence classification (keyword spotting, language, emotion: softmax over the
    config's ``id2label``) or frame classification (one label vector per frame)."""

    window = 10.0
    multi_label = False

    def __init__(self, model) -> None:
        cfg = model.config
        if cfg.head not in ("sequence", "frame"):
            raise CheckpointError(f"this wav2vec2 model has a {cfg.head} head, not a classifier: it cannot tag")
        self.model, self.sample_rate = model, cfg.sampling_rate
        self.labels = [cfg.id2label.get(i, f"class {i}") for i in range(cfg.num_labels)]
        if cfg.head == "frame":
            self.frame_seconds = cfg.frame_stride / cfg.sampling_rate

    @torch.inference_mode()
    def logits(self, windows: np.ndarray) -> np.ndarray:
        return np.stack([self.model.logits(w) for w in windows])  # each normalised on its own, as HF does


def load_tagger(name: str | os.PathLike | None = None, state=None, device: str = "cpu") -> Tagger:
    """A tagger for a catalog id or a model folder (default: the offline EfficientAT tagger)."""
    name = name or DEFAULT_MODEL
    folder, family = models.resolve(name, state)
    model = models.load(folder, state=state, device=device, family=family, int8=False)
    if family == "efficientat":
        tagger: Tagger = EfficientATTagger(model)
    elif family == "ast":
        tagger = ASTTagger(model)
    elif family == "wav2vec2":
        tagger = Wav2Vec2Tagger(model)
    else:
        raise CheckpointError(f"{name}: a {family} model does not classify sounds")
    tagger.name = str(name)
    return tagger
