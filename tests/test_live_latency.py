"""Live transcription that keeps up: the session clock stamps every committed word with when it was shown and
committed (session JSON, the `live` summary), a slowed engine catches up without dropping audio, and the live
Whisper transcript of real short phrases (each said twice) is as good as the offline one."""

from __future__ import annotations

import json

import numpy as np
import pytest

import voices
from engine.audio import io as eaudio
from engine.audio.capture import ReplaySource
from engine.cli import main as cli
from engine.jobs import JobState
from engine.results import Transcript, Word, live_latency
from engine.transcribe.live import live_transcribe
from engine.transcribe.streaming import CTCStreamer, SessionClock, StreamUpdate, replay
from engine.transcribe.whisper.loading import load as load_whisper
from engine.transcribe.whisper.longform import transcribe
from engine.transcribe.whisper.streaming import WhisperStreamer, whisper_transcriber
from engine.wer import normalize_words, wer
from tests.test_streaming import tiny

DIGITS = dict(zip("0123456789", "zero one two three four five six seven eight nine".split()))


def _spelled(text: str) -> str:
    return " ".join(DIGITS.get(w, w) for w in text.replace(",", " ").split())


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_session_clock_stamps_shown_committed_and_lag():
    clock = FakeClock()
    sc = SessionClock(clock)
    sc.start()
    words: list[Word] = []
    clock.t += 1.0  # 1 s into the session: "hello" shown as tentative
    u = sc.stamp(StreamUpdate("", "hello there", audio_time=0.9), words)
    assert u.lag == pytest.approx(0.1)
    clock.t += 1.5  # 2.5 s: "hello" committed, "there" still tentative, "you" new
    words.append(Word("hello", 0.2, 0.6))
    sc.stamp(StreamUpdate("hello", "there you", audio_time=2.0), words)
    assert (words[0].shown, words[0].committed) == (1.0, 2.5)
    clock.t += 1.0  # 3.5 s: both committed
    words += [Word("there", 0.7, 1.0), Word("you", 1.9, 2.2)]
    sc.stamp(StreamUpdate("hello there you", "", audio_time=3.5), words)
    assert [(w.shown, w.committed) for w in words] == [(1.0, 2.5), (1.0, 3.5), (2.5, 3.5)]
    lat = live_latency(words)
    assert lat["words"] == 3 and lat["committed"]["max"] == pytest.approx(2.5)
    assert lat["shown"]["median"] == pytest.approx(0.3)
    # a tentative tail that ran ahead with other words did not show the word that came there
    clock.t += 1.0  # 4.5 s: "end" guessed at position 3
    sc.stamp(StreamUpdate("hello there you", "end of", audio_time=4.5), words)
    clock.t += 1.0  # 5.5 s: now "And"
    sc.stamp(StreamUpdate("hello there you", "And of", audio_time=5.5), words)
    clock.t += 0.5
    words.append(Word("and", 3.9, 4.2))
    sc.stamp(StreamUpdate("hello there you and", "", audio_time=6.0), words)
    assert (words[3].shown, words[3].committed) == (5.5, 6.0)
    words = words[:3]
    # in the JSON transcript: per word, and the summary
    d = Transcript.from_words(words, 4.0).to_dict()
    assert d["latency"] == lat and d["segments"][0]["words"][0]["committed"] == 2.5
    assert "committed" not in Transcript.from_words([Word("x", 0, 1)], 1.0).to_dict()["segments"][0]["words"][0]
    assert "latency" not in Transcript.from_words([Word("x", 0, 1)], 1.0).to_dict()


