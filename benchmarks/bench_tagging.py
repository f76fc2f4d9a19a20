"""Audio tagging speed: x real time on 10 s windows of real audio, features included, side by side.

* AST at real size (the ``MIT/ast-finetuned-audioset-10-10-0.4593`` shape: hidden 768, 12 layers, 12 heads,
  16x16 patches, strides 10/10, 1024 frames, 527 labels; random weights: speed does not depend on the
  values), saved by transformers and loaded by ours from the same folder:
  ours fp32 (``engine.models.ast``), ours int8 (``engine.models.load(folder, int8=True)``: dynamic int8
  Linear layers), transformers ``ASTForAudioClassification`` + ``ASTFeatureExtractor`` fp32 and, as a peer
  for the int8 row, the same model through ``quantize_dynamic``;
* EfficientAT mn04 (real weights in ``../shared/models/efficientat-mn04-as``), ``efficientat_mel`` on
  32 kHz audio: see :func:`efficientat_rows`.

Every model runs every window once per repetition, interleaved (all models do window k before anyone does
k+1, so load from other processes hits them alike); a row's time is the median over windows x repetitions.

    python benchmarks/bench_tagging.py [--windows 3] [--repeats 3] [--threads 2] [--no-hf-int8]

Target: ours >= 1.5x transformers (fp32) for AST.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from engine.audio import io as eaudio  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
EFFICIENTAT = ROOT.parent / "shared" / "models" / "efficientat-mn04-as"
WINDOW = 10.0  # seconds

Row = Callable[[int], np.ndarray]  # window index -> logits


def speech(sr: int) -> np.ndarray:
    """The five LibriVox utterances joined (~24.7 s), at ``sr``."""
    return np.concatenate([eaudio.load(p, sr=sr, mono=True)[0] for p in sorted(LIBRIVOX.glob("*.wav"))])


def windows(a: np.ndarray, sr: int, n: int) -> list[np.ndarray]:
    """``n`` 10 s windows spread over the audio (wrapping around at its end)."""
    size = int(WINDOW * sr)
    a = np.concatenate([a, a]) if len(a) < 2 * size else a
    starts = np.linspace(0, len(a) - size, n).astype(int)
    return [np.ascontiguousarray(a[s:s + size]) for s in starts]


def ast_rows(folder: Path, wins16: list[np.ndarray], hf_int8: bool) -> dict[str, Row]:
    import transformers

    import engine.models as models
    from engine.models import ast

    transformers.logging.set_verbosity_error()
    ours = ast.load_model(folder)
    ours_int8 = models.load(folder, int8=True)
    hf = transformers.ASTForAudioClassification.from_pretrained(str(folder)).eval()
    fe = transformers.ASTFeatureExtractor.from_pretrained(str(folder))

    def run_hf(model) -> Row:
        def run(i: int) -> np.ndarray:
            x = fe(wins16[i], sampling_rate=16000, return_tensors="pt")
            with torch.inference_mode():
                return model(**x).logits[0].numpy()
        return run

    rows = {"AST ours fp32": lambda i: ours.logits(wins16[i]),
            "AST ours int8": lambda i: ours_int8.logits(wins16[i]),
            "AST transformers fp32": run_hf(hf)}
    if hf_int8:
        from torch.ao.quantization import quantize_dynamic

        rows["AST transformers int8"] = run_hf(quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8))
    return rows


# ---------------------------------------------------------------------------------------------
# EfficientAT rows  <<< fill in / extend here (other EfficientAT widths, batch sizes ...) >>>


def efficientat_rows(wins32: list[np.ndarray]) -> dict[str, Row]:
    """EfficientAT taggers, features included: ``efficientat_mel`` on the 32 kHz windows -> logits."""
    if not EFFICIENTAT.exists():
        print(f"(no EfficientAT rows: {EFFICIENTAT} is missing)")
        return {}
    from engine.audio.dsp import efficientat_mel
    from engine.models import efficientat

    model = efficientat.load_model(EFFICIENTAT)

    def run(i: int) -> np.ndarray:
        with torch.inference_mode():
            return model(efficientat_mel(wins32[i]))[0].numpy()

    return {"EfficientAT mn04 fp32": run}


# ---------------------------------------------------------------------------------------------


def bench(rows: dict[str, Row], n_windows: int, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in rows}
    for fn in rows.values():  # warm-up (first-call allocations, kernel choice)
        fn(0)
    for r in range(repeats):
        for i in range(n_windows):
            for name, fn in rows.items():
                t = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t)
        print(f"  repetition {r + 1}/{repeats} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=3, help="10 s windows of real speech")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-hf-int8", action="store_true", help="leave out transformers + quantize_dynamic")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import transformers

    transformers.logging.set_verbosity_error()
    wins16 = windows(speech(16000), 16000, args.windows)
    wins32 = windows(speech(32000), 32000, args.windows)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        cfg = transformers.ASTConfig(num_labels=527)  # the MIT/ast-finetuned-audioset-10-10-0.4593 shape
        transformers.ASTForAudioClassification(cfg).save_pretrained(d)
        transformers.ASTFeatureExtractor().save_pretrained(d)
        rows = ast_rows(folder, wins16, hf_int8=not args.no_hf_int8)
        rows.update(efficientat_rows(wins32))
        # same weights, same audio: the rows compute the same thing
        ref = rows["AST transformers fp32"](0)
        diff = float(np.abs(rows["AST ours fp32"](0) - ref).max())
        top1 = [int(np.argmax(rows[k](i))) for k in ("AST ours fp32", "AST ours int8") for i in range(args.windows)]
        print(f"AST real size, random weights: ours fp32 vs transformers max |logit difference| {diff:.1e}; "
              f"int8 top-1 equal to fp32 on {sum(a == b for a, b in zip(top1[:args.windows], top1[args.windows:]))}"
              f"/{args.windows} windows")
        print(f"{args.windows} windows x {args.repeats} repetitions, {args.threads} threads:")
        times = bench(rows, args.windows, args.repeats)
    base = float(np.median(times["AST transformers fp32"]))
    print()
    print(f"| model | ms per {WINDOW:.0f} s window (median) | min | x real time | vs transformers fp32 |")
    print("|---|---|---|---|---|")
    for name, t in times.items():
        med = float(np.median(t))
        print(f"| {name} | {1000 * med:.0f} | {1000 * min(t):.0f} | {WINDOW / med:.1f} | {base / med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
