"""Streaming CTC speed: per-chunk compute, real-time factor and latency, ours vs transformers.

wav2vec2-base size (95 M parameters, random weights: speed does not depend on the values), fed
real speech (LibriVox) through the streaming schedule of ``engine.transcribe.streaming.CTCStreamer``
(chunk / left context / right context). Every window of the schedule is run by:

* ours float32 and int8 (dynamic int8 Linear layers): the real ``CTCStreamer`` (running
  normalisation statistics, CNN features of earlier windows reused), and int8 without the cache,
* transformers' ``Wav2Vec2ForCTC`` float32 and int8 with the same weights, on the same windows.

Latency is simulated for live use: audio arrives in real time in 0.1 s blocks; one worker runs
the windows in order; a window starts when its last sample has arrived and the previous window
is done. A frame is *on screen* when the first window containing it finishes (committed or as
tentative tail); latency = that time - the frame's end time. RTF = total compute / audio length.
"=offline": the share of final frames whose best label is the one the same model gives them when it
sees the whole file at once (random weights: the accuracy cost of the shorter context).

    python benchmarks/bench_ctc.py [--seconds 20] [--threads 2]

Target (issues 5, 19): p95 latency < 0.5 s at RTF < 0.3 on 2 cores; the first config is the live default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.audio import io as eaudio  # noqa: E402
from engine.models.wav2vec2 import load_model, quantize_int8  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
SR, STRIDE, FIELD, BLOCK = 16000, 320, 400, 0.1


def speech(seconds: float) -> np.ndarray:
    parts, n = [], 0
    for p in sorted(LIBRIVOX.glob("*.wav")):
        a, _ = eaudio.load(p, sr=SR, mono=True)
        parts.append(a)
        n += len(a)
    a = np.concatenate(parts)
    while len(a) < seconds * SR:
        a = np.concatenate([a, a])
    return a[: int(seconds * SR)]


def schedule(n_samples: int, chunk: float, left: float, right: float) -> list[tuple[int, int, int, int]]:
    """Windows of CTCStreamer: (w0, c0, c1, w1) in frames, in order (incl. the final flush)."""
    n_frames = (n_samples - FIELD) // STRIDE + 1
    ch, lf, rt = round(chunk * 50), round(left * 50), round(right * 50)
    out, c0 = [], 0
    while c0 + ch + rt <= n_frames:
        out.append((max(0, c0 - lf), c0, c0 + ch, c0 + ch + rt))
        c0 += ch
    while c0 < n_frames:
        c1 = min(n_frames, c0 + ch)
        out.append((max(0, c0 - lf), c0, c1, min(n_frames, c1 + rt)))
        c0 = c1
    return out


def window_audio(a: np.ndarray, w0: int, w1: int) -> torch.Tensor:
    x = a[w0 * STRIDE:(w1 - 1) * STRIDE + FIELD]
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return torch.from_numpy(x.astype(np.float32))[None]


def simulate(windows, times, n_samples) -> dict:
    """Latency per frame (first shown) and per committed frame, with a single worker."""
    free = 0.0
    shown, committed = {}, {}
    for (w0, c0, c1, w1), dt in zip(windows, times):
        ready = (w1 - 1) * STRIDE + FIELD
        ready_t = min(np.ceil(ready / SR / BLOCK) * BLOCK, n_samples / SR)  # the block that completes it
        done = max(ready_t, free) + dt
        free = done
        for f in range(c0, w1):
            shown.setdefault(f, done)
        for f in range(c0, c1):
            committed[f] = done
    end = lambda f: (f * STRIDE + FIELD) / SR  # noqa: E731
    # the final flush (windows without full right context) only happens at the end of a
    # session: leave those frames out of the live latency statistics
    live = [f for f in shown if f < windows[-1][1] or len(windows) == 1]
    lat_shown = np.array([shown[f] - end(f) for f in live])
    lat_comm = np.array([committed[f] - end(f) for f in live if f in committed])
    return {"p50_shown": float(np.percentile(lat_shown, 50)), "p95_shown": float(np.percentile(lat_shown, 95)),
            "p50_commit": float(np.percentile(lat_comm, 50)), "p95_commit": float(np.percentile(lat_comm, 95))}


def bench(models: dict, a: np.ndarray, chunk: float, left: float, right: float, repeats: int = 1) -> dict:
    """Run every model on every window, interleaved (all models do window k before anyone does k+1,
    so load from other processes hits them alike); per window the minimum over ``repeats``."""
    from engine.transcribe.streaming import CTCStreamer

    windows = schedule(len(a), chunk, left, right)
    inputs = [window_audio(a, w0, w1) for w0, _, _, w1 in windows]
    times = {name: [[] for _ in windows] for name in models}
    n = int(BLOCK * SR)
    with torch.inference_mode():
        for fn in models.values():  # warm-up
            if not isinstance(fn, tuple):
                fn(inputs[0])
        for _ in range(repeats):
            streamers = {k: CTCStreamer(fn[0], chunk=chunk, left=left, right=right, cache_features=fn[1],
                                        keep_logits=True)
                         for k, fn in models.items() if isinstance(fn, tuple)}
            others = {k: fn for k, fn in models.items() if not isinstance(fn, tuple)}
            done = 0

            def catch_up(upto: int) -> None:
                nonlocal done
                while done < upto:
                    for k, fn in others.items():
                        t = time.perf_counter()
                        fn(inputs[done])
                        times[k][done].append(time.perf_counter() - t)
                    done += 1

            for i in range(0, len(a), n):
                for s in streamers.values():
                    s.insert_audio(a[i:i + n])
                    s.process()
                catch_up(len(next(iter(streamers.values())).chunk_times))
            for s in streamers.values():
                s.finish()
            catch_up(len(windows))
            for k, s in streamers.items():
                assert len(s.chunk_times) == len(windows), (len(s.chunk_times), len(windows))
                for w, dt in enumerate(s.chunk_times):
                    times[k][w].append(dt)
    # the accuracy cost of the context: final frames' argmax against the same model on the whole file
    from engine.transcribe.ctc import long_logits

    agree = {}
    for k, s in streamers.items():
        whole = long_logits(models[k][0], a).argmax(-1)
        mine = s.logits.argmax(-1)
        agree[k] = float((mine[:len(whole)] == whole[:len(mine)]).mean())
    res = {}
    n_live = len([w for w in windows if w[3] - w[2] == round(right * 50)]) or len(windows)
    for name in models:
        best = [min(t) for t in times[name]]
        r = {"chunk_ms_p50": 1000 * float(np.percentile(best[:n_live], 50)),
             "chunk_ms_p95": 1000 * float(np.percentile(best[:n_live], 95)),
             "rtf": sum(best) / (len(a) / SR)}
        r.update(simulate(windows, best, len(a)))
        r["agree"] = agree.get(name, float("nan"))
        res[name] = r
    return res


def bench_whisper(seconds: float) -> dict:
    """The Whisper live engine (tiny.en, real weights) on LibriVox replayed as if live: RTF and
    commit latency (word end -> committed), with compute delaying later words (one worker)."""
    from engine.transcribe.whisper.streaming import WhisperStreamer
    from engine.transcribe.whisper.loading import load as load_whisper
    from engine.transcribe.streaming import word_latencies
    from engine.transcribe.whisper.streaming import whisper_transcriber

    fn = whisper_transcriber(*load_whisper("whisper-tiny.en", int8=False))
    parts = []
    for p in sorted(LIBRIVOX.glob("*.wav"))[:3]:
        a, _ = eaudio.load(p, sr=SR, mono=True)
        parts += [a, np.zeros(int(0.8 * SR), np.float32)]
    a = np.concatenate(parts)[: int(seconds * SR)]
    r = word_latencies(lambda: WhisperStreamer(fn, step=1.0), a, block=BLOCK)
    lat = np.array(r["latencies"])
    return {"seconds": len(a) / SR, "rtf": r["rtf"], "words": len(r["words"]),
            "commit_p50": float(np.percentile(lat, 50)), "commit_p95": float(np.percentile(lat, 95))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="per window the fastest of this many runs")
    ap.add_argument("--configs", default="0.3/1.2/0.15,1.0/2.0/0.5,0.5/1.5/0.25,0.3/0.6/0.15",
                    help="chunk/left/right seconds, comma separated")
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--whisper", action="store_true", help="also the Whisper live engine (tiny.en), then stop")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ctc.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.whisper:
        w = bench_whisper(args.seconds)
        print(f"Whisper tiny.en live engine, {w['seconds']:.1f} s of speech, {w['words']} words: RTF {w['rtf']:.2f}, "
              f"commit latency p50 {w['commit_p50']:.2f} s, p95 {w['commit_p95']:.2f} s "
              f"(load average {os.getloadavg()[0]:.1f})")
        return 0
    import tempfile

    import transformers

    transformers.logging.set_verbosity_error()
    hf = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(vocab_size=32)).eval()  # base-960h shape
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = load_model(d)
    ours.config.vocab = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    n_params = sum(p.numel() for p in ours.parameters())
    ours8 = quantize_int8(ours)
    models = {"ours fp32": (ours, True), "ours int8": (ours8, True), "ours int8 no cache": (ours8, False)}
    if not args.no_transformers:
        hf8 = torch.ao.quantization.quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)
        models["transformers fp32"] = lambda x: hf(x).logits
        models["transformers int8"] = lambda x: hf8(x).logits
    a = speech(args.seconds)
    with torch.inference_mode():  # same weights, same window: same logits
        x = window_audio(a, 0, 100)
        diff = (ours(x) - hf(x).logits).abs().max().item()
        x10 = window_audio(a, 0, 500)  # calibration: a whole 10 s utterance, as in KNOWLEDGE.md
        ours(x10)
        t = time.perf_counter()
        ours(x10)
        whole = 10.0 / (time.perf_counter() - t)
    load = os.getloadavg()[0]
    print(f"wav2vec2-base size: {n_params / 1e6:.1f} M parameters, {args.seconds:g} s of speech, "
          f"{args.threads} threads, ours vs transformers max |logit diff| {diff:.1e}")
    print(f"machine: load average {load:.1f} on {os.cpu_count()} cores; whole 10 s fp32 forward "
          f"{whole:.1f}x real time (9.3x on an idle machine of this kind)")
    out = {"threads": args.threads, "seconds": args.seconds, "params": n_params, "max_logit_diff": diff,
           "load_average": load, "whole_10s_x_realtime": whole, "results": {}}
    for cfg in args.configs.split(","):
        chunk, left, right = (float(v) for v in cfg.split("/"))
        res = bench(models, a, chunk, left, right, args.repeats)
        out["results"][cfg] = res
        print(f"\nchunk {chunk:g} s, left {left:g} s, right {right:g} s "
              f"(window {chunk + left + right:g} s every {chunk:g} s)")
        print(f"{'':18s} {'chunk ms p50':>12s} {'p95':>7s} {'RTF':>6s} {'shown p50':>10s} {'p95':>6s} "
              f"{'commit p50':>10s} {'p95':>6s} {'=offline':>8s}")
        for name, r in res.items():
            print(f"{name:18s} {r['chunk_ms_p50']:12.0f} {r['chunk_ms_p95']:7.0f} {r['rtf']:6.3f} "
                  f"{r['p50_shown']:10.3f} {r['p95_shown']:6.3f} {r['p50_commit']:10.3f} {r['p95_commit']:6.3f} "
                  f"{r['agree'] * 100:7.1f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
