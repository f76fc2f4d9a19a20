"""SepFormer speaker separation speed and memory, side by side with SpeechBrain, same weights and input.

    python benchmarks/bench_separation.py                       # 10 s and 60 s of 8 kHz audio, 2 threads
    python benchmarks/bench_separation.py --seconds 10 --repeats 3 --threads 1

The model is SepFormer at real size (the speechbrain/sepformer-wsj02mix configuration: N=256, K=250, 2
dual-path blocks of 8 intra + 8 inter transformer layers, d_model 256, 8 heads, d_ffn 1024) with random
weights, built by SpeechBrain and saved as a hub folder that Sonoscope loads. Each run is a fresh process
(so its peak memory, ``VmHWM``, is its own):

- SpeechBrain: ``SepformerSeparation.separate_batch`` on the whole signal (its way: one pass, attention
  across every chunk of the file at once);
- Sonoscope: the ``separate_speakers`` job on a WAV file of the same signal (10 s chunks with 1 s of
  overlap, speaker order kept, files written): the whole path a user runs.

× real time = audio seconds per wall-clock second (best of ``--repeats``, runs alternate); "peak" is the
process's peak RSS and "+run" the part above the RSS after the model was loaded. On the one-chunk 10 s
input the two outputs are compared (SNR, dB).

Measured on the 2-core development machine (AMD EPYC, AVX-512; shared with other jobs: the load average
went from 0.5 to 6 during this run, so read the CPU-time ratio where the wall times disagree), torch 2.13
CPU, ``--seconds 10 60 --threads 2 1`` (17 minutes; the default, 2 threads, takes about 7):

| input | threads | SpeechBrain × real time | Sonoscope × real time | speed-up wall (cpu) | SpeechBrain peak (+run) | Sonoscope peak (+run) | SNR dB |
|---|---|---|---|---|---|---|---|
| 10 s | 2 | 0.79 | 1.20 | 1.52x (1.51x) | 1412 MB (+762) | 673 MB (+273) | 122 |
| 10 s | 1 | 0.40 | 0.62 | 1.56x (1.58x) | 1152 MB (+599) | 551 MB (+153) | 125 |
| 60 s | 2 | 0.21 | 0.53 | 2.54x (1.92x) | 6619 MB (+6038) | 723 MB (+328) | (chunked) |
| 60 s | 1 | 0.20 | 0.28 | 1.42x (2.32x) | 6695 MB (+6097) | 653 MB (+249) | (chunked) |

(An earlier 10 s run at load 2: 1.72x on 1 thread, 1.98x on 2.) SpeechBrain's memory grows with the
square of the length (its inter-chunk attention spans the whole file: 60 s is 480 chunks); Sonoscope's
stays flat (10 s chunks, streamed to the files). Where the time goes in Sonoscope: ~72% the linear layers
(oneDNN fp32, 80-100 GFLOP/s a core here, near this CPU's peak), ~18% attention, the rest small, so the
remaining margin at fp32 is small; SpeechBrain loses to its attention matrices (need_weights, explicit
softmax) and to linear layers run as batched products on (time, batch, feature) views.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from sepformer_ref import sb_folder, speechbrain_modules  # noqa: E402

RATE = 8000
WSJ02MIX = """# the speechbrain/sepformer-wsj02mix configuration (random weights here)
sample_rate: 8000
num_spks: 2
Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
  kernel_size: 16
  out_channels: 256
SBtfintra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
  num_layers: 8
  d_model: 256
  nhead: 8
  d_ffn: 1024
  dropout: 0
  use_positional_encoding: true
  norm_before: true
SBtfinter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
  num_layers: 8
  d_model: 256
  nhead: 8
  d_ffn: 1024
  dropout: 0
  use_positional_encoding: true
  norm_before: true
MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
  num_spks: !ref <num_spks>
  in_channels: 256
  out_channels: 256
  num_layers: 2
  K: 250
  intra_model: !ref <SBtfintra>
  inter_model: !ref <SBtfinter>
  norm: ln
  linear_layer_after_inter_intra: false
  skip_around_intra: true
Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
  in_channels: 256
  out_channels: 1
  kernel_size: 16
  stride: 8
  bias: false
modules:
  encoder: !ref <Encoder>
  decoder: !ref <Decoder>
  masknet: !ref <MaskNet>
