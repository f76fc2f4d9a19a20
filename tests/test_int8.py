"""engine.models.int8: int8 Linear layers with per-row weight scales and per-row (per-token) input
scales, as CTranslate2 runs them; checked against float32 nn.Linear on both kernels (``_int_mm``
and fbgemm, its weights split so that no int16 sum overflows) to the same bound."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.models import int8
from engine.models.int8 import Int8Linear, quantize, quantize_rows

TOLERANCE = 0.01  # relative error, both kernels


def _use(name: str, monkeypatch) -> str:
    if name == "fbgemm" and not int8._fbgemm_works():
        pytest.skip("no fbgemm on this CPU")
    monkeypatch.setattr(int8, "kernel", lambda: name)
    return name


@pytest.fixture(params=int8.KERNELS)
def kernel(request, monkeypatch):
    return _use(request.param, monkeypatch)


@pytest.fixture
def fbgemm(monkeypatch):
    return _use("fbgemm", monkeypatch)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("shape", [(1, 384), (3, 7, 384), (1500, 384)])
def test_matches_float_linear(shape, kernel):
    torch.manual_seed(0)
    lin = nn.Linear(384, 640)
    x = torch.randn(*shape)
    q = Int8Linear.from_float(lin)
    with torch.inference_mode():
        y, ref = q(x), lin(x)
    assert y.shape == ref.shape == (*shape[:-1], 640) and y.dtype == torch.float32
    assert _rel(y, ref) < TOLERANCE


def test_a_loud_row_does_not_coarsen_the_others(kernel):
    """One position 1000x louder than the rest (an encoder outlier): the quiet rows keep their
    accuracy, where one scale for the whole input (torch's dynamic quantisation) loses them."""
    torch.manual_seed(1)
    lin = nn.Linear(256, 256)
    x = torch.randn(64, 256)
    x[5] *= 1000.0
    with torch.inference_mode():
        y, ref = Int8Linear.from_float(lin)(x), lin(x)
        quiet = torch.arange(64) != 5
        assert _rel(y[quiet], ref[quiet]) < TOLERANCE
        assert _rel(y[5], ref[5]) < TOLERANCE
        s = x.abs().max() / 127  # what one scale for the whole input would give the quiet rows
        coarse = lin(torch.round(x / s) * s)
        assert _rel(coarse[quiet], ref[quiet]) > 0.1  # the property above is not a given


def test_rows_are_quantised_symmetrically_to_their_own_range():
    w = torch.tensor([[1.0, -0.5, 0.25], [100.0, 50.0, -100.0]])
    q, s = quantize_rows(w)
    assert q.dtype == torch.int8 and q.abs().max(dim=1).values.tolist() == [127, 127]
    assert torch.allclose(s, torch.tensor([1 / 127, 100 / 127]))
    assert (q.float() * s[:, None] - w).abs().le(s[:, None] / 2 + 1e-6).all()


def test_quantize_replaces_every_linear_and_keeps_the_rest(kernel):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Sequential(nn.LayerNorm(32), nn.Linear(32, 8, bias=False)))
    x = torch.randn(4, 16)
    with torch.inference_mode():
        ref = net(x)
        quantize(net)
        y = net(x)
    assert isinstance(net[0], Int8Linear) and isinstance(net[2][1], Int8Linear) and net[2][1].bias is None
    assert isinstance(net[2][0], nn.LayerNorm) and _rel(y, ref) < 0.02
    shells = quantize(nn.Sequential(nn.Linear(16, 32)), empty=True)
    assert isinstance(shells[0], Int8Linear) and shells[0].weight.shape == (32, 16)
    assert sorted(shells.state_dict()) == ["0.bias", "0.scale", "0.weight"]


def test_the_fbgemm_pack_follows_the_weight(fbgemm):
    """The packed weight is made once and made again when the buffers are replaced (a prepared file
    assigns them after the shells are built)."""
    torch.manual_seed(3)
    a, b, x = nn.Linear(32, 16), nn.Linear(32, 16), torch.randn(2, 32)
    q = Int8Linear.from_float(a)
    with torch.inference_mode():
        first = q(x)
        pack = q._packed[2]
        assert q(x).equal(first) and q._packed[2] is pack
        q.weight, q.scale = quantize_rows(b.weight.detach())
        q.bias = b.bias.detach().clone()
        assert _rel(q(x), b(x)) < TOLERANCE and q._packed[2] is not pack


def test_the_kernel_can_be_forced(monkeypatch):
    int8.kernel.cache_clear()
    try:
        monkeypatch.setenv(int8.KERNEL_ENV, "int_mm")
        assert int8.kernel() == "int_mm"
        int8.kernel.cache_clear()
        monkeypatch.setenv(int8.KERNEL_ENV, "avx9000")
        with pytest.raises(ValueError, match="int_mm, fbgemm"):
            int8.kernel()
    finally:
        int8.kernel.cache_clear()
        monkeypatch.delenv(int8.KERNEL_ENV)


def test_fbgemm_weights_are_split_so_that_no_int16_pair_sum_overflows(monkeypatch):
    """On AVX2 without VNNI fbgemm adds pairs of uint8 x int8 products in int16, saturating: the weights
    go in as hi and lo rows (w = 2 hi + lo) small enough that 255 * |hi| * 2 fits, and the split is exact."""
    w = torch.arange(-127, 128, dtype=torch.int8).repeat(3, 1)
    rows, scales = int8.split_rows(w, torch.tensor([0.5, 1.0, 2.0]))
    hi, lo = rows[:3].int(), rows[3:].int()
    assert torch.equal(2 * hi + lo, w.int()) and torch.equal(scales, torch.tensor([1.0, 2.0, 4.0, 0.5, 1.0, 2.0]))
    assert 255 * hi.abs().max() * 2 <= 32767 and set(lo.unique().tolist()) <= {-1, 0, 1}
    # the worst case for saturation: weights at full scale, inputs at the top of their range
    _use("fbgemm", monkeypatch)
    lin = nn.Linear(64, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.where(torch.arange(64) % 3 == 0, -1.0, 1.0).repeat(4, 1))
    x = torch.ones(2, 64)
    assert torch.allclose(Int8Linear.from_float(lin)(x), lin(x), rtol=0.01, atol=0.05)
