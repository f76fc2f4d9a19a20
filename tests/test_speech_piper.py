"""Piper voices through piper-tts, and the speak job: JSON honoured, speed, streaming, atomic files,
cancel, bad input."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import Cancelled, CheckpointError, SonoscopeError, UnsupportedFormat
from engine.jobs import JobState
from engine.speech import task as speech_task
from engine.speech.task import SpeakResult, speak_file, synthesize
from engine.speech.text import TextError
from engine.speech.voices import DEFAULT_VOICE, PiperVoice, VoiceError, list_voices, load_voice
from engine.store import default_store

SENTENCE = "The weather is lovely today."


@pytest.fixture(scope="module")
def voice_dir() -> Path:
    folder = default_store().resolve(DEFAULT_VOICE)  # the offline pack, checksums verified
    assert (folder / "en_US-joe-medium.onnx").exists()
    return folder


def _copy_voice(src: Path, dst: Path, **changes) -> Path:
    dst.mkdir()
    onnx = dst / "en_US-joe-medium.onnx"
    onnx.symlink_to(src / "en_US-joe-medium.onnx")
    cfg = json.loads((src / "en_US-joe-medium.onnx.json").read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    (dst / "en_US-joe-medium.onnx.json").write_text(json.dumps(cfg))
    return onnx


def test_default_voice_is_installed_and_listed(voice_dir):
    v = load_voice()
    assert v.id == DEFAULT_VOICE and v.sample_rate == 22050 and v.num_speakers == 1
    assert any(i.id == DEFAULT_VOICE and i.installed for i in list_voices())
    audio = v.say(SENTENCE)
    assert audio.dtype == np.float32 and 1.0 < len(audio) / v.sample_rate < 4.0
    assert 0.5 < np.abs(audio).max() <= 1.0


def test_same_samples_as_piper_tts_with_the_voice_json(voice_dir, tmp_path):
    """With the noise scales at 0 (set in the voice JSON) VITS is deterministic: our voice reads its
    settings from the JSON and gives piper-tts's own samples."""
    from piper import PiperVoice as Reference

    onnx = _copy_voice(voice_dir, tmp_path / "v", inference={"noise_scale": 0.0, "length_scale": 1.0, "noise_w": 0.0})
    ours = PiperVoice(onnx).say(SENTENCE)
    ref = np.concatenate([c.audio_float_array for c in Reference.load(onnx).synthesize(SENTENCE)])
    np.testing.assert_array_equal(ours, ref)


def test_length_scale_from_json_and_speed(voice_dir, tmp_path):
    quiet = {"noise_scale": 0.0, "noise_w": 0.0}
    base = PiperVoice(_copy_voice(voice_dir, tmp_path / "a", inference={**quiet, "length_scale": 1.0}))
    slow = PiperVoice(_copy_voice(voice_dir, tmp_path / "b", inference={**quiet, "length_scale": 1.5}))
    n1 = len(base.say(SENTENCE))
    assert 1.3 < len(slow.say(SENTENCE)) / n1 < 1.7  # durations are whole frames: not exactly 1.5
    assert 0.45 < len(base.say(SENTENCE, speed=2.0)) / n1 < 0.7
    # speed divides the JSON's length scale: the same model inputs, the same samples
    np.testing.assert_array_equal(slow.say(SENTENCE), base.say(SENTENCE, speed=1 / 1.5))
    np.testing.assert_array_equal(slow.say(SENTENCE, speed=1.5), base.say(SENTENCE))


def test_sample_rate_and_speakers_from_json(voice_dir, tmp_path):
    v = PiperVoice(_copy_voice(voice_dir, tmp_path / "m", audio={"sample_rate": 16000}, num_speakers=3,
                               speaker_id_map={"anna": 0, "ben": 2}))
    assert v.sample_rate == 16000 and v.num_speakers == 3
    assert v.speaker_id("ben") == 2 and v.speaker_id(1) == 1 and v.speaker_id("2") == 2
    with pytest.raises(VoiceError, match="out of range"):
        v.speaker_id(3)
    with pytest.raises(VoiceError, match="no speaker 'carl'"):
        v.speaker_id("carl")
    with pytest.raises(VoiceError, match="1 speaker"):
        load_voice().speaker_id(1)


def test_speak_file_streams_sentences_into_a_wav(tmp_path):
    state = JobState()
    seen = []
    state.add_listener(lambda s: seen.append(s.progress))
    out = tmp_path / "speech.wav"
    r = speak_file(state, "Hello there. It costs $3.50! 😀 Goodbye.", out)
    assert isinstance(r, SpeakResult) and r.path == out and r.sentences == 3 and r.format == "wav"
    assert r.dropped == "😀" and r.warnings
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 22050 and len(audio) / sr == pytest.approx(r.duration)
    assert 2.5 < r.duration < 9
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 4
    assert [p.name for p in tmp_path.iterdir()] == ["speech.wav"]  # no temporary left


