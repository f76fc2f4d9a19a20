"""Text-to-speech speed, side by side in one run.

1. The offline Piper voice: Sonoscope's ``synthesize`` vs ``piper-tts`` used directly (same voice,
   same text): real-time factor (audio seconds per second of work) and first-audio latency; plus
   the streamed path (``quick_start``: a long first sentence cut in two, as Play and Read aloud do).
2. SpeechT5 + HiFi-GAN at real size with random weights: Sonoscope (KV caches; fp32 and int8
   decoder) vs transformers ``generate_speech`` + ``SpeechT5HifiGan``, same number of steps (the stop
   head is switched off and ``maxlenratio`` fixes the length).

    .venv/bin/python benchmarks/bench_tts.py [--no-speecht5] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = ("The weather is lovely today, so we are going for a walk in the park. Could you please pass me the "
        "salt? I usually take the bus to work, but this morning I rode my bicycle. She bought fresh bread and "
        "some cheese at the market. We should leave early because the traffic gets heavy after five.")


def bench_piper(rows):
    from piper import PiperVoice

    from engine.speech.task import synthesize
    from engine.speech.voices import load_voice

    voice = load_voice()
    ref = PiperVoice.load(voice.onnx)
    list(synthesize("Warm up.", voice)), list(ref.synthesize("Warm up."))
    for name, run in [("sonoscope synthesize", lambda: synthesize(TEXT, voice)),
                      ("sonoscope streamed (quick_start, as Play)", lambda: synthesize(TEXT, voice, quick_start=True)),
                      ("piper-tts synthesize", lambda: (c.audio_float_array for c in ref.synthesize(TEXT)))]:
        t0 = time.perf_counter()
        first, n = None, 0
        for block in run():
            first = first or time.perf_counter() - t0
            n += len(block)
        dt = time.perf_counter() - t0
        rows.append((f"Piper joe-medium: {name}", f"{n / voice.sample_rate / dt:.1f}x", f"{first * 1000:.0f} ms",
                     f"{n / voice.sample_rate:.1f} s audio"))


def bench_speecht5(rows):
    import torch
    from transformers import SpeechT5Config, SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5HifiGanConfig

    from engine.models.hifigan import load_model as load_voc
    from engine.models.speecht5 import load_model
    from engine.speech.speecht5 import generate

    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    ref = SpeechT5ForTextToSpeech(SpeechT5Config()).eval()
    with torch.no_grad():
        ref.speech_decoder_postnet.prob_out.bias.fill_(-30.0)
    ref.save_pretrained(tmp / "tts")
    voc_ref = SpeechT5HifiGan(SpeechT5HifiGanConfig()).eval()
    voc_ref.save_pretrained(tmp / "voc")
    ours, voc = load_model(tmp / "tts"), load_voc(tmp / "voc")
    ids = torch.randint(4, 81, (1, 60))
    spk = torch.randn(1, 512)
    ratio = 4.0  # 60 tokens -> 120 steps -> 240 frames -> 3.84 s at 16 kHz

    def theirs():
        with torch.no_grad():
            return voc_ref(ref.generate_speech(ids, spk, maxlenratio=ratio))

    def mine(model):
        with torch.inference_mode():
            return voc(generate(model, ids[0], spk[0], maxlenratio=ratio))

    results = {}
    for name, fn in [("transformers", theirs), ("sonoscope fp32", lambda: mine(ours))]:
        fn()
        t0 = time.perf_counter()
        wave = fn()
        results[name] = (time.perf_counter() - t0, len(wave) / 16000)
    ours8 = load_model(tmp / "tts").quantize_int8()
    mine(ours8)
    t0 = time.perf_counter()
    wave = mine(ours8)
    results["sonoscope int8 decoder"] = (time.perf_counter() - t0, len(wave) / 16000)
    base = results["transformers"][0]
    for name, (dt, audio) in results.items():
        rows.append((f"SpeechT5+HiFi-GAN (random, real size): {name}", f"{audio / dt:.2f}x", f"{dt:.2f} s total",
                     f"{base / dt:.2f}x vs transformers"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-speecht5", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    bench_piper(rows)
    if not args.no_speecht5:
        bench_speecht5(rows)
    print(f"| what | x real time | first audio / total | notes |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
