"""wav2vec 2.0 and HuBERT encoders with CTC, sequence- and frame-classification heads.

Raw 16 kHz waveform -> CNN feature encoder (strided convs: one frame per 20 ms in the published
checkpoints, ``Wav2Vec2Config.frame_stride`` samples in general)
-> feature projection -> grouped positional convolution -> transformer encoder
(post-norm "base" layers or pre-norm "stable layer norm" large/lv60 layers) -> head.

Weights load from Hugging Face folders (``config.json``, ``model.safetensors`` or
``pytorch_model.bin`` read with ``weights_only=True``, ``vocab.json``,
``preprocessor_config.json``); parameter names follow the HF checkpoints after their
``wav2vec2.``/``hubert.`` prefix, and the weight-normed positional convolution is folded
into a plain weight when loading. Decoding (greedy / beam search) lives in
``engine.transcribe.ctc``; chunked streaming in ``engine.transcribe.streaming``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio import SPEECH_RATE as SAMPLE_RATE
from ..errors import CheckpointError, ModelError



@dataclass
class Wav2Vec2Config:
    model_type: str = "wav2vec2"  # "wav2vec2" | "hubert"
    head: str = "ctc"  # "ctc" | "sequence" | "frame" | "none"
    vocab_size: int = 32
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"  # "group": GroupNorm on the first conv only; "layer": LayerNorm on every conv
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    conv_pos_batch_norm: bool = False  # some HuBERT variants: BatchNorm before the positional conv
    feat_proj_layer_norm: bool = True  # HuBERT may skip the projection's LayerNorm
    do_stable_layer_norm: bool = False  # pre-norm layers + final LayerNorm (large / lv60)
    pad_token_id: int = 0  # the CTC blank
    classifier_proj_size: int = 256
    use_weighted_layer_sum: bool = False
    num_labels: int = 2
    id2label: dict[int, str] = field(default_factory=dict)
    # from preprocessor_config.json / tokenizer files
    do_normalize: bool = True
    sampling_rate: int = SAMPLE_RATE
    vocab: list[str] = field(default_factory=list)  # id -> token
    word_delimiter_token: str = "|"
    pad_token: str = "<pad>"
    do_lower_case: bool = False
    clean_up_tokenization_spaces: bool = False

    @property
    def frame_stride(self) -> int:
        """Input samples per output frame (320 = 20 ms at 16 kHz)."""
        return int(np.prod(self.conv_stride))

    @property
    def receptive_field(self) -> int:
        """Input samples seen by one output frame of the CNN (400 for the standard stack)."""
        r = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            r = (r - 1) * s + k
        return r

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
        return max(0, n)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Wav2Vec2Config":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names and k not in ("id2label", "vocab", "head")}
        for k in ("conv_dim", "conv_stride", "conv_kernel"):
            if k in kw:
                kw[k] = tuple(int(x) for x in kw[k])
        cfg = cls(**kw)
        if d.get("id2label"):
            cfg.id2label = {int(k): v for k, v in d["id2label"].items()}
            cfg.num_labels = len(cfg.id2label)
        if d.get("num_labels"):
            cfg.num_labels = int(d["num_labels"])
        arch = " ".join(d.get("architectures") or [])
        cfg.head = ("ctc" if "CTC" in arch else "sequence" if "SequenceClassification" in arch
                    else "frame" if "FrameClassification" in arch else d.get("head", "ctc" if "vocab_size" in d else "none"))
        if d.get("add_adapter") or d.get("adapter_attn_dim"):
            raise ModelError("wav2vec2 checkpoints with adapters (MMS-style) are not supported")
        if cfg.hidden_act not in _ACT or cfg.feat_extract_activation not in _ACT:
            raise ModelError(f"unsupported activation {cfg.hidden_act!r}/{cfg.feat_extract_activation!r}")
        return cfg


_ACT = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "swish": F.silu, "silu": F.silu}


def normalize_waveform(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Zero mean, unit variance per utterance (Wav2Vec2FeatureExtractor ``do_normalize``)."""
    if isinstance(x, Tensor):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-7)
    x = np.asarray(x, np.float32)
    return ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-7)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# modules


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, bias: bool, norm: str | None, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, stride=s, bias=bias)
        # GroupNorm with one group per channel normalises each channel over time (whole input)
        self.layer_norm = (nn.GroupNorm(cout, cout) if norm == "group" else
                           nn.LayerNorm(cout) if norm == "layer" else None)
        self.norm, self.act = norm, _ACT[act]

    def forward(self, x: Tensor, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:  # (B, Cin, N) -> (B, Cout, N')
        x = self.conv(x)
        if self.norm == "group" and stats is not None:  # per-channel statistics given from outside (streaming)
            gn = self.layer_norm
            mean, var = stats
            x = (x - mean[:, None]) * torch.rsqrt(var[:, None] + gn.eps) * gn.weight[:, None] + gn.bias[:, None]
        elif self.norm == "group":
            x = self.layer_norm(x)
        elif self.norm == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.act(x)


class FeatureEncoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        dims = (1,) + tuple(cfg.conv_dim)
        layers = []
        for i, (k, s) in enumerate(zip(cfg.conv_kernel, cfg.conv_stride)):
            norm = "layer" if cfg.feat_extract_norm == "layer" else ("group" if i == 0 else None)
            layers.append(ConvLayer(dims[i], dims[i + 1], k, s, cfg.conv_bias, norm, cfg.feat_extract_activation))
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wave: Tensor, first_stats: tuple[Tensor, Tensor] | None = None) -> Tensor:  # (B, N) -> (B, T, C)
        """``first_stats``: (mean, var) per channel for the group norm of the first conv, replacing the
        statistics of this input (a stream computes them over all audio so far)."""
        x = wave[:, None]
        for i, layer in enumerate(self.conv_layers):
            x = layer(x, first_stats if i == 0 else None)
        return x.transpose(1, 2)