def test_a_slowed_engine_catches_up_and_drops_no_audio(librivox):
    """Each decode takes 1.5 s while audio keeps arriving at real time: the engine falls behind, reads
    everything captured meanwhile at once, makes the pending chunks final with one window instead of
    one each (re-decoding skipped), says so, and in the end has every sample and every frame decoded
    once, nearly as an unhurried replay of the same audio decodes them (other context, same audio)."""
    a, _ = eaudio.load(librivox[1][0], mono=True)
    a = a[: 16000 * 6]
    model = tiny("layer", True, True)
    ref = CTCStreamer(model, chunk=0.3, right=0.2, keep_logits=True)
    replay(ref, a, block=0.1)

    class Slow(CTCStreamer):
        def process(self):
            u = super().process()
            if u is not None:
                import time

                time.sleep(1.5)
            return u

    statuses = []
    state = JobState(lambda s: statuses.append(s.status))
    s = Slow(model, chunk=0.3, right=0.2, keep_logits=True)
    r = live_transcribe(state, s, source=ReplaySource(a, 16000, speed=1.0))
    assert len(r["audio"]) == len(a) and r["lost_seconds"] == 0.0
    n = model.config.num_frames(len(a))
    assert s.logits.shape[0] == ref.logits.shape[0] == n  # every frame final once: none skipped
    assert len(s.chunk_times) < len(ref.chunk_times) / 2  # catching up: far fewer windows
    assert (s.logits.argmax(-1) == ref.logits.argmax(-1)).mean() > 0.8
    assert r["words"] and len(r["words"]) >= len(ref.words) * 0.7
    assert any(st.startswith("catching up") for st in statuses), statuses
    lags = [u.lag for u in r["updates"]]
    assert max(lags) > 1.0  # it really fell behind (and said by how much)
    assert all(w.committed is not None and w.committed >= w.end - 0.05 for w in r["words"])


def test_a_stall_longer_than_the_buffer_is_counted_not_hidden():
    class Source:  # a ring buffer that lost 0.5 s before the first read
        samplerate, channels, finished = 16000, 1, False

        def __init__(self):
            self.calls = 0

        def cursor(self):
            return 0

        def read(self, cursor):
            self.calls += 1
            if self.calls == 1:
                return np.full((8000, 1), 0.1, np.float32), cursor + 16000, 8000
            self.finished = True
            return np.zeros((0, 1), np.float32), cursor, 0

    statuses = []
    s = CTCStreamer(tiny("layer", True, True))
    r = live_transcribe(JobState(lambda st: statuses.append(st.status)), s, source=Source())
    assert r["lost_seconds"] == 0.5 and len(r["audio"]) == 16000  # the gap is kept, as silence
    assert np.all(r["audio"][:8000] == 0) and any("0.5 s of audio lost" in st for st in statuses)


@pytest.mark.skipif(not voices.available(), reason="needs Debian pocketsphinx-testdata")
def test_live_whisper_on_real_phrases_said_twice_is_as_good_as_offline():
    """A minute of real short phrases of several speakers, each said twice (the second is not a duplicate
    to drop): the live transcript's WER is within 2 points of the offline transcription's."""
    audio, ref = voices.phrases("test", seconds=60)
    m, tok = load_whisper("whisper-tiny.en", int8=True)
    offline = transcribe(None, m, tok, audio, language="en").text
    s = WhisperStreamer(whisper_transcriber(m, tok))
    replay(s, audio, block=0.1)
    w_live, w_off = wer(ref, _spelled(s.committed)), wer(ref, _spelled(offline))
    print(f"WER live {w_live:.3f} offline {w_off:.3f}")
    assert w_live <= w_off + 0.02
    # every phrase is there twice
    said = " ".join(_spelled(" ".join(normalize_words(s.committed))).split())
    for phrase in ("seven of clubs", "rather selfish is to be", "he might even have been made amiable himself"):
        assert said.count(phrase) == 2, said


@pytest.mark.skipif(not voices.available(), reason="needs Debian pocketsphinx-testdata")
def test_live_cli_realtime_reports_and_records_latency(tmp_path, capsys):
    audio, ref = voices.phrases("test", seconds=10)
    wav = tmp_path / "phrases.wav"
    eaudio.save(wav, audio, 16000)
    out = tmp_path / "session.json"
    rc = cli(["live", "--engine", "whisper", "--file", str(wav), "--realtime", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    assert "latency after each word's end" in err and "committed median" in err
    j = json.loads(out.read_text())
    words = [w for s in j["segments"] for w in s["words"]]
    assert words and j["latency"]["words"] == len(words)
    for w in words:  # committed after it was said (word times are estimates: 0.3 s slack), shown no later
        assert w["committed"] >= w["end"] - 0.3 and w["shown"] <= w["committed"]
    assert [w["committed"] for w in words] == sorted(w["committed"] for w in words)
    assert j["latency"]["committed"]["p95"] < 15  # (speed is measured by benchmarks/bench_live.py)
    # a replay faster than real time says that it measured nothing
    rc = cli(["live", "--engine", "whisper", "--file", str(wav), "--out", str(tmp_path / "fast.json")])
    assert rc == 0 and "latency: not measured" in capsys.readouterr().err
