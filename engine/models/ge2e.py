"""GE2E speaker encoder (Wan et al. 2018) as trained by Resemblyzer (``resemblyzer==0.1.4``,
``resemblyzer/pretrained.pt``), without Resemblyzer or librosa at run time.

Input: a 40-bin mel *power* spectrogram of 16 kHz audio (25 ms periodic Hann window, 10 ms hop,
centred with zero padding, Slaney mel scale and norm: ``librosa.feature.melspectrogram``'s defaults,
computed here with :mod:`engine.audio.dsp`) ``(B, N, 40)`` -> 3-layer LSTM 40 -> 256 -> Linear
256 -> 256 -> ReLU -> L2 norm: one 256-dim embedding per sequence (non-negative, unit length), from
the last layer's final hidden state. Utterance embeddings average the embeddings of 160-frame
(1.6 s) partials taken at 1.3 partials per second (:func:`partial_slices`, :func:`embed_utterance`:
Resemblyzer's ``compute_partial_slices`` / ``embed_utterance``).

The checkpoint is a dict ``{"model_state": ...}`` read with ``torch.load(weights_only=True)``; the
GE2E loss's ``similarity_weight`` / ``similarity_bias`` in it are not part of the encoder.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..audio import dsp
from ..errors import CheckpointError

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
HIDDEN = 256
EMBED = 256
LAYERS = 3
PARTIAL_FRAMES = 160  # 1.6 s
CHECKPOINT = "pretrained.pt"


@functools.lru_cache(maxsize=4)
def _mel_basis(device: str) -> Tensor:
    return torch.from_numpy(dsp.mel_filters(SAMPLE_RATE, N_FFT, N_MELS)).to(device)  # (M, F)


def mel_spectrogram(wav: np.ndarray | Tensor) -> Tensor:
    """GE2E input frames. wav: (T,) or (B, T) float at 16 kHz -> (N, 40) or (B, N, 40), N = 1 + T // 160.

    ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)`` transposed:
    power spectrum (not log) through the Slaney mel bank."""
    x = torch.as_tensor(np.asarray(wav, np.float32)) if not torch.is_tensor(wav) else wav.float()
    spec = dsp.stft(x, N_FFT, HOP, pad_mode="constant")  # (..., F, N)
    power = spec.real.square() + spec.imag.square()
    return (_mel_basis(str(x.device)) @ power).transpose(-1, -2).contiguous()  # (..., N, M)


class GE2E(nn.Module):
    """Resemblyzer's ``VoiceEncoder`` network (same parameter names)."""

    sample_rate = SAMPLE_RATE

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBED)

    @property
    def device(self) -> torch.device:
        return self.linear.weight.device

    def forward(self, mels: Tensor, lengths: Tensor | None = None) -> Tensor:
        """mels (B, N, 40) -> (B, 256) unit-length embeddings. ``lengths`` (B,) frames per sequence when
        they differ (the rest is padding): each sequence then ends at its own last frame."""
        if lengths is not None and bool((lengths != mels.shape[1]).any()):
            mels = nn.utils.rnn.pack_padded_sequence(mels, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(mels)  # hidden: (layers, B, H), in the batch's order
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)

    @torch.no_grad()
    def embed_frames(self, mels: list[Tensor] | Tensor, batch: int = 64) -> np.ndarray:
        """Embeddings of mel sequences (each (N_i, 40), lengths may differ) -> (K, 256) float32."""
        seqs = list(mels)
        out = np.zeros((len(seqs), EMBED), np.float32)
        for i in range(0, len(seqs), batch):
            chunk = seqs[i:i + batch]
            lengths = torch.tensor([len(s) for s in chunk])
            padded = nn.utils.rnn.pad_sequence(chunk, batch_first=True).to(self.device)
            out[i:i + len(chunk)] = self(padded, lengths).float().cpu().numpy()
        return out


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> tuple[list[slice], list[slice]]:
    """(wav slices, mel slices) of the 160-frame partials of an utterance of ``n_samples``: one every
    ``round(16000 / rate / 160)`` frames; the last one is kept when at least ``min_coverage`` of it
    holds audio (or when it is the only one). Slices may reach past the end: pad the audio with zeros."""
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], not {min_coverage}")
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((SAMPLE_RATE / rate) / HOP))
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} is out of range (at least {SAMPLE_RATE / (HOP * PARTIAL_FRAMES):.3f} "
                         f"partials per second, at most {2 * SAMPLE_RATE / HOP:.0f})")
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    mel_slices = [slice(i, i + PARTIAL_FRAMES) for i in range(0, steps, frame_step)]
    wav_slices = [slice(s.start * HOP, s.stop * HOP) for s in mel_slices]
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


@torch.no_grad()
def embed_utterance(model: GE2E, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75,
                    return_partials: bool = False):
    """The utterance embedding (256,) of 16 kHz mono audio: the L2-normed mean of its partials' embeddings.

    With ``return_partials``: (embedding, partial embeddings (P, 256), wav slices), as Resemblyzer."""
    wav = np.asarray(wav, np.float32).reshape(-1)
    if len(wav) == 0:
        raise ValueError("cannot embed an empty utterance")
    wav_slices, mel_slices = partial_slices(len(wav), rate, min_coverage)
    if wav_slices[-1].stop >= len(wav):
        wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
    mel = mel_spectrogram(wav)  # (N, 40)
    mels = torch.stack([mel[s] for s in mel_slices]).to(model.device)  # (P, 160, 40)
    partials = model(mels).float().cpu().numpy()
    raw = partials.mean(0)
    embed = raw / np.linalg.norm(raw, 2)
    return (embed, partials, wav_slices) if return_partials else embed


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> GE2E:
    """A Resemblyzer checkpoint file, or a folder holding ``pretrained.pt`` (or a single ``*.pt``)."""
    path = Path(path)
    if path.is_dir():
        files = [path / CHECKPOINT] if (path / CHECKPOINT).exists() else sorted(path.glob("*.pt"))
        if len(files) != 1:
            raise CheckpointError(f"{path}: expected the GE2E checkpoint {CHECKPOINT}, found {len(files)} .pt files")
        path = files[0]
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, or not a torch file
        raise CheckpointError(f"{path.name}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    sd = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path.name}: not a GE2E checkpoint (no model_state)")
    sd = {k: v for k, v in sd.items() if not k.startswith("similarity_")}  # the GE2E loss's scale and bias
    model = GE2E()
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path.name}: does not fit the GE2E speaker encoder "
                              f"({str(e).splitlines()[0]})") from None
    return model.eval().to(device)

