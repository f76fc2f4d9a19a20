"""Audio Spectrogram Transformer (AST, Gong, Chung, Glass 2021): a ViT/DeiT encoder on Kaldi fbank patches,
with a classification head (AudioSet: 527 labels, sigmoid; Speech Commands ...: softmax).

Input: ``features`` (``engine.audio.dsp.ast_features``: 16 kHz, 128-bin Kaldi fbank, 10 ms hop, zero-padded or
cut to ``max_length`` frames, ``(x - mean) / (2 std)``) ``(B, max_length, num_mel_bins)``
-> frequency-major image ``(B, 1, M, N)`` -> Conv2d patch embedding (kernel ``patch_size``, stride
(``frequency_stride``, ``time_stride``); overlapping 16x16 patches with stride 10 in the published models)
-> flattened patches, prepended CLS and distillation tokens, + learnt position embeddings
-> pre-LayerNorm transformer layers (multi-head self-attention with q/k/v biases, GELU MLP)
-> final LayerNorm -> mean of the CLS and distillation outputs -> head (LayerNorm + Linear) -> logits.

Weights load from Hugging Face folders (``config.json``, ``model.safetensors`` or ``pytorch_model.bin`` read
with ``weights_only=True``, ``preprocessor_config.json``), with either the checkpoint names on the Hub
(``audio_spectrogram_transformer.encoder.layer.N.attention.attention.query`` ...) or the names transformers
>= 5 uses in memory (``layers.N.attention.q_proj`` ...); the modules here carry the latter.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio import SPEECH_RATE
from ..audio.dsp import AST_MEAN, AST_STD, ast_features
from ..errors import CheckpointError

_ACT = {"gelu": F.gelu, "gelu_python": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu,
        "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
        "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x)}


@dataclass
class ASTConfig:
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    patch_size: int = 16
    frequency_stride: int = 10
    time_stride: int = 10
    qkv_bias: bool = True
    num_labels: int = 527
    labels: list[str] = field(default_factory=list)  # index -> name, from id2label
    # input / feature extractor (preprocessor_config.json; AST defaults without one)
    max_length: int = 1024  # fbank frames (10 ms each)
    num_mel_bins: int = 128
    mean: float = AST_MEAN
    std: float = AST_STD
    do_normalize: bool = True
    sampling_rate: int = SPEECH_RATE

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency, time) patches in the input image."""
        return ((self.num_mel_bins - self.patch_size) // self.frequency_stride + 1,
                (self.max_length - self.patch_size) // self.time_stride + 1)

    @property
    def num_tokens(self) -> int:
        f, t = self.grid
        return f * t + 2  # + CLS + distillation

    @property
    def seconds(self) -> float:
        """Audio seen by one forward pass (10.24 s for the AudioSet models)."""
        return self.max_length * 0.01

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ASTConfig":
        kw: dict[str, Any] = {}
        for name, kind in (("hidden_size", int), ("num_hidden_layers", int), ("num_attention_heads", int),
                           ("intermediate_size", int), ("hidden_act", str), ("layer_norm_eps", float),
                           ("frequency_stride", int), ("time_stride", int), ("qkv_bias", bool),
                           ("max_length", int), ("num_mel_bins", int)):
            if d.get(name) is not None:
                kw[name] = kind(d[name])
        patch = d.get("patch_size", 16)
        if isinstance(patch, (list, tuple)):
            if len(set(patch)) != 1:
                raise CheckpointError(f"non-square AST patches {patch} are not supported")
            patch = patch[0]
        kw["patch_size"] = int(patch)
        cfg = cls(**kw)
        if cfg.hidden_act not in _ACT:
            raise CheckpointError(f"unsupported AST activation {cfg.hidden_act!r} (known: {', '.join(_ACT)})")
        if cfg.hidden_size % cfg.num_attention_heads:
            raise CheckpointError(f"hidden_size {cfg.hidden_size} is not a multiple of "
                                  f"num_attention_heads {cfg.num_attention_heads}")
        if d.get("id2label"):
            try:
                id2label = {int(k): str(v) for k, v in d["id2label"].items()}
            except (AttributeError, ValueError) as e:
                raise CheckpointError(f"config.json: unreadable id2label ({e})") from None
            if sorted(id2label) != list(range(len(id2label))):
                raise CheckpointError(f"config.json: id2label indices are not 0..{len(id2label) - 1}")
            cfg.labels = [id2label[i] for i in range(len(id2label))]
            cfg.num_labels = len(cfg.labels)
        elif d.get("num_labels"):
            cfg.num_labels = int(d["num_labels"])
            cfg.labels = [f"LABEL_{i}" for i in range(cfg.num_labels)]
        return cfg


# ---------------------------------------------------------------------------------------------
# modules


class PatchEmbeddings(nn.Module):
    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(1, cfg.hidden_size, cfg.patch_size,
                                    stride=(cfg.frequency_stride, cfg.time_stride))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, M) fbank -> (B, P, D), P = F' * T' (frequency-major)
        x = x.transpose(1, 2)[:, None]  # (B, 1, M, N)
        return self.projection(x).flatten(2).transpose(1, 2)  # (B, D, F', T') -> (B, P, D)


