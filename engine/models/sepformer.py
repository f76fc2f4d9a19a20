"""SepFormer (Subakan et al. 2021): a dual-path transformer that separates a mix of speakers, in the
layout of SpeechBrain's ``Dual_Path_Model`` with ``SBTransformerBlock`` intra/inter models.

One signal at the model's rate (8 or 16 kHz), ``N`` encoder filters, ``C`` dual-path channels::

    mix (B, T) -> Conv1d 1->N (kernel k, stride k/2, no bias) -> ReLU        w: (B, L, N), channels last
    MaskNet(w):
      GroupNorm(1) ("ln"; or global "gln" / channel "cln" layer norm) -> 1x1 conv N->C
      chunks of K frames with 50% overlap (zero padded like SpeechBrain)    (B, S, K, C)
      num_blocks x  intra transformer along K inside each chunk  (+ optional Linear) -> norm -> + skip
                    inter transformer along S across the chunks  (+ optional Linear) -> norm -> + residual
      PReLU -> 1x1 conv C->spks*C -> overlap-add the chunks back            (B, L, spks, C)
      tanh(1x1 conv) * sigmoid(1x1 conv) -> 1x1 conv C->N -> ReLU          masks: (B, spks, L, N)
    each speaker: ConvTranspose1d N->1 (kernel k, stride s) of w * mask     (B, spks, T) (padded/cut to T)

A transformer (``SBTransformerBlock``): optional sinusoidal positional encoding added to the input, then
layers of multi-head self-attention and a ReLU/GELU feed-forward, pre-norm (``norm_before``) or post-norm
(LayerNorm eps 1e-6), then a final LayerNorm. The numbers match SpeechBrain's; the computation differs: the
tensors stay channels last (every 1x1 convolution is one matrix product on contiguous rows) and attention
runs through ``scaled_dot_product_attention`` (no attention matrix kept), so it is faster and lighter.

Weights load from SpeechBrain's hub folders as published: ``hyperparams.yaml`` (read here without
speechbrain or hyperpyyaml: a safe YAML loader that understands ``!new:``/``!name:``/``!ref``/``!copy``
and resolves references) and the ``encoder.ckpt``, ``masknet.ckpt``, ``decoder.ckpt`` state dicts
(``torch.load(weights_only=True)``). The model knows nothing of long files: chunking and keeping the
speakers' order from chunk to chunk live in :mod:`engine.speakers.separate`.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError

HPARAMS = "hyperparams.yaml"
CKPTS = ("encoder.ckpt", "masknet.ckpt", "decoder.ckpt")
NORMS = ("ln", "gln", "cln")


@dataclass
class TransformerConfig:
    """One ``SBTransformerBlock`` (the intra or the inter model of every dual-path block)."""

    num_layers: int = 8
    d_model: int = 256
    nhead: int = 8
    d_ffn: int = 1024
    norm_before: bool = True
    positional_encoding: bool = True
    activation: str = "relu"  # or "gelu"


@dataclass
class SepFormerConfig:
    sample_rate: int = 8000
    num_spks: int = 2
    n_filters: int = 256  # N: encoder filters
    kernel_size: int = 16  # encoder and decoder kernel; the encoder's stride is kernel_size // 2
    stride: int = 8  # decoder stride
    decoder_padding: int = 0
    decoder_output_padding: int = 0
    decoder_bias: bool = False
    channels: int = 256  # C: width of the dual-path blocks (the transformers' d_model)
    num_blocks: int = 2  # dual-path blocks (``num_layers`` of Dual_Path_Model)
    K: int = 250  # chunk length in encoder frames
    norm: str = "ln"
    skip_around_intra: bool = True
    linear_layer_after_inter_intra: bool = False
    intra: TransformerConfig = field(default_factory=TransformerConfig)
    inter: TransformerConfig = field(default_factory=TransformerConfig)

    @property
    def encoder_stride(self) -> int:
        return self.kernel_size // 2


# ---------------------------------------------------------------------------------------------
# layers (every tensor channels last)


class ChannelNorm(nn.Module):
    """SpeechBrain's ``select_norm`` on channels-last input ``(B, ..., C)``.

    "ln" (GroupNorm with one group) and "gln" (GlobalLayerNorm) normalise each batch item over all its
    values, then scale and shift per channel; "cln" normalises each frame over its channels. eps 1e-8.
    """

    def __init__(self, kind: str, channels: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "cln":
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[1:], eps=self.eps), self.weight)


def sinusoids(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """SpeechBrain's ``PositionalEncoding`` table ``(length, dim)`` (sin on even, cos on odd channels)."""
    positions = torch.arange(0, length, device=device).unsqueeze(1).float()
    denominator = torch.exp(torch.arange(0, dim, 2, device=device).float() * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(positions * denominator)
    pe[:, 1::2] = torch.cos(positions * denominator)
    return pe


def _onednn_linear():
    """oneDNN's fused linear (+ ReLU, or + a residual) on the CPU: fp32 like ``F.linear``, 1.15-1.3x faster
    here than the BLAS behind it (a private op that torch.compile uses; None where this build lacks it)."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return None
        x, w = torch.ones(2, 8), torch.ones(4, 8)
        ok = torch.equal(op(x, w, None, "relu", [], ""), torch.full((2, 4), 8.0)) and \
            torch.equal(op.binary(x, torch.ones(2, 4), w, torch.ones(4), "add"), torch.full((2, 4), 10.0))
        return op if ok else None
    except (AttributeError, RuntimeError):
        return None


_DNN: Any = None  # resolved at the first forward


def linear(x: Tensor, layer: nn.Linear, relu: bool = False) -> Tensor:
    """``layer(x)`` (then ReLU) for rows ``(M, in)``."""
    if _DNN and x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.enabled:
        return _DNN(x, layer.weight, layer.bias, "relu" if relu else "none", [], "")
    y = F.linear(x, layer.weight, layer.bias)
    return y.relu_() if relu else y


def linear_add(x: Tensor, layer: nn.Linear, residual: Tensor) -> Tensor:
    """``residual + layer(x)`` as a new tensor, for rows ``(M, in)`` and ``(M, out)``."""
    if _DNN and x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.enabled:
        return _DNN.binary(x, residual, layer.weight, layer.bias, "add")
    return F.linear(x, layer.weight, layer.bias).add_(residual)


class TransformerLayer(nn.Module):
    """SpeechBrain's ``TransformerEncoderLayer`` (regular multi-head attention, position-wise feed-forward)
    on rows ``(B*T, d)``; the residuals are added by the output projections themselves."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.nhead, self.norm_before = cfg.nhead, cfg.norm_before
        self.gelu = cfg.activation == "gelu"
        self.qkv = nn.Linear(d, 3 * d)  # nn.MultiheadAttention's in_proj
        self.proj = nn.Linear(d, d)
        self.ffn1 = nn.Linear(d, cfg.d_ffn)
        self.ffn2 = nn.Linear(cfg.d_ffn, d)
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)

    def attend(self, x: Tensor, residual: Tensor, T: int) -> Tensor:
        """``residual + attention(x)``; ``x``, ``residual``: (B*T, d) rows of B sequences."""
        M, d = x.shape
        qkv = linear(x, self.qkv).view(M // T, T, 3, self.nhead, -1)  # (B, T, 3, H, d/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, d/H), views
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(M, d)
        return linear_add(y, self.proj, residual)

    def feed(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + ffn(x)``, ``Transformer.ROWS`` rows at a time (the wide hidden layer stays small)."""
        R = Transformer.ROWS
        if x.shape[0] > R:
            out = torch.empty_like(residual)
            for i in range(0, x.shape[0], R):
                out[i:i + R] = self.feed(x[i:i + R], residual[i:i + R])
            return out
        if self.gelu:
            return linear_add(F.gelu(linear(x, self.ffn1)), self.ffn2, residual)
        return linear_add(linear(x, self.ffn1, relu=True), self.ffn2, residual)

    def forward(self, x: Tensor, T: int) -> Tensor:  # (B*T, d) -> (B*T, d)
        if self.norm_before:
            x = self.attend(self.norm1(x), x, T)
            return self.feed(self.norm2(x), x)
        x = self.norm1(self.attend(x, x, T))
        return self.norm2(self.feed(x, x))


class Transformer(nn.Module):
    """``SBTransformerBlock``: (+ positional encoding) -> layers -> final LayerNorm; ``(B, T, d)`` -> new tensor.

    The sequences are independent. On one thread they go through all the layers a group at a time (about
    ``ROWS`` frames), so every intermediate stays small and in cache (up to 1.4x faster here). With more threads
    the whole batch goes through each layer at once: every operation is a barrier for the thread team,
    and on a busy machine (a thread descheduled) ten times as many small operations cost 1.5x the time.
    ``x`` may be any view.
    """

    ROWS = 2048

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.positional_encoding = cfg.positional_encoding
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=1e-6)
        self._pe: Tensor | None = None

    def table(self, T: int, d: int, like: Tensor) -> Tensor:
        pe = self._pe
        if pe is None or pe.shape[0] < T or pe.device != like.device:
            self._pe = pe = sinusoids(max(T, 512), d, like.device)
        return pe[:T].to(like.dtype)

    def forward(self, x: Tensor) -> Tensor:
        global _DNN
        if _DNN is None:
            _DNN = _onednn_linear() or False
        B, T, d = x.shape
        out = torch.empty((B, T, d), dtype=x.dtype, device=x.device)
        pe = self.table(T, d, x) if self.positional_encoding else None
        G = max(1, self.ROWS // T) if torch.get_num_threads() == 1 else B
        for i in range(0, B, G):
            g = min(G, B - i)
            y = torch.empty((g, T, d), dtype=x.dtype, device=x.device)
            if pe is not None:
                torch.add(x[i:i + g], pe, out=y)
            else:
                y.copy_(x[i:i + g])
            y = y.view(g * T, d)
            for layer in self.layers:
                y = layer(y, T)
            out[i:i + g] = self.norm(y).view(g, T, d)
        return out


class DualPathBlock(nn.Module):
    """``Dual_Computation_Block``: ``(B, S, K, C)`` -> the same, returned as a ``(B, K, S, C)`` tensor's view."""

    def __init__(self, cfg: SepFormerConfig) -> None:
        super().__init__()
        C = cfg.channels
        self.skip = cfg.skip_around_intra
        self.intra = Transformer(cfg.intra)
        self.inter = Transformer(cfg.inter)
        self.intra_norm = ChannelNorm(cfg.norm, C)
        self.inter_norm = ChannelNorm(cfg.norm, C)
        linear = cfg.linear_layer_after_inter_intra
        self.intra_linear = nn.Linear(C, C) if linear else None
        self.inter_linear = nn.Linear(C, C) if linear else None

    def forward(self, x: Tensor) -> Tensor:
        B, S, K, C = x.shape
        y = self.intra(x.reshape(B * S, K, C))  # along each chunk (a view when B == 1)
        if self.intra_linear is not None:
            y = self.intra_linear(y)
        y = self.intra_norm(y.view(B, S, K, C))
        if self.skip:
            y = y + x
        z = y.transpose(1, 2)  # (B, K, S, C), a view
        u = self.inter(z.reshape(B * K, S, C))  # across the chunks, one position at a time
        if self.inter_linear is not None:
            u = self.inter_linear(u)
        u = self.inter_norm(u.view(B, K, S, C)) + z
        return u.transpose(1, 2)  # (B, S, K, C), a view


def chunk(x: Tensor, K: int) -> tuple[Tensor, int]:
    """``(B, L, C)`` -> chunks ``(B, S, K, C)`` starting every K//2 frames, and the end padding ``gap``.

    As SpeechBrain's ``_Segmentation``: ``gap`` zeros at the end and K//2 on both sides, then the chunks
    at 0, K, 2K... interleaved with those at K//2, K//2 + K... (any K, odd included).
    """
    B, L, C = x.shape
    P = K // 2
    gap = K - (P + L % K) % K
    x = F.pad(x, (0, 0, P, gap + P))
    a = x[:, :-P].reshape(B, -1, K, C)
    b = x[:, P:].reshape(B, -1, K, C)
    return torch.stack([a, b], 2).reshape(B, -1, K, C), gap


def merge(y: Tensor, gap: int) -> Tensor:
    """Inverse of :func:`chunk` by overlap-add: ``(B, S, K, D)`` -> ``(B, L, D)`` (SpeechBrain's ``_over_add``)."""
    B, S, K, D = y.shape
    P = K // 2
    y = y.reshape(B, S // 2, 2, K, D)
    a = y[:, :, 0].reshape(B, -1, D)[:, P:]
    b = y[:, :, 1].reshape(B, -1, D)[:, :-P]
    out = a + b
    return out[:, :-gap] if gap > 0 else out


class MaskNet(nn.Module):
    """``Dual_Path_Model``: encoder output ``(B, L, N)`` -> masks ``(B, spks, L, N)``."""

    def __init__(self, cfg: SepFormerConfig) -> None:
        super().__init__()
        N, C = cfg.n_filters, cfg.channels
        self.K, self.num_spks = cfg.K, cfg.num_spks
        self.norm = ChannelNorm(cfg.norm, N)
        self.conv1d = nn.Linear(N, C, bias=False)
        self.blocks = nn.ModuleList(DualPathBlock(cfg) for _ in range(cfg.num_blocks))
        self.prelu = nn.PReLU()
        self.conv2d = nn.Linear(C, C * cfg.num_spks)
        self.output = nn.Linear(C, C)
        self.output_gate = nn.Linear(C, C)
        self.end_conv1x1 = nn.Linear(C, N, bias=False)

    def forward(self, w: Tensor) -> Tensor:
        B, L, N = w.shape
        x = self.conv1d(self.norm(w))  # (B, L, C)
        x, gap = chunk(x, self.K)  # (B, S, K, C)
        for block in self.blocks:
            x = block(x)
        x = self.conv2d(self.prelu(x))  # (B, S, K, spks*C)
        x = merge(x, gap).view(B, L, self.num_spks, -1)  # (B, L, spks, C)
        x = torch.tanh(self.output(x)) * torch.sigmoid(self.output_gate(x))
        return F.relu(self.end_conv1x1(x)).permute(0, 2, 1, 3)  # (B, spks, L, N)


class SepFormer(nn.Module):
    """Mix ``(B, T)`` at ``sample_rate`` -> estimated sources ``(B, num_spks, T)``.

    The same numbers as SpeechBrain's ``SepformerSeparation.separate_batch`` (which returns ``(B, T, spks)``).
    """

    def __init__(self, cfg: SepFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Conv1d(1, cfg.n_filters, cfg.kernel_size, stride=cfg.encoder_stride, bias=False)
        self.masknet = MaskNet(cfg)
        self.decoder = nn.ConvTranspose1d(cfg.n_filters, 1, cfg.kernel_size, stride=cfg.stride,
                                          padding=cfg.decoder_padding, output_padding=cfg.decoder_output_padding,
                                          bias=cfg.decoder_bias)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def num_spks(self) -> int:
        return self.cfg.num_spks

    def forward(self, mix: Tensor) -> Tensor:
        B, T = mix.shape
        w = F.relu(self.encoder(mix.unsqueeze(1))).transpose(1, 2).contiguous()  # (B, L, N)
        masks = self.masknet(w)  # (B, spks, L, N)
        h = (masks * w.unsqueeze(1)).flatten(0, 1)  # (B*spks, L, N)
        y = self.decoder(h.transpose(1, 2)).view(B, self.num_spks, -1)  # (B, spks, T')
        return F.pad(y, (0, T - y.shape[-1])) if y.shape[-1] < T else y[..., :T]


# ---------------------------------------------------------------------------------------------
# hyperparams.yaml without hyperpyyaml


@dataclass
class Tagged:
    """A ``!new:`` / ``!name:`` / ``!apply:`` (or any unknown tag) node: what it names and its arguments."""

    kind: str
    target: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)

    @property
    def cls(self) -> str:
        return self.target.rsplit(".", 1)[-1]


@dataclass
class Ref:
    expr: str
    copy: bool = False


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def args_of(loader, node):
        if isinstance(node, yaml.MappingNode):
            return [], loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True), {}
        value = loader.construct_scalar(node)
        return ([value] if value != "" else []), {}

    def tagged(kind):
        return lambda loader, suffix, node: Tagged(kind, suffix, *args_of(loader, node))

    def tuple_(loader, node):
        if isinstance(node, yaml.SequenceNode):
            return tuple(loader.construct_sequence(node, deep=True))
        try:
            return tuple(ast.literal_eval(loader.construct_scalar(node)))
        except (ValueError, SyntaxError, TypeError):
            return loader.construct_scalar(node)

    for kind in ("new", "name", "apply", "include"):
        Loader.add_multi_constructor(f"!{kind}:", tagged(kind))
    Loader.add_constructor("!ref", lambda loader, node: Ref(loader.construct_scalar(node)))
    Loader.add_constructor("!copy", lambda loader, node: Ref(loader.construct_scalar(node), copy=True))
    Loader.add_constructor("!tuple", tuple_)
    Loader.add_constructor("!PLACEHOLDER", lambda loader, node: None)
    Loader.add_multi_constructor("!", lambda loader, suffix, node: Tagged("unknown", suffix, *args_of(loader, node)))
    return Loader


_REF = re.compile(r"<([^<>]+)>")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
        ast.USub: operator.neg, ast.UAdd: operator.pos}


def _arith(expr: str):
    """Evaluate ``expr`` if it is plain arithmetic on numbers (as ``!ref <a> * 2``); else None."""
    def ev(n):
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.operand))
        raise ValueError
    try:
        return ev(ast.parse(expr.strip(), mode="eval").body)
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError, OverflowError):
        return None