@pytest.mark.parametrize("fmt, rate", [("flac", 22050), ("mp3", 22050), ("opus", 48000), ("ogg", 22050)])
def test_speak_file_formats(tmp_path, fmt, rate):
    out = tmp_path / f"x.{fmt}"
    r = speak_file(None, "One two three.", out)
    info = sf.info(str(out))
    assert r.sample_rate == rate and info.samplerate == rate and info.duration > 0.5


def test_format_argument_wins_over_the_extension(tmp_path):
    r = speak_file(None, "Hi.", tmp_path / "x.audio", fmt="flac")
    assert r.format == "flac" and sf.info(str(r.path)).format == "FLAC"
    with pytest.raises(UnsupportedFormat):
        speak_file(None, "Hi.", tmp_path / "x.xyz")


@pytest.mark.parametrize("text", ["", "   ", "?!...", "😀"])
def test_nothing_to_say_leaves_no_file(tmp_path, text):
    with pytest.raises(TextError):
        speak_file(None, text, tmp_path / "x.wav")
    with pytest.raises(TextError):
        next(synthesize(text))
    assert list(tmp_path.iterdir()) == []


def test_unknown_voice_bad_speed_bad_speaker(tmp_path):
    with pytest.raises(VoiceError, match="unknown voice 'no-such-voice'.*piper-en_US-joe-medium"):
        speak_file(None, "Hello.", tmp_path / "x.wav", voice="no-such-voice")
    with pytest.raises(VoiceError, match="speed"):
        speak_file(None, "Hello.", tmp_path / "x.wav", speed=0)
    with pytest.raises(VoiceError, match="speaker"):
        speak_file(None, "Hello.", tmp_path / "x.wav", speaker=4)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_voice_is_a_clear_error(voice_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(voice_dir / "en_US-joe-medium.onnx.json", bad / "v.onnx.json")
    (bad / "v.onnx").write_bytes(b"\x08\x01garbage, not a protobuf" * 100)
    with pytest.raises(CheckpointError, match="v.onnx: not a loadable ONNX voice model"):
        speak_file(None, "Hello.", tmp_path / "x.wav", voice=str(bad))
    (bad / "v.onnx.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable voice config"):
        load_voice(bad / "v.onnx")
    (bad / "v.onnx.json").unlink()
    with pytest.raises(CheckpointError, match="JSON"):
        load_voice(bad / "v.onnx")
    assert not (tmp_path / "x.wav").exists()


def test_cancel_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "x.wav"
    out.write_bytes(b"old")
    state = JobState()

    def listener(s):
        if s.status == "sentence 2":
            s.cancel()

    state.add_listener(listener)
    with pytest.raises(Cancelled):
        speak_file(state, "One. Two. Three. Four.", out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_synthesize_yields_sentence_by_sentence():
    v = load_voice()
    gen = synthesize("First sentence. Second one! And a third?", v, pause=0.1)
    blocks = list(gen)
    assert len(blocks) == 3
    gap = int(0.1 * v.sample_rate)
    assert not blocks[1][:gap].any() and blocks[1][gap:].any()


class _FastVoice:
    """A stand-in voice (a tone per sentence) to run 50,000 characters through the job quickly."""
    id, sample_rate, num_speakers, speakers = "fast", 16000, 1, {}

    def __init__(self):
        self.calls = 0

    def speaker_id(self, speaker):
        return None

    def say(self, sentence, speed=1.0, speaker=None):
        self.calls += 1
        n = 16000  # one second
        return (0.1 * np.sin(np.arange(n) * 0.05)).astype(np.float32)


def test_fifty_thousand_characters_stream_to_a_file_with_bounded_memory(tmp_path, monkeypatch):
    fast = _FastVoice()
    monkeypatch.setattr(speech_task, "load_voice", lambda voice, state=None: fast)
    sentence = "At 9:30 on May 4th, 1,200 people paid $5.25 each, said Dr. Brown. "
    text = (sentence * (50_000 // len(sentence) + 1))[:50_000]
    state = JobState()
    tracemalloc.start()
    try:
        r = speak_file(state, text, tmp_path / "long.flac")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert fast.calls == r.sentences >= 700
    info = sf.info(str(r.path))
    assert info.frames == pytest.approx(r.duration * 16000) and r.duration > 700
    # the whole audio would be > 45 MB as float32; the job holds about a sentence of it at a time
    assert peak < 8e6, peak
    assert state.progress == 1.0


def test_errors_are_sonoscope_errors():
    assert issubclass(VoiceError, SonoscopeError) and issubclass(TextError, SonoscopeError)