class Embeddings(nn.Module):
    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_embeddings = PatchEmbeddings(cfg)
        self.position_embeddings = nn.Parameter(torch.zeros(1, cfg.num_tokens, d))

    def forward(self, x: Tensor) -> Tensor:  # (B, N, M) -> (B, P + 2, D)
        p = self.patch_embeddings(x)
        B = p.shape[0]
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), self.distillation_token.expand(B, -1, -1), p], 1)
        return tokens + self.position_embeddings  # dropout: identity at inference


class Attention(nn.Module):
    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.n_head = cfg.num_attention_heads
        self.q_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(d, d)

    def forward(self, x: Tensor, queries: int | None = None) -> Tensor:  # (B, T, D) -> (B, Tq, D)
        """``queries``: attend from the first ``queries`` tokens only (all by default); keys are all T tokens."""
        B, T, D = x.shape
        xq = x if queries is None else x[:, :queries]
        Tq = xq.shape[1]
        q = self.q_proj(xq).view(B, Tq, self.n_head, -1).transpose(1, 2)  # (B, H, Tq, D/H)
        k = self.k_proj(x).view(B, T, self.n_head, -1).transpose(1, 2)  # (B, H, T, D/H)
        v = self.v_proj(x).view(B, T, self.n_head, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, Tq, D/H)
        return self.o_proj(y.transpose(1, 2).reshape(B, Tq, D))


class MLP(nn.Module):
    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = _ACT[cfg.hidden_act]

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        return self.fc2(self.act(self.fc1(x)))


class Layer(nn.Module):
    """Pre-norm ViT layer: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attention = Attention(cfg)
        self.layernorm_after = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor, queries: int | None = None) -> Tensor:  # (B, T, D) -> (B, Tq, D)
        """``queries``: compute the outputs of the first ``queries`` tokens only (the others still serve as keys)."""
        h = self.layernorm_before(x)
        if queries is not None:
            x = x[:, :queries]
        x = x + self.attention(h, queries)
        return x + self.mlp(self.layernorm_after(x))


class Head(nn.Module):
    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dense = nn.Linear(cfg.hidden_size, cfg.num_labels)

    def forward(self, x: Tensor) -> Tensor:  # (B, D) -> (B, num_labels)
        return self.dense(self.layernorm(x))


class AST(nn.Module):
    """``forward(fbank (B, max_length, num_mel_bins)) -> logits (B, num_labels)``; ``config.labels`` names them."""

    def __init__(self, cfg: ASTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.classifier = Head(cfg)

    def pooled(self, x: Tensor) -> Tensor:  # (B, N, M) -> (B, D) mean of the CLS and distillation outputs
        cfg = self.config
        if x.shape[1:] != (cfg.max_length, cfg.num_mel_bins):
            raise ValueError(f"AST input must be (B, {cfg.max_length}, {cfg.num_mel_bins}), got {tuple(x.shape)}")
        h = self.embeddings(x)  # (B, T, D)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # only the CLS and distillation outputs are read: the last layer computes those two rows alone
            h = layer(h, queries=2 if i == last else None)
        h = self.layernorm(h[:, :2])  # (B, 2, D); per token, so the same as normalising all of them
        return (h[:, 0] + h[:, 1]) / 2

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pooled(x))

    def prepare(self, audio_16k: np.ndarray) -> Tensor:
        """Mono float audio at 16 kHz -> (1, max_length, num_mel_bins) input on the model's device."""
        p = next(self.parameters())
        return torch.from_numpy(features(audio_16k, self.config)).to(p.device)[None]

    @torch.inference_mode()
    def logits(self, audio_16k: np.ndarray) -> np.ndarray:
        """(num_labels,) logits for the first ``max_length`` frames of one clip (mono, 16 kHz)."""
        return self(self.prepare(audio_16k))[0].float().cpu().numpy()


def features(audio_16k: np.ndarray, cfg: ASTConfig) -> np.ndarray:
    """(T,) mono at 16 kHz -> (max_length, num_mel_bins) float32, as the checkpoint's ``ASTFeatureExtractor``."""
    if cfg.do_normalize:
        return ast_features(audio_16k, max_length=cfg.max_length, mean=cfg.mean, std=cfg.std,
                            num_mel_bins=cfg.num_mel_bins)
    return ast_features(audio_16k, max_length=cfg.max_length, mean=0.0, std=0.5, num_mel_bins=cfg.num_mel_bins)