def resolve_refs(tree: dict) -> dict:
    """Replace every ``!ref``/``!copy`` by what it names (``<a>``, ``<a.b>``, ``<a[b]>``, ``<a> * 2``, ``<dir>/x``)."""
    def lookup(name: str, seen: frozenset):
        if name in seen:
            raise CheckpointError(f"{HPARAMS}: !ref <{name}> refers to itself")
        obj: Any = tree
        for part in re.findall(r"[^.\[\]]+", name):
            if isinstance(obj, Ref):  # a reference along the path: follow it
                obj = value(obj, seen | {name})
            if isinstance(obj, dict) and part in obj:
                obj = obj[part]
            elif isinstance(obj, Tagged) and part in obj.kwargs:
                obj = obj.kwargs[part]
            elif isinstance(obj, (list, tuple)) and part.isdigit() and int(part) < len(obj):
                obj = obj[int(part)]
            else:
                raise CheckpointError(f"{HPARAMS}: !ref <{name}> names nothing in the file")
        return value(obj, seen | {name})

    def value(v, seen: frozenset = frozenset()):
        if isinstance(v, Ref):
            whole = _REF.fullmatch(v.expr.strip())
            if whole:
                return lookup(whole[1], seen)
            text = _REF.sub(lambda m: str(lookup(m[1], seen)), v.expr)
            number = _arith(text)
            return text if number is None else number
        if isinstance(v, dict):
            return {k: value(x, seen) for k, x in v.items()}
        if isinstance(v, list):
            return [value(x, seen) for x in v]
        if isinstance(v, tuple):
            return tuple(value(x, seen) for x in v)
        if isinstance(v, Tagged):
            return Tagged(v.kind, v.target, value(v.args, seen), value(v.kwargs, seen))
        return v

    return value(tree)