class FeatureProjection(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps) if cfg.feat_proj_layer_norm else None
        self.projection = nn.Linear(cfg.conv_dim[-1], cfg.hidden_size)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, D)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.projection(x)


class PositionalConvEmbedding(nn.Module):
    """Grouped convolution over time (kernel 128, 16 groups); its weight norm is folded at load time."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        self.conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, k, padding=k // 2,
                              groups=cfg.num_conv_pos_embedding_groups)
        self.batch_norm = nn.BatchNorm1d(cfg.hidden_size) if cfg.conv_pos_batch_norm else None
        self.remove = 1 if k % 2 == 0 else 0  # "same" padding for an even kernel
        self.act = _ACT[cfg.feat_extract_activation]

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        x = x.transpose(1, 2)
        if self.batch_norm is not None:
            x = self.batch_norm(x)
        x = self.conv(x)
        if self.remove:
            x = x[:, :, :-self.remove]
        return self.act(x).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D)
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.n_head, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D/H)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = _ACT[cfg.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.output_dense(self.act(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.attention = Attention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.pre_norm = cfg.do_stable_layer_norm

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.pre_norm:  # stable layer norm (large/lv60)
            x = x + self.attention(self.layer_norm(x), mask)
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.attention(x, mask))  # post-norm (base)
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.stable = cfg.do_stable_layer_norm

    def forward(self, x: Tensor, mask: Tensor | None = None, all_layers: bool = False) -> Tensor | list[Tensor]:
        """(B, T, D) -> (B, T, D); with ``all_layers`` the input embedding and every layer's output."""
        x = x + self.pos_conv_embed(x)
        if not self.stable:
            x = self.layer_norm(x)
        states = [x]
        for layer in self.layers:
            x = layer(x, mask)
            states.append(x)
        if self.stable:  # the per-layer states stay un-normed (as transformers >= 5 reports them)
            x = self.layer_norm(x)
        return states if all_layers else x


