"""Whisper's timestamps as a user reads them in subtitles: no cue past the end of the audio, no two
cues overlapping, every segment spanning exactly its words (real model, real speech)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio import io as eaudio
from engine.results import Segment, Word
from engine.transcribe.exports import render
from engine.transcribe.task import transcribe_file
from engine.transcribe.whisper.longform import tidy_segments


def test_tidy_segments_clamps_orders_and_spans_words():
    segs = [Segment(10.0, 12.0, " a b", [Word(" a", 9.5, 10.4), Word(" b", 10.3, 12.6)]),
            Segment(11.8, 31.2, " c")]  # starts inside the previous one and ends past the audio
    tidy_segments(segs, floor=10.0, ceiling=24.73)
    (a, b), c = segs[0].words, segs[1]
    assert (a.start, a.end, b.start, b.end) == (10.0, 10.4, 10.4, 12.6)
    assert (segs[0].start, segs[0].end) == (10.0, 12.6)
    assert (c.start, c.end) == (12.6, 24.73)


def _speech(librivox, pause=0.4) -> np.ndarray:
    parts = []
    for path, _ in librivox:
        a, _ = eaudio.load(path, sr=16000, mono=True)
        parts += [a, np.zeros(int(pause * 16000), np.float32)]
    return np.concatenate(parts)[: int(24.73 * 16000)]  # ends mid-utterance, 24.73 s


@pytest.mark.parametrize("words", [False, True])
def test_cues_stay_inside_the_audio_and_never_overlap(librivox, tmp_path, words):
    wav = tmp_path / "talk.wav"
    eaudio.save(wav, _speech(librivox), 16000)
    duration = eaudio.info(wav).duration
    t = transcribe_file(None, wav, model="tiny.en", options={"word_timestamps": words})
    assert len(t.segments) >= 4
    ends = [s.end for s in t.segments]
    assert max(ends) <= duration + 1e-6
    for a, b in zip(t.segments, t.segments[1:]):
        assert a.start <= a.end <= b.start, (a, b)
    if words:
        for s in t.segments:
            assert s.words and (s.start, s.end) == (s.words[0].start, s.words[-1].end)
            assert all(w.start <= w.end <= duration for w in s.words)
    srt = render(t, "srt")
    last = srt.strip().split("\n\n")[-1].splitlines()[1]
    h, m, rest = last.split(" --> ")[1].split(":")
    assert int(h) * 3600 + int(m) * 60 + float(rest.replace(",", ".")) <= duration + 1e-3

