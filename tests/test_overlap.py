"""Two people talking at once: separate the voices, transcribe each, merge by time (engine.speakers.overlap).

No SepFormer weights exist offline, so the separator is an oracle that returns the true voices of the
real mixture (the separation model itself is proven against SpeechBrain in test_sepformer.py); the
transcription is the real offline Whisper tiny.en on real speech of two real speakers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import voices
from engine.errors import NotAnAudioFile
from engine.results import Segment, Transcript, Word
from engine.speakers.overlap import merge_transcripts, transcribe_overlapped
from engine.wer import normalize_words

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not voices.available(), reason="needs Debian pocketsphinx-testdata")

A = "librivox/sense_and_sensibility_01_austen_64kb-0890.wav"  # "unless to be rather cold hearted ..."
B = "cards/005.wav"  # "eight of spades four of clubs seven of hearts"


class Oracle(torch.nn.Module):
    """A 'separator' that returns the true voices of the one mixture it is given (whole file, one chunk)."""

    sample_rate = 16000
    num_spks = 2

    def __init__(self, sources: np.ndarray) -> None:
        super().__init__()
        self.sources = sources
        self.calls = 0

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        n = mix.shape[-1]
        y = np.zeros((2, n), np.float32)
        y[:, :min(n, self.sources.shape[1])] = self.sources[:, :n]
        return torch.from_numpy(y)[None]


def _overlapped() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """(2, n) voices: A from 0.3 s, B from 1.2 s, talking over A; equal loudness. And their spans."""
    a, b = voices.clip(A), voices.clip(B)
    b = b * np.sqrt(np.mean(a ** 2) / np.mean(b ** 2))
    sa, sb = int(0.3 * 16000), int(1.2 * 16000)
    n = max(sa + len(a), sb + len(b)) + 8000
    src = np.zeros((2, n), np.float32)
    src[0, sa:sa + len(a)] = a
    src[1, sb:sb + len(b)] = b
    spans = [(sa / 16000 + x, sa / 16000 + y) for x, y in [voices.speech_span(A)]]
    spans += [(sb / 16000 + x, sb / 16000 + y) for x, y in [voices.speech_span(B)]]
    return src, spans


DIGITS = dict(zip("0123456789", "zero one two three four five six seven eight nine".split()))


def _words(t: Transcript, speaker: str) -> list[str]:
    words = normalize_words(" ".join(w.word for s in t.segments if s.speaker == speaker for w in s.words))
    return [DIGITS.get(w, w) for w in words]  # Whisper writes "8 of spades"


def test_both_voices_are_transcribed_with_their_speaker_and_merged_by_time(tmp_path):
    src, spans = _overlapped()
    mix = tmp_path / "talk.wav"
    sf.write(str(mix), 0.5 * src.sum(0), 16000, subtype="FLOAT")
    oracle = Oracle(0.5 * src)
    t = transcribe_overlapped(None, mix, separator=oracle, names={"S2": "Bea"}, model="tiny.en")
    assert oracle.calls == 1
    assert {s.speaker for s in t.segments} == {"S1", "Bea"}
    said_a = normalize_words(voices.WORDS[A])
    said_b = normalize_words(voices.WORDS[B])
    got_a, got_b = _words(t, "S1"), _words(t, "Bea")
    print("S1:", " ".join(got_a), "\nBea:", " ".join(got_b))
    # each speaker's own words, nearly all of them, and none of the other's
    assert sum(w in said_a for w in got_a) >= 0.8 * len(said_a) and sum(w in said_b for w in got_a) <= 1
    assert sum(w in got_b for w in said_b) >= 0.8 * len(said_b)
    assert not set(got_b) & ({"cold", "hearted", "selfish", "disposed"})
    # merged by time: segments ordered by start, renumbered; they overlap in time (both talked)
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts) and [s.id for s in t.segments] == list(range(len(t.segments)))
    a_span = (min(s.start for s in t.segments if s.speaker == "S1"), max(s.end for s in t.segments if s.speaker == "S1"))
    b_span = (min(s.start for s in t.segments if s.speaker == "Bea"), max(s.end for s in t.segments if s.speaker == "Bea"))
    assert min(a_span[1], b_span[1]) - max(a_span[0], b_span[0]) > 1.0
    # (Whisper's alignment may stretch a first word back over the silence before it: starts are loose)
    for (got, want) in ((a_span, spans[0]), (b_span, spans[1])):
        assert got[0] < want[0] + 0.6 and abs(got[1] - want[1]) < 0.8, (got, want)
    assert all(w.speaker == s.speaker for s in t.segments for w in s.words)
    assert t.language == "en" and abs(t.duration - src.shape[1] / 16000) < 1e-3
    assert list(tmp_path.iterdir()) == [mix]  # the voice tracks were temporary


def test_merge_orders_by_time_and_keeps_the_first_language():
    def tr(lang, *segs):
        return Transcript([Segment(a, b, txt, [Word(txt, a, b)], id=9) for a, b, txt in segs], lang, 5.0)

    m = merge_transcripts([tr(None, (2.0, 3.0, "c"), (0.0, 1.0, "a")), tr("de", (0.5, 2.5, "b"), (2.0, 2.5, "c2"))],
                          duration=6.0)
    assert [s.text for s in m.segments] == ["a", "b", "c2", "c"]  # by start, then by end
    assert [s.id for s in m.segments] == [0, 1, 2, 3]
    assert m.language == "de" and m.duration == 6.0
    with pytest.raises(ValueError):
        merge_transcripts([])


def test_bad_input_fails_before_any_model_and_leaves_nothing(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(NotAnAudioFile):
        transcribe_overlapped(None, bad, separator="no-such-model")
    assert list(tmp_path.iterdir()) == [bad]


def test_overlapped_cli_says_when_the_separator_is_not_installed(tmp_path):
    sf.write(str(tmp_path / "x.wav"), 0.1 * np.random.default_rng(0).standard_normal(16000 * 2).astype(np.float32),
             16000)
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", SONOSCOPE_MODELS=str(tmp_path / "models"))
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "transcribe", str(tmp_path / "x.wav"),
                        "--overlapped", "--model", "tiny.en", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "sepformer-wsj02mix' is not installed" in r.stderr
    assert not (tmp_path / "out").exists()