class Wav2Vec2(nn.Module):
    """The shared backbone: waveform (B, N) -> hidden states (B, T, D), T = num_frames(N)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_projection = FeatureProjection(cfg)
        self.encoder = Encoder(cfg)

    def features(self, wave: Tensor, first_stats=None) -> Tensor:  # (B, N) -> (B, T, D) projected CNN features
        return self.feature_projection(self.feature_extractor(wave, first_stats))

    def forward(self, wave: Tensor, mask: Tensor | None = None, all_layers: bool = False,
                first_stats=None) -> Tensor | list[Tensor]:
        return self.encoder(self.features(wave, first_stats), mask, all_layers)


class Wav2Vec2Model(nn.Module):
    """Backbone plus the head named by ``config.head``; ``forward(wave)`` gives logits.

    ctc: (B, T, vocab) · sequence: (B, num_labels) mean-pooled · frame: (B, T, num_labels).
    """

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = cfg
        self.wav2vec2 = Wav2Vec2(cfg)
        d = cfg.hidden_size
        if cfg.use_weighted_layer_sum and cfg.head in ("sequence", "frame"):
            n = cfg.num_hidden_layers + 1
            self.layer_weights = nn.Parameter(torch.ones(n) / n)
        else:
            self.layer_weights = None
        if cfg.head == "ctc":
            self.lm_head = nn.Linear(d, cfg.vocab_size)
        elif cfg.head == "sequence":
            self.projector = nn.Linear(d, cfg.classifier_proj_size)
            self.classifier = nn.Linear(cfg.classifier_proj_size, cfg.num_labels)
        elif cfg.head == "frame":
            self.classifier = nn.Linear(d, cfg.num_labels)

    def hidden(self, wave: Tensor, first_stats=None) -> Tensor:
        if self.layer_weights is None:
            return self.wav2vec2(wave, first_stats=first_stats)
        states = torch.stack(self.wav2vec2(wave, all_layers=True, first_stats=first_stats), 0)  # (L+1, B, T, D)
        w = F.softmax(self.layer_weights, -1)
        return (states * w.view(-1, 1, 1, 1)).sum(0)

    def head(self, h: Tensor) -> Tensor:
        """Apply the head to hidden states (B, T, D) (used by the streaming code on chunks)."""
        cfg = self.config
        if cfg.head == "ctc":
            return self.lm_head(h)
        if cfg.head == "frame":
            return self.classifier(h)
        if cfg.head == "sequence":
            return self.classifier(self.projector(h).mean(1))
        return h

    def forward(self, wave: Tensor, first_stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
        return self.head(self.hidden(wave, first_stats))

    def prepare(self, audio: np.ndarray, stats: tuple[float, float] | None = None) -> Tensor:
        """float waveform (N,) at 16 kHz -> normalised (1, N) tensor per the feature-extractor config.

        ``stats`` = (mean, variance) to normalise with instead of this audio's own (streaming)."""
        if not self.config.do_normalize:
            x = np.asarray(audio, np.float32)
        elif stats is not None:
            x = ((np.asarray(audio, np.float32) - stats[0]) / np.sqrt(stats[1] + 1e-7)).astype(np.float32)
        else:
            x = normalize_waveform(audio)
        p = next(self.parameters())
        return torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(p.device)[None]

    @torch.inference_mode()
    def logits(self, audio: np.ndarray) -> np.ndarray:
        """Logits for one utterance (mono float32 at 16 kHz): (T, vocab) or (labels,)."""
        return self(self.prepare(audio))[0].float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# loading


