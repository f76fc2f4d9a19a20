"""Shared, generic fixtures: real speech with its transcripts, and a factory for test signals on disk."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def librivox_utterances() -> list[tuple[Path, str]]:
    """[(wav path, reference transcript)] for the five LibriVox utterances of pocketsphinx-testdata (16 kHz mono)."""
    items = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"\s*<s>(.*)</s>\s*\((.+)\)\s*$", line)
        if m:
            items.append((LIBRIVOX / f"{m.group(2).strip()}.wav", " ".join(m.group(1).split())))
    return items


@pytest.fixture(scope="session")
def librivox() -> list[tuple[Path, str]]:
    items = librivox_utterances()
    assert len(items) == 5 and all(p.exists() for p, _ in items), "pocketsphinx-testdata is not installed"
    return items


def make_signal(seconds: float = 1.0, sr: int = 16000, channels: int = 1, freqs=(440.0, 660.0),
                seed: int = 0) -> np.ndarray:
    """A deterministic float32 ``(channels, samples)`` mix of tones and a little noise, peak below 0.8."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    out = np.empty((channels, t.size), np.float32)
    for c in range(channels):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.1 * c) * t + c) for f in freqs) / len(freqs)
        out[c] = 0.6 * x + 0.05 * rng.standard_normal(t.size)
    return out


@pytest.fixture
def tmp_audio(tmp_path):
    """Factory: ``tmp_audio(name="a.wav", seconds=1, sr=16000, channels=1, audio=None, **sf_kwargs)``
    writes a test signal (or ``audio``, shaped ``(channels, samples)``) with soundfile and returns
    ``(path, audio)``."""
    import soundfile as sf

    def make(name: str = "a.wav", seconds: float = 1.0, sr: int = 16000, channels: int = 1,
             audio: np.ndarray | None = None, **kwargs) -> tuple[Path, np.ndarray]:
        if audio is None:
            audio = make_signal(seconds, sr, channels)
        audio = np.atleast_2d(np.asarray(audio, np.float32))
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), audio.T, sr, **kwargs)
        return path, audio

    return make


@pytest.fixture(scope="session")
def pulse():
    """A PulseAudio server with a null sink and its monitor as the microphone: one per test process
    (tests/pulse.py). Not skipped when missing: the setup installs it, and real devices are tested."""
    from tests.pulse import available, shared_pulse

    why = available()
    assert why is None, why
    return shared_pulse()