def read_hparams(path: str | os.PathLike) -> dict:
    """A SpeechBrain ``hyperparams.yaml`` as plain data: ``!new:`` objects as :class:`Tagged`, refs resolved."""
    import yaml

    path = Path(path)
    try:
        tree = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from None
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: expected a mapping of hyperparameters")
    return resolve_refs(tree)


# positional parameters of the SpeechBrain classes read here
_PARAMS = {
    "Encoder": ("kernel_size", "out_channels", "in_channels"),
    "Decoder": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups",
                "bias", "dilation"),
    "Dual_Path_Model": ("in_channels", "out_channels", "intra_model", "inter_model", "num_layers", "norm", "K",
                        "num_spks", "skip_around_intra", "linear_layer_after_inter_intra", "use_global_pos_enc",
                        "max_length"),
    "SBTransformerBlock": ("num_layers", "d_model", "nhead", "d_ffn", "input_shape", "kdim", "vdim", "dropout",
                           "activation", "use_positional_encoding", "norm_before", "attention_type"),
}


def _bound(node: Any, role: str, expected: str) -> dict:
    if not isinstance(node, Tagged) or node.kind != "new":
        raise CheckpointError(f"{HPARAMS}: the {role} is not a '!new:' object")
    if node.cls != expected:
        raise CheckpointError(f"{HPARAMS}: the {role} is a {node.target}; Sonoscope's SepFormer reads "
                              f"speechbrain.lobes.models.dual_path.{expected} only")
    kw = dict(zip(_PARAMS[expected], node.args))
    kw.update(node.kwargs)
    return kw