def _fold_weight_norm(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """weight = g * v / ||v|| with the norm over all dims except 2 (``weight_norm(dim=2)``)."""
    out = dict(sd)
    for g_key, v_key in (("parametrizations.weight.original0", "parametrizations.weight.original1"),
                         ("weight_g", "weight_v")):
        for k in [k for k in sd if k.endswith(g_key)]:
            base = k[: -len(g_key)]
            g, v = sd[k].float(), sd[base + v_key].float()
            norm = v.norm(dim=(0, 1), keepdim=True)
            out[base + "weight"] = g * v / norm
            del out[k], out[base + v_key]
    return out


_IGNORED = ("masked_spec_embed", "quantizer.", "project_hid.", "project_q.", "batch_norm.num_batches_tracked",
            "label_embeddings_concat")


def _map_keys(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for k, v in sd.items():
        for prefix in ("wav2vec2.", "hubert."):
            if k.startswith(prefix):
                k = "wav2vec2." + k[len(prefix):]
                break
        else:
            if not k.startswith(("lm_head.", "projector.", "classifier.", "layer_weights")):
                k = "wav2vec2." + k  # a bare base model
        if any(s in k for s in _IGNORED):
            continue
        out[k] = v
    return out


def read_state_dict(folder: Path) -> dict[str, Tensor]:
    st = sorted(folder.glob("*.safetensors"))
    st = [p for p in st if not p.name.startswith("adapter.")]
    if st:
        from safetensors.torch import load_file

        sd: dict[str, Tensor] = {}
        for p in st:
            sd.update(load_file(str(p)))
        return sd
    for name in ("pytorch_model.bin", "model.bin", "model.pt"):
        p = folder / name
        if p.exists():
            try:
                sd = torch.load(str(p), map_location="cpu", weights_only=True)
            except Exception as e:  # pickles with arbitrary objects are refused
                raise CheckpointError(f"{p} could not be read safely as a weights file: {e}") from e
            return sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    raise CheckpointError(f"no weights (model.safetensors or pytorch_model.bin) in {folder}")


def read_config(folder: str | os.PathLike) -> Wav2Vec2Config:
    folder = Path(folder)
    try:
        d = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise ModelError(f"{folder} has no config.json: not a Hugging Face wav2vec2/HuBERT folder") from None
    if d.get("model_type", "wav2vec2") not in ("wav2vec2", "hubert"):
        raise ModelError(f"{folder}: model_type {d.get('model_type')!r} is not wav2vec2 or hubert")
    cfg = Wav2Vec2Config.from_dict(d)
    pp = folder / "preprocessor_config.json"
    if pp.exists():
        p = json.loads(pp.read_text())
        cfg.do_normalize = bool(p.get("do_normalize", True))
        cfg.sampling_rate = int(p.get("sampling_rate", SAMPLE_RATE))
    vj = folder / "vocab.json"
    if vj.exists():
        v = json.loads(vj.read_text())
        if v and all(isinstance(x, dict) for x in v.values()):  # multilingual {lang: {tok: id}}
            v = next(iter(v.values()))
        vocab = [""] * (max(v.values()) + 1)
        for tok, i in v.items():
            vocab[i] = tok
        cfg.vocab = vocab
    tc = folder / "tokenizer_config.json"
    if tc.exists():
        t = json.loads(tc.read_text())
        cfg.word_delimiter_token = t.get("word_delimiter_token") or cfg.word_delimiter_token
        pad = t.get("pad_token")
        cfg.pad_token = (pad.get("content") if isinstance(pad, dict) else pad) or cfg.pad_token
        cfg.do_lower_case = bool(t.get("do_lower_case", False))
        cfg.clean_up_tokenization_spaces = bool(t.get("clean_up_tokenization_spaces", False))
    if cfg.vocab and cfg.pad_token in cfg.vocab:
        cfg.pad_token_id = cfg.vocab.index(cfg.pad_token)
    return cfg


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> Wav2Vec2Model:
    """Build the model described by a HF folder and load its weights (strict: every tensor must fit)."""
    folder = Path(folder)
    cfg = read_config(folder)
    sd = _map_keys(_fold_weight_norm(read_state_dict(folder)))
    if cfg.head == "ctc" and "lm_head.weight" in sd:
        cfg.vocab_size = sd["lm_head.weight"].shape[0]
    model = Wav2Vec2Model(cfg)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: checkpoint does not match the {cfg.model_type} architecture "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{folder}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    if cfg.head == "ctc" and cfg.vocab and len(cfg.vocab) < cfg.vocab_size:
        cfg.vocab = cfg.vocab + [""] * (cfg.vocab_size - len(cfg.vocab))
    return model.to(device=device, dtype=dtype).eval()


def quantize_int8(model: Wav2Vec2Model) -> Wav2Vec2Model:
    """Dynamic int8 quantisation of the Linear layers (CPU inference; ~1.2-1.6x faster here)."""
    from torch.ao.quantization import quantize_dynamic

    q = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    q.config = model.config
    return q
