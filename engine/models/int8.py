"""Int8 Linear layers as CTranslate2 runs them on the CPU: symmetric int8 weights with one scale per
output row, and inputs quantised at run time with one scale per row (per token), multiplied in
int8 with an int32 accumulator.

The multiply runs on one of two kernels, chosen once per process (:func:`kernel`): ``torch._int_mm``
where this CPU runs it fast (VNNI / AMX), else torch's quantized Linear (fbgemm), which is fast on
plain AVX2 where ``_int_mm`` falls back to a kernel 20-40x slower than float32. fbgemm quantises its
input with one (asymmetric, 8-bit) range per call, so each row is first divided by its own peak and
the output rows multiplied back: every row still gets its own range.

On AVX2 without VNNI, the CPUs that get fbgemm, it multiplies with ``vpmaddubsw``, which adds pairs
of uint8 x int8 products in int16 and saturates (FBGEMM issue 125): torch's answer is 7-bit inputs
(``reduce_range``), which doubled the input's rounding error and lost whole phrases on the long
files of tests/test_whisper_int8.py (13.0% WER against 5.8% in float32). Here the inputs keep 8 bits
and the weights are split instead: w = 2 * hi + lo with |hi| <= 64 and lo in {-1, 0, 1}, packed as
one matrix of twice the rows (hi with twice the scale) whose two halves are added: 255 * 64 * 2 =
32640 fits int16, and the product is exactly the 8-bit one (twice the weight bytes, still 4-9x
faster than float32 at decoder sizes).

PyTorch's dynamic quantisation (``quantize_dynamic``) quantises the input with one scale for the
whole matrix, in 7 bits on x86 (``reduce_range``): one loud position of a 1500-position encoder
activation coarsens every other, and Whisper's long-form decoding lost whole phrases to it
(benchmarks/bench_whisper_int8.py). Per-row input scales keep each token's own range.

Whisper uses these in its decoder (whose cross-attention keys come from all 1500 encoder positions)
and keeps torch's dynamic quantisation in the encoder: there it was as accurate, and its one fused op
is faster on the single thread of live transcription.
"""

from __future__ import annotations

import functools
import os
import time
import warnings

import torch
from torch import Tensor, nn

KERNELS = ("int_mm", "fbgemm")
KERNEL_ENV = "SONOSCOPE_INT8_KERNEL"  # force one of KERNELS (tests, benchmarks)


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """w (N, K) float -> (int8 (N, K), scales (N,)): symmetric, one scale per row."""
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale.float()


def _best_ms(f, reps: int = 5) -> float:
    f()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def _pack(weight: Tensor, scale: Tensor) -> object:
    """int8 (N, K) rows with their scales -> fbgemm's prepacked weight (no bias)."""
    zeros = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # torch marks its quantized tensors deprecated; they still work
        warnings.simplefilter("ignore")
        q = torch._make_per_channel_quantized_tensor(weight, scale.double(), zeros, 0)
        return torch.ops.quantized.linear_prepack(q, None)


def split_rows(weight: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """int8 (N, K) rows with scales (N,) -> (2N, K) rows [hi; lo] with scales [2 * scale; scale], where
    weight = 2 * hi + lo, |hi| <= 64, lo in {-1, 0, 1}: no pair of uint8 x int8 products of a row
    overflows int16 (see the module docstring)."""
    w = weight.to(torch.int16)
    hi = w.sign() * torch.div(w.abs() + 1, 2, rounding_mode="floor")  # w / 2 rounded away from 0: |hi| <= 64
    lo = w - 2 * hi
    return torch.cat([hi, lo]).to(torch.int8), torch.cat([2 * scale, scale])


def _fbgemm_works() -> bool:
    try:
        w, s = quantize_rows(torch.randn(8, 16))
        y = torch.ops.quantized.linear_dynamic(torch.randn(2, 16), _pack(w, s), True)
        return y.shape == (2, 8)
    except (RuntimeError, AttributeError):
        return False


@functools.lru_cache(maxsize=1)
def kernel() -> str:
    """The int8 multiply this process uses: ``$SONOSCOPE_INT8_KERNEL`` if set, else ``int_mm`` unless it
    is over 4x slower than float32 on a decoder-sized product (8 x 512 x 512) and fbgemm runs here."""
    forced = os.environ.get(KERNEL_ENV, "").strip()
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"{KERNEL_ENV}={forced!r}: expected one of {', '.join(KERNELS)}")
        return forced
    x, w = torch.randn(8, 512), torch.randn(512, 512)
    xq, wq = torch.ones(8, 512, dtype=torch.int8), torch.ones(512, 512, dtype=torch.int8).t()  # as forward
    with torch.inference_mode():
        int_mm, fp32 = _best_ms(lambda: torch._int_mm(xq, wq)), _best_ms(lambda: x @ w)
    return "fbgemm" if int_mm > 4 * fp32 and _fbgemm_works() else "int_mm"


class Int8Linear(nn.Module):
    """y = x W^T + b with W in int8 (one scale per output row) and x quantised per row at run time.

    Buffers: ``weight`` int8 (N, K), ``scale`` float32 (N,), ``bias`` float32 (N,) or absent.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed: tuple[Tensor, Tensor, object] | None = None  # (weight, scale, fbgemm's pack of them)

    @classmethod
    def from_float(cls, linear: nn.Linear) -> "Int8Linear":
        m = cls(linear.in_features, linear.out_features, linear.bias is not None)
        m.weight, m.scale = quantize_rows(linear.weight.detach().float())
        if linear.bias is not None:
            m.bias = linear.bias.detach().float().clone()
        return m

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])  # (M, K) float32
        if kernel() == "fbgemm":
            peak = x2.abs().amax(dim=1, keepdim=True).clamp_min_(1e-12)  # (M, 1): each row to [-1, 1]
            y2 = torch.ops.quantized.linear_dynamic(x2 / peak, self._fbgemm(), False)  # (M, 2N): hi, lo parts
            y = y2[:, :self.out_features].add_(y2[:, self.out_features:]).mul_(peak)  # (M, N)
        else:
            s = x2.abs().amax(dim=1, keepdim=True).div_(127.0).clamp_min_(1e-12)  # (M, 1): one scale per row
            acc = torch._int_mm(x2.div(s).round_().to(torch.int8), self.weight.t())  # (M, N) int32
            y = acc.float().mul_(s).mul_(self.scale)  # (M, N) float32
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*shape[:-1], self.out_features)

    def _fbgemm(self) -> object:
        """fbgemm's pack of the current weight, made on first use (the vocabulary's takes ~0.5 s) and
        again when ``weight`` or ``scale`` is replaced (loading assigns them); an in-place change of
        either is not seen (version counters do not exist on inference tensors)."""
        p = self._packed
        if p is None or p[0] is not self.weight or p[1] is not self.scale:
            p = self._packed = (self.weight, self.scale, _pack(*split_rows(self.weight, self.scale)))
        return p[2]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8"


def quantize(module: nn.Module, empty: bool = False) -> nn.Module:
    """Every ``nn.Linear`` inside ``module`` (or ``module`` itself) as an :class:`Int8Linear`, in place.

    ``empty``: shells of the right shapes whose buffers are assigned afterwards (a prepared file)."""
    def convert(lin: nn.Linear) -> Int8Linear:
        if empty:
            return Int8Linear(lin.in_features, lin.out_features, lin.bias is not None)
        return Int8Linear.from_float(lin)

    if isinstance(module, nn.Linear):
        return convert(module)
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, convert(child))
        else:
            quantize(child, empty)
    return module