def _flag(v: Any) -> bool:
    return v.strip().lower() in ("true", "yes", "1", "on") if isinstance(v, str) else bool(v)


def _transformer(node: Any, role: str) -> TransformerConfig:
    kw = _bound(node, role, "SBTransformerBlock")
    attention = kw.get("attention_type", "regularMHA")
    if attention != "regularMHA":
        raise CheckpointError(f"{HPARAMS}: the {role} uses attention_type '{attention}'; only regularMHA is "
                              f"supported")
    activation = kw.get("activation", "relu")
    if activation not in ("relu", "gelu"):
        raise CheckpointError(f"{HPARAMS}: the {role} uses activation '{activation}' (relu or gelu expected)")
    d = int(kw["d_model"])
    if any(kw.get(k) not in (None, d) for k in ("kdim", "vdim")):
        raise CheckpointError(f"{HPARAMS}: the {role} has kdim/vdim different from d_model; not supported")
    if d % int(kw["nhead"]):
        raise CheckpointError(f"{HPARAMS}: the {role} has d_model {d} not divisible by nhead {kw['nhead']}")
    return TransformerConfig(int(kw["num_layers"]), d, int(kw["nhead"]), int(kw.get("d_ffn", 2048)),
                             _flag(kw.get("norm_before", False)), _flag(kw.get("use_positional_encoding", False)),
                             activation)


