"""Speech that Whisper skips is decoded again (engine.transcribe.whisper.longform.first_missed_speech).

Whisper often writes a phrase said twice once: the second saying lies inside a segment or between
two, and no word of the text covers it. Long-form transcription compares the window's words
(aligned, even when word timestamps were not asked for) with the speech Silero VAD hears, and
starts the next window at the first stretch no word covers, decoded without the text that skipped
it. On the long files of phrases said twice (tests/whisper_long.py) this took Whisper base from
36.6% to 6.1% pooled WER (benchmarks/bench_whisper_int8.py); tests/test_whisper_int8.py holds the
real-model bound, these tests the rule itself on real speech.
"""

from __future__ import annotations

import numpy as np
import pytest

import voices
from engine.results import Segment, Word
from engine.transcribe.whisper import longform as T

pytestmark = pytest.mark.skipif(not voices.available(), reason="pocketsphinx-testdata is not installed")
NAME = "cards/005.wav"  # "eight of spades four of clubs seven of hearts", ~3 s
RATE = 16000


def _said_twice(lead: float = 2.0, pause: float = 1.0):
    """A window (lead silence, the phrase, a pause, the phrase again, silence) and the phrase's two
    voiced spans in window time."""
    c = voices.clip(NAME)
    a, b = voices.speech_span(NAME)
    z = lambda s: np.zeros(int(s * RATE), np.float32)  # noqa: E731
    audio = np.concatenate([z(lead), c, z(pause), c, z(1.0)])
    first = (lead + a, lead + b)
    second = (lead + len(c) / RATE + pause + a, lead + len(c) / RATE + pause + b)
    return audio, first, second


def _words(span, offset=0.0, n=4):
    """n words evenly over a span (as an alignment would give them), shifted to file time."""
    edges = np.linspace(span[0], span[1], n + 1) + offset
    return [Word(f" w{i}", float(edges[i]), float(edges[i + 1])) for i in range(n)]


def test_the_second_saying_that_no_word_covers_is_found():
    audio, first, second = _said_twice()
    end = 60.0 + len(audio) / RATE
    gap = T.first_missed_speech(audio, 60.0, _words(first, 60.0), end)  # a window starting at 60 s
    assert gap == pytest.approx(60.0 + second[0], abs=0.1)
    assert T.first_missed_speech(audio, 60.0, _words(first, 60.0) + _words(second, 60.0), end) is None


def test_speech_left_for_the_next_window_or_at_the_window_start_is_not_missed():
    audio, first, second = _said_twice()
    words = _words(first)
    assert T.first_missed_speech(audio, 0.0, words, upto=second[0] - 0.1) is None  # the next window starts before it
    # the window was decoded from that very speech: decoding it again from there would not move on
    audio, first, second = _said_twice(lead=0.0)
    assert first[0] < T.GAP_GUARD
    assert T.first_missed_speech(audio, 0.0, _words(second), len(audio) / RATE) is None


def test_a_phrase_whose_words_end_early_is_not_missed():
    """The alignment often ends a phrase's last word a little early: the end of a covered stretch is
    not a skipped phrase (decoding it again would write its last word twice)."""
    audio, first, second = _said_twice()
    words = _words(first) + _words((second[0], second[1] - 0.8))
    assert T.first_missed_speech(audio, 0.0, words, len(audio) / RATE) is None


def test_a_word_stretched_over_a_pause_covers_only_its_end():
    """Alignment often stretches a segment's first word back over the pause before it; such a word
    must not hide a phrase said in that pause."""
    audio, first, second = _said_twice()
    stretched = [Word(" w", first[0], second[0] + 0.3)] + _words((second[0] + 0.3, second[1]))
    assert T.first_missed_speech(audio, 0.0, stretched, len(audio) / RATE) == pytest.approx(first[0], abs=0.1)


