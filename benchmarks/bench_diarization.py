"""Who spoke when: speed, and the diarization error rate (DER) on real voices.

    python benchmarks/bench_diarization.py                  # speed on a long file + DER tables
    python benchmarks/bench_diarization.py --minutes 30     # a longer file (streamed; peak memory)
    python benchmarks/bench_diarization.py --tune           # the parameter sweeps (tuning clips only)

Voices: real recordings of four people (``tests/voices.py``: a LibriVox reader, the pocketsphinx
``cards`` and ``goforward/numbers/something`` speakers, the alsa-utils voice). Conversations are
built by putting clips one after another, with pauses (0.6-1.2 s) or as quick exchanges (each
clip cut to its speech, 0-0.15 s between). DER: missed + false alarm + confusion over the scored
reference speech, optimal speaker mapping, 0.25 s collar (and none).

``--tune`` reruns, on the ``TUNE`` clips only, the sweeps that chose ``engine.speakers.diarize``'s
parameters: the distance threshold of the speaker-count estimate (middle of the range where every
tuning conversation gets its speaker count right: 0.325-0.40 -> 0.36), the windows (1.5 s every
0.75 s: as good as 1 s windows with pauses, steadier embeddings), and the change penalty of the
resegmentation (the largest that leaves pause-free speaker changes as found as without it: 0.2).

Measured on the 2-core development machine (shared with other jobs, load 3-4), torch 2.13 CPU:

| clips | conversations (2-4 speakers) | DER count given (mean / worst) | count estimated | given, no collar |
|---|---|---|---|---|
| tuning | 44 with pauses | 0.4% / 3% | 0.4% / 3% | 7.3% |
| tuning | 44 quick exchanges (no pauses) | 15.3% / 49% | 16.0% / 49% | 22.7% |
| test | 44 with pauses | 0.0% / 0% | 0.0% / 0% | 7.0% |
| test | 44 quick exchanges (no pauses) | 16.2% / 35% | 19.8% / 50% | 24.0% |

(``tests/test_diarize.py``: test clips, 3 speakers / 9 turns / 36 s: DER 0.0% given and estimated;
4 speakers / 14 turns / 49 s: 0.2% both.) Quick exchanges are the weak spot: a change of speaker
without a pause is found only to within a window (1.5 s), and short turns inside a window are lost.

Speed, a 10.5-minute 44.1 kHz stereo FLAC, 3 speakers, streamed (decode, resample, VAD, embed,
cluster): one torch thread 16.3 s = **38.7x real time**; two threads 119 s (5.3x: the two busy
cores fight over the LSTM; hence ``threads=1`` by default). Peak memory (VmHWM of the whole
benchmark, which holds the 10-minute signal itself several times) 690 MB. Silero VAD is ~40% of the
time (one ONNX call per 32 ms frame), the LSTM most of the rest.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # voices: the real recordings and the DER

import voices  # noqa: E402
from engine.speakers import diarize as dz  # noqa: E402


def conversations(clips: dict[str, list[str]], quick: bool, groups=None, seeds: int = 4):
    """(speakers, audio, reference) for every group of speakers and seed: each clip once per conversation."""
    groups = groups or ["ABCD", "ABC", "ABD", "ACD", "BCD", "AB", "CD", "AD", "BD", "AC", "BC"]
    if not voices.alsa_available():
        groups = [g for g in groups if "D" not in g]
    out = []
    for spk in groups:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            order = voices.interleave({s: list(rng.permutation(clips[s])) for s in spk},
                                      "".join(rng.permutation(list(spk))))
            audio, ref, _ = voices.conversation(order, seed=seed, pause_range=(0.0, 0.15) if quick else (0.6, 1.2),
                                                trim=quick)
            out.append((spk, audio, ref))
    return out


def score(convs, embs, threshold=dz.THRESHOLD, penalty=dz.CHANGE_PENALTY, given=True, collar=0.25):
    ders, count_errors = [], []
    for (spk, _, ref), emb in zip(convs, embs):
        reliable = np.array([w.frames * dz.HOP >= dz.RELIABLE * 16000 for w in emb.windows], bool)
        labels = dz.cluster(emb.embeddings, len(spk) if given else None, threshold, dz.MAX_SPEAKERS, reliable)
        turns = dz.turns_from(emb, dz.resegment(emb, labels, penalty))
        ders.append(voices.der(ref, [(t.start, t.end, t.speaker) for t in turns], collar=collar)["der"])
        count_errors.append(len({t.speaker for t in turns}) - len(spk))
    return float(np.mean(ders)), float(np.max(ders)), count_errors


def embed_all(convs, encoder, **kw):
    return [dz.embed_voiced(None, audio, encoder, **kw) for _, audio, _ in convs]


def tune(encoder) -> None:
    for quick in (False, True):
        convs = conversations(voices.TUNE, quick)
        kind = "quick exchanges" if quick else "with pauses"
        for window, step in ((1.5, 0.75), (1.0, 0.5), (2.0, 1.0)):
            embs = embed_all(convs, encoder, window=window, step=step)
            g = score(convs, embs)
            print(f"\n{kind}, windows {window} s / {step} s: count given DER {g[0]:.1%} (worst {g[1]:.0%})")
            print("  threshold  DER estimated (mean / worst)  speaker-count errors")
            for thr in np.arange(0.25, 0.5, 0.025):
                m, w, errs = score(convs, embs, threshold=thr, given=False)
                print(f"  {thr:9.3f}  {m:8.1%} / {w:4.0%}  {sum(e != 0 for e in errs)} of {len(errs)}")
            if (window, step) == (1.5, 0.75):
                print("  penalty  DER given  DER estimated")
                for pen in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 10.0):
                    print(f"  {pen:7.2f}  {score(convs, embs, penalty=pen)[0]:8.1%}  "
                          f"{score(convs, embs, penalty=pen, given=False)[0]:8.1%}")


def der_tables(encoder) -> None:
    print("\n| clips | conversations | DER given (mean / worst) | DER estimated | no collar (given) |")
    print("|---|---|---|---|---|")
    for name, clips in (("tuning", voices.TUNE), ("test", voices.TEST)):
        for quick in (False, True):
            convs = conversations(clips, quick)
            embs = embed_all(convs, encoder)
            g, e, g0 = score(convs, embs), score(convs, embs, given=False), score(convs, embs, collar=0.0)
            print(f"| {name} | {len(convs)} {'quick exchanges' if quick else 'with pauses'} | "
                  f"{g[0]:.1%} / {g[1]:.0%} | {e[0]:.1%} / {e[1]:.0%} | {g0[0]:.1%} |")


def speed(minutes: float, threads_list) -> None:
    import soundfile as sf
    import soxr

    parts, ref, t = [], [], 0.0
    seed = 0
    while t < minutes * 60:
        order = voices.interleave({s: voices.TEST[s] + voices.TUNE[s] for s in "ABC"}, "ABC")
        audio, rr, _ = voices.conversation(order, seed=seed)
        parts.append(audio)
        ref += [(a + t, b + t, s) for a, b, s in rr]
        t += len(audio) / 16000
        seed += 1
    audio = np.concatenate(parts)
    seconds = len(audio) / 16000
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.flac"
        sf.write(path, soxr.resample(np.stack([audio, 0.7 * audio], 1), 16000, 44100), 44100)
        del parts
        print(f"\n{seconds / 60:.1f} min, 44.1 kHz stereo FLAC, 3 speakers:")
        print("| torch threads | wall s | x real time | DER given | DER estimated |")
        print("|---|---|---|---|---|")
        for threads in threads_list:
            t0 = time.perf_counter()
            turns = dz.diarize(None, path, 3, threads=threads)
            wall = time.perf_counter() - t0
            est = dz.diarize(None, path, None, threads=threads)
            d1 = voices.der(ref, [(x.start, x.end, x.speaker) for x in turns])["der"]
            d2 = voices.der(ref, [(x.start, x.end, x.speaker) for x in est])["der"]
            print(f"| {threads} | {wall:.1f} | {seconds / wall:.1f} | {d1:.1%} | {d2:.1%} |")
    print(f"peak memory (VmHWM, whole process): {int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the speed test file")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to try")
    ap.add_argument("--tune", action="store_true", help="the parameter sweeps on the tuning clips")
    ap.add_argument("--no-der", action="store_true", help="speed only")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    from engine import models

    encoder = models.load(dz.MODEL)
    dz.diarize(None, voices.conversation([("A", voices.TUNE["A"][0])])[0])  # warm up (model, VAD, caches)
    if args.tune:
        tune(encoder)
        return
    speed(args.minutes, args.threads)
    if not args.no_der:
        der_tables(encoder)


if __name__ == "__main__":
    main()
