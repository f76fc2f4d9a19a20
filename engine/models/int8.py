"""Int8 Linear layers as CTranslate2 runs them on the CPU: symmetric int8 weights with one scale per
output row, and inputs quantised at run time with one scale per row (per token), multiplied in
int8 with an int32 accumulator (``torch._int_mm``).

PyTorch's dynamic quantisation (``quantize_dynamic``) quantises the input with one scale for the
whole matrix, in 7 bits on x86 (``reduce_range``): one loud position of a 1500-position encoder
activation coarsens every other, and Whisper's long-form decoding lost whole phrases to it
(benchmarks/bench_whisper_int8.py). Per-row input scales keep each token's own range.

Whisper uses these in its decoder (whose cross-attention keys come from all 1500 encoder positions)
and keeps torch's dynamic quantisation in the encoder: there it was as accurate, and its one fused op
is faster on the single thread of live transcription.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """w (N, K) float -> (int8 (N, K), scales (N,)): symmetric, one scale per row."""
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale.float()


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
        s = x2.abs().amax(dim=1, keepdim=True).div_(127.0).clamp_min_(1e-12)  # (M, 1): one scale per row
        acc = torch._int_mm(x2.div(s).round_().to(torch.int8), self.weight.t())  # (M, N) int32
        y = acc.float().mul_(s).mul_(self.scale)  # (M, N) float32
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*shape[:-1], self.out_features)

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
