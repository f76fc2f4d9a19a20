"""Which parts of Whisper can be int8 on the CPU without losing accuracy: the measurement behind
``engine.models.whisper.INT8_DEFAULT``.

    .venv/bin/python benchmarks/bench_whisper_int8.py [--model base] [--set choose|check] [--threads 2] [--beam-size 5]

For each precision split (``fp32``, then every entry of ``INT8_SPLITS``) and each long file of
unseen real speech (tests/whisper_long.py: ``choose`` files by default), it prints the windows that
fell back (decoded at a temperature above 0, with their start), the WER against the known text and
the wall time of the transcription (greedy, temperature fallback, conditioned on the previous text:
the CLI defaults). Rule: the cheapest split for which no window falls back that does not at fp32 and
whose pooled WER is within 1 point of fp32 on each set becomes the default. Times are on a shared 2-core
machine: read them side by side, not as absolutes.

Measured (base, 2 threads; pooled WER, numbers spelled out; fallback windows; in-process seconds
for all the set's files): int8 is the decoder's Linear layers and vocabulary projection with one
scale per input row (``engine.models.int8``, as CTranslate2; ``_int_mm`` on a CPU with VNNI,
fbgemm on plain AVX2, forced with ``SONOSCOPE_INT8_KERNEL``) and the encoder's through torch's
dynamic quantisation; long-form decodes again the speech that no word covers
(``longform.first_missed_speech``). AMD EPYC with AVX-512 VNNI, one run each:

| split | decoding | choose: fallbacks | choose: WER | choose: s | check: fallbacks | check: WER | check: s |
|---|---|---|---|---|---|---|---|
| fp32 | greedy | 0 | 7.4% | 65.5 | 0 | 5.8% | 33.5 |
| all (int_mm) | greedy | 0 | 5.4% | 30.6 | 0 | 2.6% | 13.6 |
| all (fbgemm, hi/lo weights) | greedy | 1 | 5.4% | - | 0 | 2.6% | - |
| fp32 | beam 5 | 0 | 3.9% | 86.7 | 0 | 5.5% | 41.8 |
| all (int_mm) | beam 5 | 0 | 4.1% | 38.5 | 0 | 4.5% | 23.4 |

(fbgemm forced with ``SONOSCOPE_INT8_KERNEL`` on this VNNI machine, times not comparable: it ran beside
the test suite. Its one fallback: choose-all at 90.5 s, temperature 1.0, 7.1% on that file.)
"all" on ``_int_mm`` keeps the rule pooled on both sets at both decodings: Whisper runs int8 on the CPU by default
(``--fp32`` for float32). Per file it does not always: greedy choose-short-four 13.8% against
11.2% (both kernels) and choose-all 5.3% / 4.9% against 3.1%; beam 5 check-commands-alsa-cards
9.0% against 4.0% ("clubs" heard as "close" twice more, "rear right" as "we're right", one "five"
more at a window boundary); on other files int8 is as far ahead (greedy choose-cards-alsa 9.1% /
3.6% against 20.9%). On 60-125 s files one point is one to three words: which of two near-equal
readings wins flips with small logit changes at either precision. An earlier version with per-row
input scales in the encoder too was 1.7 points worse on the check set; fbgemm's 7-bit input mode
(torch's default) doubles its error for no speed and is not used.

Before (torch's dynamic quantisation everywhere, one 7-bit scale per input, and no second decode of
missed speech): fp32 36.8% / 36.4%, all 47.7% / 48.4%; most errors were phrases said twice written
once, at every precision and in faster-whisper (int8 39.0%, float32 37.2% over the six files) and
openai-whisper (38.4%) alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))
warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--set", default="choose", choices=["choose", "check"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam-size", type=int, default=None, help="beam width (default: greedy, the CLI's)")
    ap.add_argument("--splits", nargs="*", default=None, help="default: fp32 and every int8 split")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    import whisper_long as L
    from engine.models.whisper import INT8_SPLITS, load_model
    from engine.wer import word_errors
    from engine.transcribe.whisper.loading import _tokenizer, resolve_folder

    torch.set_num_threads(args.threads)
    folder = resolve_folder(args.model)
    base = load_model(folder)
    tk = _tokenizer(str(folder), base.cfg.n_vocab)
    data = L.files(L.CHOOSE if args.set == "choose" else L.CHECK)
    splits = args.splits or ["fp32", *INT8_SPLITS]
    print(f"Whisper {args.model}, {len(data)} files ({args.set}: "
          + ", ".join(f"{n} {len(a) / 16000:.0f} s" for n, a, _ in data)
          + f"), {args.threads} threads, {f'beam {args.beam_size}' if args.beam_size else 'greedy'}, shared machine\n", flush=True)
    print("| split | file | fallback windows (start s: T) | WER | s |")
    print("|---|---|---|---|---|", flush=True)
    totals = {}
    for split in splits:
        m = load_model(folder)
        if split != "fp32":
            m.quantize_int8(split)
        L.run(m, tk, data[0][1][:16000 * 5])  # warm-up
        errs, secs, falls, pooled = [], 0.0, 0, [0, 0]
        for name, audio, ref in data:
            r = L.run(m, tk, audio, beam_size=args.beam_size)
            e = L.wer(ref, r.text)
            n_err, n_ref = word_errors(L.spoken(ref), L.spoken(r.text))
            pooled[0] += n_err
            pooled[1] += n_ref
            errs.append(e)
            secs += r.seconds
            falls += len(r.fallbacks)
            fb = ", ".join(f"{w['start']:.1f}: {w['temperature']:.1f}" for w in r.windows if w["temperature"] > 0)
            print(f"| {split} | {name} | {len(r.fallbacks)} ({fb or '-'}) | {e * 100:.1f}% | {r.seconds:.1f} |",
                  flush=True)
        totals[split] = (falls, sum(errs) / len(errs), pooled[0] / max(1, pooled[1]), secs)
    print("\n| split | fallback windows, all files | mean WER | pooled WER | total s |")
    print("|---|---|---|---|---|")
    for split, (f, e, pw, s) in totals.items():
        print(f"| {split} | {f} | {e * 100:.1f}% | {pw * 100:.1f}% | {s:.1f} |")


if __name__ == "__main__":
    main()