"""


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def mixture(seconds: float) -> np.ndarray:
    """Two real voices of pocketsphinx-testdata, repeated to length (noise if the package is missing)."""
    from engine.audio import io as audio_io

    n = int(seconds * RATE)
    ps = Path("/usr/share/pocketsphinx/test/data")
    a_files = sorted((ps / "librivox").glob("*.wav"))
    c_files = [ps / "numbers.raw", ps / "something.raw", ps / "goforward.raw"]
    if not a_files or not all(p.exists() for p in c_files):
        return (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    a = np.concatenate([audio_io.load(p, sr=RATE, mono=True)[0] for p in a_files])
    c = np.concatenate([audio_io.resample(np.fromfile(p, "<i2").astype(np.float32) / 32768, 16000, RATE)
                        for p in c_files])
    return (0.5 * (np.resize(a, n) + np.resize(c, n))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# one measured run, in its own process


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads[0])
    folder = Path(args.folder)
    x = np.load(args.input)
    t_load = time.perf_counter()
    if args.worker == "speechbrain":
        load_hyperpyyaml, SepformerSeparation = speechbrain_modules(quiet=True)
        hp = load_hyperpyyaml((folder / "hyperparams.yaml").read_text())
        for name in ("encoder", "masknet", "decoder"):
            hp["modules"][name].load_state_dict(torch.load(folder / f"{name}.ckpt", weights_only=True))
        model = SepformerSeparation(modules=hp["modules"], hparams=hp)
        with torch.inference_mode():
            model.separate_batch(torch.zeros(1, RATE))  # warm-up

        def run() -> np.ndarray:
            with torch.inference_mode():
                return model.separate_batch(torch.from_numpy(x)[None])[0].T.numpy()
    else:
        import soundfile as sf

        from engine.models import sepformer
        from engine.speakers.separate import separate_speakers

        model = sepformer.load_folder(folder)
        with torch.inference_mode():
            model(torch.zeros(1, RATE))  # warm-up
        wav = Path(args.input).with_suffix(".wav")
        sf.write(str(wav), x, RATE, subtype="FLOAT")

        def run() -> np.ndarray:
            with tempfile.TemporaryDirectory() as out:
                r = separate_speakers(None, wav, out, model=model)
                return np.stack([sf.read(str(p), dtype="float32")[0] for p in r.speakers.values()])
    load_s = time.perf_counter() - t_load
    base = rss_mb()
    t, c = time.perf_counter(), time.process_time()
    y = run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
    if args.output:
        np.save(args.output, y)
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak, "base_mb": base, "load_s": load_s}))


def measure(which: str, folder: Path, inp: Path, threads: int, output: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--folder", str(folder), "--input", str(inp),
           "--threads", str(threads)] + (["--output", str(output)] if output else [])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if r.returncode:
        sys.exit(f"{which} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--worker", choices=("speechbrain", "sonoscope"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench_separation_"))
    folder = tmp / "sepformer-random"
    sb_folder(speechbrain_modules(quiet=True), folder, WSJ02MIX, seed=0)
    print(f"SepFormer, wsj02mix size, random weights; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for seconds in args.seconds:
        inp = tmp / f"mix{seconds:g}.npy"
        np.save(inp, mixture(seconds))
        for threads in args.threads:
            best: dict[str, dict] = {}
            for rep in range(args.repeats):
                for which in ("speechbrain", "sonoscope"):
                    out = tmp / f"{which}.npy"
                    r = measure(which, folder, inp, threads, out if rep == 0 else None)
                    print(f"  {seconds:g} s, {threads} threads, {which:12s} {r['wall']:7.1f} s wall "
                          f"{r['cpu']:7.1f} s cpu, peak {r['peak_mb']:6.0f} MB", flush=True)
                    if which not in best or r["wall"] < best[which]["wall"]:
                        best[which] = r
            snr_s = "(chunked)"
            if seconds <= 10:  # one chunk: the same numbers
                ysb, yso = np.load(tmp / "speechbrain.npy"), np.load(tmp / "sonoscope.npy")
                snr = min(10 * np.log10(np.sum(ysb[k].astype(np.float64) ** 2)
                                        / np.sum((ysb[k] - yso[k]).astype(np.float64) ** 2)) for k in range(2))
                snr_s = f"{snr:.0f}"
            rows.append((seconds, threads, best["speechbrain"], best["sonoscope"], snr_s))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the random model (110 MB) and the inputs
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    print("| input | threads | SpeechBrain × real time | Sonoscope × real time | speed-up wall (cpu) | "
          "SpeechBrain peak (+run) | Sonoscope peak (+run) | SNR dB |")
    print("|---|---|---|---|---|---|---|---|")
    for seconds, threads, sb, so, snr_s in rows:
        print(f"| {seconds:g} s | {threads} | {seconds / sb['wall']:.2f} | {seconds / so['wall']:.2f} | "
              f"{sb['wall'] / so['wall']:.2f}x ({sb['cpu'] / so['cpu']:.2f}x) | "
              f"{sb['peak_mb']:.0f} MB (+{sb['peak_mb'] - sb['base_mb']:.0f}) | "
              f"{so['peak_mb']:.0f} MB (+{so['peak_mb'] - so['base_mb']:.0f}) | {snr_s} |")

if __name__ == "__main__":
    main()