def _module(hp: dict, key: str, name: str) -> Any:
    mods = hp.get("modules") if isinstance(hp.get("modules"), dict) else {}
    for d, k in ((mods, key), (hp, name), (hp, key)):
        if isinstance(d.get(k), Tagged):
            return d[k]
    found = [v for v in itertools.chain(mods.values(), hp.values()) if isinstance(v, Tagged) and v.kind == "new"
             and v.cls == {"encoder": "Encoder", "masknet": "Dual_Path_Model", "decoder": "Decoder"}[key]]
    if not found:
        raise CheckpointError(f"{HPARAMS}: no {key} (expected modules: {{encoder, masknet, decoder}})")
    return found[0]


def config_from_hparams(hp: dict) -> SepFormerConfig:
    """The :class:`SepFormerConfig` a SpeechBrain SepFormer ``hyperparams.yaml`` describes."""
    enc = _bound(_module(hp, "encoder", "Encoder"), "encoder", "Encoder")
    mask = _bound(_module(hp, "masknet", "MaskNet"), "masknet", "Dual_Path_Model")
    dec = _bound(_module(hp, "decoder", "Decoder"), "decoder", "Decoder")
    for k in ("intra_model", "inter_model"):
        if k not in mask:
            raise CheckpointError(f"{HPARAMS}: the masknet has no {k}")
    intra, inter = _transformer(mask["intra_model"], "intra model"), _transformer(mask["inter_model"], "inter model")
    N, C = int(enc.get("out_channels", 64)), int(mask["out_channels"])
    norm = mask.get("norm", "ln")
    cfg = SepFormerConfig(
        sample_rate=int(hp.get("sample_rate", 8000)), num_spks=int(mask.get("num_spks", hp.get("num_spks", 2))),
        n_filters=N, kernel_size=int(enc.get("kernel_size", 2)), stride=int(dec.get("stride", 1)),
        decoder_padding=int(dec.get("padding", 0)), decoder_output_padding=int(dec.get("output_padding", 0)),
        decoder_bias=_flag(dec.get("bias", True)), channels=C, num_blocks=int(mask.get("num_layers", 1)),
        K=int(mask.get("K", 200)), norm=norm, skip_around_intra=_flag(mask.get("skip_around_intra", True)),
        linear_layer_after_inter_intra=_flag(mask.get("linear_layer_after_inter_intra", True)),
        intra=intra, inter=inter)
    problems = []
    if int(enc.get("in_channels", 1)) != 1 or int(dec.get("out_channels", 1)) != 1:
        problems.append("only single-channel encoders and decoders are supported")
    if int(mask.get("in_channels", N)) != N or int(dec.get("in_channels", N)) != N:
        problems.append(f"the masknet and decoder must take the encoder's {N} channels")
    if intra.d_model != C or inter.d_model != C:
        problems.append(f"the transformers' d_model must equal the masknet's out_channels ({C})")
    if norm not in NORMS:
        problems.append(f"norm '{norm}' is not one of {', '.join(NORMS)}")
    if _flag(mask.get("use_global_pos_enc", False)):
        problems.append("use_global_pos_enc is not supported")
    if int(dec.get("groups", 1)) != 1 or int(dec.get("dilation", 1)) != 1:
        problems.append("decoder groups/dilation other than 1 are not supported")
    if cfg.K < 2 or cfg.kernel_size < 2 or cfg.num_spks < 1 or cfg.sample_rate <= 0:
        problems.append("K and kernel_size must be at least 2")
    if problems:
        raise CheckpointError(f"{HPARAMS}: " + "; ".join(problems))
    return cfg


