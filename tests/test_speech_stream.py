"""Streaming speech: sentences into a bounded queue that playback pulls from (engine/audio/playback.py
StreamSource, engine/speech/stream.py), and the real thing through the PulseAudio null sink: time to
the first sound, underruns over a 200-word paragraph, stop, and the captured sound heard back by Whisper."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.audio.playback import StreamSource
from engine.errors import Cancelled
from engine.jobs import JobState

PARAGRAPH = (
    "Every morning I walk down to the little bakery at the end of our street. The owner is a kind old man "
    "who has been baking bread there for most of his life. He opens the shop very early, long before the sun "
    "comes up, and the smell of warm loaves fills the whole road. I usually buy a small brown loaf and two "
    "sweet rolls for breakfast. Sometimes my neighbour is already waiting outside the door with her dog, and "
    "we talk about the weather while the queue moves slowly forward. Last week the baker told me that he is "
    "going to retire next summer. His daughter will take over the business, although she would rather paint "
    "pictures than knead dough all day. She has promised to keep the old recipes, but she also wants to sell "
    "coffee and cakes in the afternoon. I think that is a good idea, because many people pass the shop on "
    "their way home from work. When I told my friends about the news, they were sad at first. Then we "
    "decided to throw a small party for him in the park, with music, games for the children and plenty of "
    "bread for everyone. He laughed when he heard about it and said he would bring the butter."
)


def test_paragraph_is_two_hundred_words():
    assert 195 <= len(PARAGRAPH.split()) <= 215


# -- the queue (no device) -------------------------------------------------------------------------
def test_stream_source_plays_pushed_blocks_in_order_and_counts_gaps():
    src = StreamSource(1000, 1, ahead_seconds=0.05)  # 50 frames queued at most
    out = np.full((30, 2), 9.0, np.float32)
    n, ended = src.fill(out)  # nothing pushed yet: silence, and that is the start, not a gap
    assert (n, ended) == (30, False) and not out.any() and src.starved == 0
    data = np.arange(1, 121, dtype=np.float32)
    assert src.push(data[:40]) and src.push(data[40:60])  # 60 queued: over the bound now
    assert not src.push(data[60:], timeout=0.05)  # full: the producer waits (here: gives up)
    got = []
    pusher = threading.Thread(target=lambda: got.append(src.push(data[60:])))
    pusher.start()
    time.sleep(0.05)
    assert pusher.is_alive()  # still waiting for room
    out = np.zeros((25, 2), np.float32)
    src.fill(out)
    pusher.join(2.0)
    assert got == [True] and src.frames == 120
    np.testing.assert_array_equal(out[:, 0], data[:25])
    np.testing.assert_array_equal(out[:, 1], data[:25])  # mono goes to every channel
    rest = np.zeros((95, 1), np.float32)
    assert src.fill(rest) == (95, False)
    np.testing.assert_array_equal(rest[:, 0], data[25:])
    gap = np.ones((10, 1), np.float32)
    assert src.fill(gap) == (10, False) and not gap.any() and src.starved == 10  # the producer is late
    src.end()
    assert src.fill(np.zeros((10, 1), np.float32)) == (0, True) and src.pos == 120


def test_closing_the_source_unblocks_the_producer_and_silences_it():
    src = StreamSource(1000, 1, ahead_seconds=0.01)
    assert src.push(np.ones(20, np.float32))
    results = []
    t = threading.Thread(target=lambda: results.append(src.push(np.ones(20, np.float32))))
    t.start()
    time.sleep(0.05)
    src.close()
    t.join(1.0)
    assert results == [False] and not t.is_alive()
    out = np.ones((8, 1), np.float32)
    assert src.fill(out)[1] is True  # stopped: ended, nothing more comes out


def test_quick_parts_cut_only_long_first_sentences():
    from engine.speech.task import quick_parts

    assert quick_parts("Hello there, how are you?") == ["Hello there, how are you?"]
    s = "The weather is lovely today, so we are going for a walk in the park after lunch."
    assert quick_parts(s) == ["The weather is lovely today,", "so we are going for a walk in the park after lunch."]
    s = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen."
    assert quick_parts(s) == ["One two three four five six", "seven eight nine ten eleven twelve thirteen fourteen."]


@pytest.fixture(scope="module")
def quiet_voice():
    """The offline Piper voice with its noise off (deterministic output) for exact comparisons."""
    from engine.speech.voices import load_voice

    v = load_voice()
    saved = v.noise_scale, v.noise_w
    v.noise_scale = v.noise_w = 0.0
    yield v
    v.noise_scale, v.noise_w = saved


def _drain(src: StreamSource, block: int = 1024) -> tuple[np.ndarray, int]:
    """Pull a source dry the way the callback does; (samples, most frames ever queued)."""
    got, most = [], 0
    while True:
        most = max(most, src._queued)
        out = np.zeros((block, 1), np.float32)
        before = src.pos
        _, ended = src.fill(out)
        got.append(out[:src.pos - before, 0].copy())  # real frames first, then the silence of a gap
        if ended:
            return np.concatenate(got), most
        time.sleep(0.002)


def test_stream_into_queues_exactly_the_synthesised_sentences_with_a_bounded_queue(quiet_voice):
    from engine.speech.stream import stream_into
    from engine.speech.task import synthesize

    text = "It is raining again. Please bring an umbrella. We will meet at the station."
    want = np.concatenate(list(synthesize(text, quiet_voice)))
    src = StreamSource(quiet_voice.sample_rate, 1, ahead_seconds=0.5)
    blocks, states = [], []
    t = threading.Thread(target=lambda: states.append(stream_into(src, text, quiet_voice, on_block=blocks.append,
                                                                  quick_start=False)))
    t.start()
    got, most = _drain(src)
    t.join(30)
    assert states == [True] and len(blocks) == 3
    np.testing.assert_array_equal(got, want)  # same samples, same order
    longest = max(len(b) for b in blocks)
    assert most <= src.max_queued + longest  # never more than the bound plus one sentence waiting


def test_cancelling_the_producer_stops_the_sound(quiet_voice):
    from engine.speech.stream import stream_into

    src = StreamSource(quiet_voice.sample_rate, 1, ahead_seconds=0.2)
    state = JobState()
    errors = []

    def run():
        try:
            stream_into(src, "One more thing. " * 20, quiet_voice, state=state)
        except Cancelled as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    while src.frames == 0:
        time.sleep(0.01)
    state.cancel()
    t.join(10)
    assert errors and src.closed
    assert src.fill(np.ones((64, 1), np.float32)) == (0, True)


# -- through the PulseAudio null sink ------------------------------------------------------------
def _onset(x: np.ndarray, sr: int, threshold: float = 0.01, frame: float = 0.005) -> int | None:
    """First sample of the first 5 ms frame whose RMS passes ``threshold`` (None: all silent)."""
    n = int(frame * sr)
    m = len(x) // n
    rms = np.sqrt(np.mean(np.square(x[:m * n].reshape(m, n)), axis=1))
    on = np.flatnonzero(rms > threshold)
    return int(on[0] * n) if len(on) else None


def _last_sound(x: np.ndarray, sr: int, threshold: float = 0.01, frame: float = 0.005) -> int | None:
    n = int(frame * sr)
    m = len(x) // n
    rms = np.sqrt(np.mean(np.square(x[:m * n].reshape(m, n)), axis=1))
    on = np.flatnonzero(rms > threshold)
    return int((on[-1] + 1) * n) if len(on) else None


@pytest.mark.slow
def test_streamed_paragraph_starts_fast_never_underruns_and_is_heard_back(pulse):
    from engine.audio import capture, io as audio_io
    from engine.audio.playback import Playback
    from engine.speech.stream import SPEECH_LATENCY, SpeechStream
    from engine.speech.text import normalize
    from engine.transcribe.whisper.loading import load
    from engine.transcribe.whisper.longform import transcribe
    from engine.wer import wer
    from tests.pulse import RATE

    pb = Playback(latency=SPEECH_LATENCY)  # what SpeechStream (the CLI's speak --play) plays through
    try:
        with capture.InputStream(samplerate=RATE, channels=1, buffer_seconds=150) as mic:
            # cold: the first Play also opens the output device
            cursor = mic.cursor()
            cold = SpeechStream("Good morning.", playback=pb).start()
            assert cold.wait(30)
            assert mic.wait_frames(mic.cursor(), int(0.3 * RATE))
            got, _, _ = mic.read(cursor)
            k = _onset(got[:, 0], RATE)
            assert k is not None, "nothing was heard"
            cold_s = k / RATE
            # warm: the paragraph, with the device already open (a second Play)
            cursor = mic.cursor()
            speech = SpeechStream(PARAGRAPH, playback=pb).start()
            assert speech.wait(300), "the paragraph never finished"
            assert mic.wait_frames(mic.cursor(), int(0.4 * RATE))
            got, _, lost = mic.read(cursor)
    finally:
        pb.close()
    x = got[:, 0]
    assert lost == 0
    k = _onset(x, RATE)
    assert k is not None
    first_s = k / RATE
    heard_s = (_last_sound(x, RATE) - k) / RATE
    print(f"\nfirst sound after Play: {first_s * 1000:.0f} ms warm (first block synthesised in "
          f"{speech.first_block_s * 1000:.0f} ms), {cold_s * 1000:.0f} ms cold (device opened too); "
          f"{heard_s:.1f} s of speech, underruns {speech.underruns}, starved {speech.starved} frames "
          f"(output latency {SPEECH_LATENCY} s; 2 loaded cores, contended)")
    assert first_s < 1.5  # target 0.3 s; generous on this shared box (printed above)
    assert speech.underruns == 0
    assert speech.starved == 0  # synthesis kept ahead of the ear all the way
    assert heard_s > 0.9 * speech.source.frames / speech.source.samplerate  # all of it came out
    audio16 = audio_io.resample(x[k:].reshape(1, -1), RATE, 16000)[0]
    model = load("tiny.en")
    hyp = transcribe(None, *model, audio16, language="en").text
    score = wer(normalize(PARAGRAPH).lower(), normalize(hyp).lower())
    print(f"Whisper tiny.en on the captured sound: WER {score:.3f}")
    assert score <= 0.12, hyp


@pytest.mark.slow
def test_stop_silences_the_speaker_at_once(pulse):
    from engine.audio import capture
    from engine.audio.playback import Playback
    from engine.speech.stream import SpeechStream
    from tests.pulse import RATE

    pb = Playback()
    try:
        with capture.InputStream(samplerate=RATE, channels=1) as mic:
            cursor = mic.cursor()
            speech = SpeechStream(PARAGRAPH, playback=pb).start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # heard for 1 s, and loud right now (not between words)
                got, _, _ = mic.read(cursor)
                k = _onset(got[:, 0], RATE)
                now = mic.latest(int(0.02 * RATE))[:, 0]
                if k is not None and len(got) - k > RATE and np.sqrt(np.mean(now ** 2)) > 0.03:
                    break
                time.sleep(0.005)
            else:
                pytest.fail("nothing was heard")
            c_stop = mic.cursor()
            t0 = time.monotonic()
            speech.stop()
            stop_call = time.monotonic() - t0
            assert speech.done.is_set() and speech.source.closed and not speech.playing
            assert mic.wait_frames(c_stop, int(0.6 * RATE))
            after, _, _ = mic.read(c_stop)
    finally:
        pb.close()
    tail = _last_sound(after[:, 0], RATE)
    tail_s = 0.0 if tail is None else tail / RATE
    print(f"\nstop: output aborted {speech.silenced_s * 1000:.0f} ms after the call (the producer joined after "
          f"{stop_call * 1000:.0f} ms); sound captured after it: {tail_s * 1000:.0f} ms "
          "(includes the monitor-to-capture latency)")
    assert speech.silenced_s < 0.1
    assert tail_s < 0.3  # target 0.1 s from the device; the capture path adds its own latency
    assert _onset(after[int(0.3 * RATE):, 0], RATE) is None  # and silent from then on


@pytest.mark.slow
def test_first_sound_through_the_apps_low_latency_player(pulse):
    """The app's shared player (PortAudio's "high" latency, 35 ms through ALSA-Pulse), device open:
    Play to the first captured sound, for a short sentence and for a long one (cut by quick_start)."""
    from engine.audio import capture
    from engine.audio.playback import Playback
    from engine.speech.stream import SpeechStream
    from engine.speech.voices import load_voice
    from tests.pulse import RATE

    load_voice()  # loaded once, as in the app after the first Play
    pb = Playback()
    figures = {}
    try:
        with capture.InputStream(samplerate=RATE, channels=1) as mic:
            SpeechStream("Ready.", playback=pb).start().wait(30)  # opens the device
            for name, text in (("short", "Good morning to you."),
                               ("long", "The weather is lovely today, so we are going for a walk in the park.")):
                cursor = mic.cursor()
                speech = SpeechStream(text, playback=pb).start()
                assert speech.wait(60)
                assert mic.wait_frames(mic.cursor(), int(0.3 * RATE))
                got, _, _ = mic.read(cursor)
                k = _onset(got[:, 0], RATE)
                assert k is not None, "nothing was heard"
                figures[name] = (k / RATE, speech.first_block_s, speech.underruns)
    finally:
        pb.close()
    print("\n" + "; ".join(f"{n} sentence: first sound {a * 1000:.0f} ms (first block {b * 1000:.0f} ms, "
                            f"underruns {u})" for n, (a, b, u) in figures.items()) + " (target 0.3 s; contended)")
    assert all(a < 1.5 for a, _, _ in figures.values())


@pytest.mark.slow
def test_speak_play_command_streams_to_the_speaker(pulse):
    """`main.py speak TEXT --play` (no --out): heard through the null sink; bad text fails before any sound."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from engine.audio import capture
    from tests.pulse import RATE

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    run = lambda *a: subprocess.run([sys.executable, str(root / "main.py"), "speak", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=120)
    with capture.InputStream(samplerate=RATE, channels=1, buffer_seconds=60) as mic:
        cursor = mic.cursor()
        r = run("It is a quiet evening. The lamps are on.", "--play")
        assert r.returncode == 0, r.stderr
        assert mic.wait_frames(mic.cursor(), int(0.3 * RATE))
        got, _, _ = mic.read(cursor)
    x = got[:, 0]
    on = _onset(x, RATE)
    assert on is not None and (_last_sound(x, RATE) - on) / RATE > 1.5  # both sentences came out
    assert "underrun" not in r.stderr
    r = run("?!", "--play")
    assert r.returncode == 1 and "nothing to say" in r.stderr