# ---------------------------------------------------------------------------------------------
# loading

# Hub checkpoint names -> module names (applied in order, on the name after its model prefix)
_RENAMES = ((r"^encoder\.layer\.(\d+)\.", r"layers.\1."),
            (r"\.attention\.attention\.query\.", ".attention.q_proj."),
            (r"\.attention\.attention\.key\.", ".attention.k_proj."),
            (r"\.attention\.attention\.value\.", ".attention.v_proj."),
            (r"\.attention\.output\.dense\.", ".attention.o_proj."),
            (r"\.intermediate\.dense\.", ".mlp.fc1."),
            (r"^(layers\.\d+)\.output\.dense\.", r"\1.mlp.fc2."))
_RENAMES_RE = tuple((re.compile(a), b) for a, b in _RENAMES)


def map_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Checkpoint names (Hub or transformers-5 style, with or without the model prefix) -> ours."""
    out = {}
    for k, v in sd.items():
        if k.startswith("audio_spectrogram_transformer."):
            k = k[len("audio_spectrogram_transformer."):]
        for pat, rep in _RENAMES_RE:
            k = pat.sub(rep, k)
        out[k] = v
    return out


def read_state_dict(folder: Path) -> dict[str, Tensor]:
    st = sorted(folder.glob("*.safetensors"))
    if st:
        from safetensors.torch import load_file

        sd: dict[str, Tensor] = {}
        for p in st:
            try:
                sd.update(load_file(str(p)))
            except Exception as e:  # truncated or not a safetensors file
                raise CheckpointError(f"{p.name}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
        return sd
    p = folder / "pytorch_model.bin"
    if p.exists():
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # pickles with arbitrary objects are refused
            raise CheckpointError(f"{p} could not be read safely as a weights file: {e}") from None
        sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
        if not isinstance(sd, dict):
            raise CheckpointError(f"{p}: not a state dict")
        return sd
    raise CheckpointError(f"no weights (model.safetensors or pytorch_model.bin) in {folder}")


def read_config(folder: str | os.PathLike) -> ASTConfig:
    folder = Path(folder)
    try:
        d = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} has no config.json: not a Hugging Face AST folder") from None
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: unreadable config ({e})") from None
    if d.get("model_type") != "audio-spectrogram-transformer":
        raise CheckpointError(f"{folder}: model_type {d.get('model_type')!r} is not audio-spectrogram-transformer")
    cfg = ASTConfig.from_dict(d)
    pp = folder / "preprocessor_config.json"
    if pp.exists():
        try:
            p = json.loads(pp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{pp}: unreadable feature-extractor config ({e})") from None
        for name in ("max_length", "num_mel_bins"):
            if p.get(name) is not None and int(p[name]) != getattr(cfg, name):
                raise CheckpointError(f"{folder}: preprocessor_config.json has {name}={p[name]} but the model "
                                      f"was built for {getattr(cfg, name)}")
        cfg.mean = float(p.get("mean", AST_MEAN))
        cfg.std = float(p.get("std", AST_STD))
        cfg.do_normalize = bool(p.get("do_normalize", True))
        cfg.sampling_rate = int(p.get("sampling_rate", SPEECH_RATE))
    if cfg.sampling_rate != SPEECH_RATE:
        raise CheckpointError(f"{folder}: AST features at {cfg.sampling_rate} Hz are not supported "
                              f"(only {SPEECH_RATE} Hz)")
    return cfg


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> AST:
    """Build the AST described by a HF folder and load its weights (strict: every tensor must fit)."""
    folder = Path(folder)
    cfg = read_config(folder)
    sd = map_keys(read_state_dict(folder))
    w = sd.get("classifier.dense.weight")
    if w is not None and cfg.labels and w.shape[0] != len(cfg.labels):
        raise CheckpointError(f"{folder}: config.json names {len(cfg.labels)} labels (id2label) but the "
                              f"classifier gives {w.shape[0]} scores")
    if w is not None and not cfg.labels:
        cfg.num_labels = int(w.shape[0])
        cfg.labels = [f"LABEL_{i}" for i in range(cfg.num_labels)]
    model = AST(cfg)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: checkpoint does not match the AST architecture in config.json "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{folder}: {k} has shape {tuple(v.shape)}, config.json implies "
                                  f"{tuple(own[k].shape)}")
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    return model.to(device).eval()


def quantize_int8(model: AST) -> AST:
    """Dynamic int8 quantisation of the Linear layers (CPU inference)."""
    from torch.ao.quantization import quantize_dynamic

    q = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    q.config = model.config
    return q