# ---------------------------------------------------------------------------------------------
# checkpoints

_RENAMES = [  # SpeechBrain masknet names -> the names here
    (r"^dual_mdl\.", "blocks."),
    (r"_mdl\.mdl\.layers\.", ".layers."),
    (r"_mdl\.mdl\.norm\.norm\.", ".norm."),
    (r"\.self_att\.att\.in_proj_", ".qkv."),
    (r"\.self_att\.att\.out_proj\.", ".proj."),
    (r"\.pos_ffn\.ffn\.0\.", ".ffn1."),
    (r"\.pos_ffn\.ffn\.3\.", ".ffn2."),
    (r"\.(norm[12])\.norm\.", r".\1."),
    (r"_linear\.w\.", "_linear."),
    (r"^(output|output_gate)\.0\.", r"\1."),
]


def map_keys(encoder: dict, masknet: dict, decoder: dict) -> dict[str, Tensor]:
    """The three SpeechBrain state dicts -> one state dict of :class:`SepFormer` (positional tables dropped)."""
    out = {}
    for prefix, sd in (("encoder.", encoder), ("masknet.", masknet), ("decoder.", decoder)):
        for k, v in sd.items():
            k = k[7:] if k.startswith("module.") else k  # saved from DataParallel
            if k.endswith("pos_enc.pe"):
                continue  # recomputed (same formula), for any length
            if prefix == "encoder.":
                k = re.sub(r"^conv1d\.", "", k)
            elif prefix == "masknet.":
                for pattern, repl in _RENAMES:
                    k = re.sub(pattern, repl, k)
            out[prefix + k] = v
    return out