def test_a_window_is_cut_at_the_missed_speech_and_decoded_again_without_the_prompt(monkeypatch):
    """Long-form with a stubbed decoder that writes the phrase once over both sayings: the window is
    cut where the second saying starts, the next window starts there, without the previous text as
    prompt, and the phrase is in the transcript twice, in order, without overlapping cues."""
    import torch

    audio, first, second = _said_twice()
    calls = []

    class Tok:
        timestamp_begin, eot, sot_prev, multilingual = 1000, 999, 998, False

        def decode(self, tokens):
            return " eight of spades" if any(t < self.timestamp_begin for t in tokens) else ""

    tok = Tok()

    def fake_decode(model, tokenizer, features, opts, language, prompt, audio_features, check=None):
        calls.append((len(calls), list(prompt)))
        a = 0.0 if len(calls) == 1 else 0.2  # the phrase at the window's start
        b = (second[1] if len(calls) == 1 else second[1] - second[0] + 0.2) + 0.1
        ts = lambda s: tok.timestamp_begin + round(s / 0.02)  # noqa: E731
        return type("R", (), dict(tokens=[ts(a), 5, 6, ts(b)], temperature=0.0, avg_logprob=-0.1,
                                   compression_ratio=1.0, no_speech_prob=0.0))()

    def fake_words(model, tokenizer, segments, audio_features, num_frames, language=None):
        for s in segments:  # the words of one saying, at the first speech after the segment's start
            span = first if s.start < first[1] else second
            s.words = _words(span)

    monkeypatch.setattr(T, "decode_with_fallback", fake_decode)
    monkeypatch.setattr(T, "add_word_timestamps", fake_words)
    model = type("M", (), dict(cfg=type("C", (), dict(n_mels=80))(), device=torch.device("cpu"),
                               dtype=torch.float32, encoder=staticmethod(lambda x: x)))()
    r = T.transcribe(None, model, tok, audio, language="en", word_timestamps=False)
    assert len(calls) == 2 and calls[1][1] == []  # decoded again, with no prompt
    assert [s.text for s in r.segments] == [" eight of spades"] * 2
    # the next window starts WORD_PAD before the second saying; the stub puts its phrase 0.2 s in
    assert r.segments[0].end <= r.segments[1].start == pytest.approx(second[0] - T.WORD_PAD + 0.2, abs=0.1)
    assert all(s.words is None for s in r.segments)  # aligned for the check only


class _Tok:
    def encode(self, text):
        return [len(w) for w in text.split()]


def test_a_cut_segment_keeps_only_the_text_of_its_kept_words():
    """A window's text can come out of order ("4 Queen of clubs. He might even..." over audio that
    says them the other way round): the alignment then stretches one word over seconds of speech.
    Cut at the missed speech, a segment keeps the words that end before it, its text and tokens
    become theirs, and a word reaching past the gap goes (it is decoded again with the missed
    speech: kept, it was written twice, and the words after it were kept in the text but not in the
    words)."""
    gap = 10.0
    whole = Segment(0.0, 4.0, " one two", words=[Word(" one", 0.0, 1.0), Word(" two", 1.0, 4.0)], tokens=[7, 8])
    cut = Segment(5.0, 12.0, " three four five", tokens=[1, 2, 3],
                  words=[Word(" three", 5.0, 6.0), Word(" four", 6.0, 14.0), Word(" five", 14.0, 14.5)])
    after = Segment(12.0, 13.0, " six", words=[Word(" six", 12.0, 13.0)], tokens=[9])
    kept = T._cut_before(_Tok(), [whole, cut, after], gap)
    assert [s.text for s in kept] == [" one two", " three"]
    assert kept[0].tokens == [7, 8] and kept[1].tokens == [5] and kept[1].end == 6.0
    assert [w.text for s in kept for w in s.words] == ["one", "two", "three"]
    # a segment whose only word is stretched past the gap goes whole; unaligned segments by their times
    stretched = Segment(5.0, 12.0, " four", words=[Word(" four", 5.0, 14.0)], tokens=[4])
    assert [s.text for s in T._cut_before(_Tok(), [whole, stretched], gap)] == [" one two"]
    plain = [Segment(0.0, 4.0, " a"), Segment(8.0, 11.0, " b"), Segment(10.5, 12.0, " c")]
    kept = T._cut_before(_Tok(), plain, gap)
    assert [(s.text, s.end) for s in kept] == [(" a", 4.0), (" b", 10.0)]