def read_state_dicts(folder: Path) -> tuple[dict, dict, dict]:
    sds = []
    for name in CKPTS:
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{folder}: {name} is missing (a SpeechBrain SepFormer folder holds "
                                  f"{HPARAMS} and {', '.join(CKPTS)})")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle, zip and torch errors alike
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
        if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
            raise CheckpointError(f"{path}: expected a state dict of tensors")
        sds.append(sd)
    return sds[0], sds[1], sds[2]


def load_folder(folder: str | os.PathLike) -> SepFormer:
    """Build the SepFormer a SpeechBrain hub folder describes and load its weights (strict)."""
    folder = Path(folder)
    if not (folder / HPARAMS).is_file():
        raise CheckpointError(f"{folder}: no {HPARAMS} (not a SpeechBrain SepFormer folder)")
    cfg = config_from_hparams(read_hparams(folder / HPARAMS))
    sd = map_keys(*read_state_dicts(folder))
    model = SepFormer(cfg)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: the checkpoints do not match {HPARAMS}"
                              + (f"; missing {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}"
                                 if missing else "")
                              + (f"; unexpected {', '.join(unexpected[:4])}{'...' if len(unexpected) > 4 else ''}"
                                 if unexpected else ""))
    for k, v in own.items():  # 1x1 convolutions are Linear layers here: same numbers, other shape
        if sd[k].shape != v.shape:
            if sd[k].numel() != v.numel():
                raise CheckpointError(f"{folder}: {k} has shape {tuple(sd[k].shape)} in the checkpoint but "
                                      f"{HPARAMS} implies {tuple(v.shape)}")
            sd[k] = sd[k].reshape(v.shape)
    model.load_state_dict(sd)
    return model.eval()


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> SepFormer:
    return load_folder(folder).to(device)
