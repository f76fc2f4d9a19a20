"""Whisper (Radford et al., 2022) as a compact PyTorch module, plus loaders for public checkpoints.

Encoder: two 1-D convolutions (the second with stride 2) over the log-mel spectrogram,
sinusoidal positions, pre-LayerNorm transformer blocks. Decoder: token embedding plus
learned positions, blocks with causal self-attention and cross-attention to the audio,
output projection tied to the token embedding.

Decoding state lives outside the module: the self-attention key/value cache is a plain
:class:`KVCache` (preallocated tensors) that the caller creates, passes in and reorders;
the cross-attention keys/values are computed once per 30 s window with
:meth:`TextDecoder.cross_kv` and passed back in on every step.

Checkpoints loaded into the same module (:func:`load_model`):
- a Hugging Face folder (``config.json`` + ``model.safetensors``),
- a CTranslate2 folder (``model.bin``, as faster-whisper uses; float32/float16/int8),
- an openai-whisper ``.pt`` file (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from . import int8


@dataclass
class WhisperConfig:
    n_mels: int = 80
    n_audio_ctx: int = 1500
    n_audio_state: int = 384
    n_audio_head: int = 6
    n_audio_layer: int = 4
    n_vocab: int = 51864
    n_text_ctx: int = 448
    n_text_state: int = 384
    n_text_head: int = 6
    n_text_layer: int = 4
    n_audio_mlp: int = 0  # feed-forward width; 0 means 4 * state (every published model)
    n_text_mlp: int = 0
    # alignment heads for word timestamps: (layer, head) pairs in the decoder
    alignment_heads: list[tuple[int, int]] = field(default_factory=list)

    @property
    def multilingual(self) -> bool:
        return self.n_vocab >= 51865

    def to_dict(self) -> dict:
        return asdict(self)


# Published sizes (openai-whisper dims); distilled models keep the encoder and cut the decoder.
PRESETS: dict[str, dict] = {
    "tiny": dict(n_audio_state=384, n_audio_head=6, n_audio_layer=4, n_text_state=384, n_text_head=6, n_text_layer=4),
    "base": dict(n_audio_state=512, n_audio_head=8, n_audio_layer=6, n_text_state=512, n_text_head=8, n_text_layer=6),
    "small": dict(n_audio_state=768, n_audio_head=12, n_audio_layer=12, n_text_state=768, n_text_head=12, n_text_layer=12),
    "medium": dict(n_audio_state=1024, n_audio_head=16, n_audio_layer=24, n_text_state=1024, n_text_head=16, n_text_layer=24),
    "large-v2": dict(n_audio_state=1280, n_audio_head=20, n_audio_layer=32, n_text_state=1280, n_text_head=20, n_text_layer=32),
    "large-v3": dict(n_mels=128, n_vocab=51866, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
                     n_text_state=1280, n_text_head=20, n_text_layer=32),
    "large-v3-turbo": dict(n_mels=128, n_vocab=51866, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
                           n_text_state=1280, n_text_head=20, n_text_layer=4),
    "distil-large-v3": dict(n_mels=128, n_vocab=51866, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
                            n_text_state=1280, n_text_head=20, n_text_layer=2),
}


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Sinusoidal position table (length, channels): sines in the first half, cosines in the second."""
    assert channels % 2 == 0
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


@dataclass
class KVCache:
    """Self-attention keys/values of every decoder layer, preallocated: k, v are (L, B, H, T_max, Dh).

    ``length`` is how many positions are filled. Beam search reorders it with :meth:`reorder`.
    """

    k: Tensor
    v: Tensor
    length: int = 0

    @classmethod
    def empty(cls, cfg: WhisperConfig, batch: int, dtype=torch.float32, device=None, max_len: int | None = None) -> "KVCache":
        h, d = cfg.n_text_head, cfg.n_text_state // cfg.n_text_head
        shape = (cfg.n_text_layer, batch, h, max_len or cfg.n_text_ctx, d)
        return cls(torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device))

    def reorder(self, index: Tensor) -> "KVCache":
        n = self.length
        self.k[:, :, :, :n] = self.k[:, index, :, :n]
        self.v[:, :, :, :n] = self.v[:, index, :, :n]
        return self


class Block(nn.Module):
    """Pre-LN transformer block: self-attention (fused QKV), optional cross-attention, GELU MLP."""

    def __init__(self, n_state: int, n_head: int, n_mlp: int, cross: bool) -> None:
        super().__init__()
        self.n_head = n_head
        self.attn_ln = nn.LayerNorm(n_state)
        self.qkv = nn.Linear(n_state, 3 * n_state)  # key bias is zero in every checkpoint
        self.out = nn.Linear(n_state, n_state)
        self.cross = cross
        if cross:
            self.cross_ln = nn.LayerNorm(n_state)
            self.cross_q = nn.Linear(n_state, n_state)
            self.cross_kv = nn.Linear(n_state, 2 * n_state)
            self.cross_out = nn.Linear(n_state, n_state)
        self.mlp_ln = nn.LayerNorm(n_state)
        self.fc1 = nn.Linear(n_state, n_mlp)
        self.fc2 = nn.Linear(n_mlp, n_state)

    def heads(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, Dh)
        b, t, d = x.shape
        return x.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:  # (B, H, T, Dh) -> (B, T, D)
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def step(self, x: Tensor, cache: KVCache, layer: int, cross_kv: tuple[Tensor, Tensor]) -> Tensor:
        """:meth:`forward` of a decoder block for one new token per sequence, in fewer ops.

        x: (B, 1, D). With one position every head split and merge is a view (no transposes or
        copies), and plain matmuls beat the fused CPU attention kernel by far: the token-by-token
        loop is bound by memory and per-op overhead, not arithmetic.
        """
        b, _, d = x.shape
        h = self.n_head
        scale = (d // h) ** -0.5
        q, k, v = self.qkv(self.attn_ln(x)).view(b, 3, h, 1, d // h).unbind(1)  # (B, H, 1, Dh) each
        t = cache.length
        cache.k[layer, :, :, t:t + 1] = k
        cache.v[layer, :, :, t:t + 1] = v
        w = torch.matmul(q * scale, cache.k[layer, :, :, :t + 1].transpose(-1, -2)).softmax(-1)
        x = x + self.out(torch.matmul(w, cache.v[layer, :, :, :t + 1]).view(b, 1, d))
        ckt, cv = cross_kv  # (B', H, Dh, Ta), (B', H, Ta, Dh); B = G * B' when G beams share a window
        g = b // ckt.shape[0]
        q = self.cross_q(self.cross_ln(x)).view(b // g, g, h, d // h).transpose(1, 2)  # (B', H, G, Dh)
        a = torch.matmul(torch.matmul(q * scale, ckt).softmax(-1), cv)  # (B', H, G, Dh)
        x = x + self.cross_out(a.transpose(1, 2).reshape(b, 1, d) if g > 1 else a.view(b, 1, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                cross_kv: tuple[Tensor, Tensor] | None = None, want_weights: bool = False):
        # x: (B, T, D); cache holds the previous positions of this layer's self-attention
        q, k, v = [self.heads(t) for t in self.qkv(self.attn_ln(x)).chunk(3, dim=-1)]
        if cache is not None:
            t0, t = cache.length, x.shape[1]
            cache.k[layer, :, :, t0:t0 + t] = k
            cache.v[layer, :, :, t0:t0 + t] = v
            k, v = cache.k[layer, :, :, :t0 + t], cache.v[layer, :, :, :t0 + t]
            mask = torch.arange(t0 + t, device=x.device)[None, :] <= (t0 + torch.arange(t, device=x.device))[:, None]
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (one token at a time: step())
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=self.cross)  # decoder is causal
        x = x + self.out(self.merge(a))
        weights = None
        if self.cross:
            assert cross_kv is not None
            q = self.heads(self.cross_q(self.cross_ln(x)))
            ckt, cv = cross_kv  # keys come transposed: (B, H, Dh, Ta)
            if want_weights:
                w = (q @ ckt) / math.sqrt(q.shape[-1])
                weights = w.float()
                a = w.softmax(-1) @ cv
            elif q.shape[0] != ckt.shape[0]:
                # the beams of a window share its keys/values (G beams per window): one matmul per
                # window reads the keys once per step instead of once per beam
                b, h, t, dh = q.shape
                g = b // ckt.shape[0]
                qg = q.reshape(b // g, g, h, t, dh).transpose(1, 2).reshape(b // g, h, g * t, dh)
                a = torch.matmul(torch.matmul(qg * dh ** -0.5, ckt).softmax(-1), cv)
                a = a.reshape(b // g, h, g, t, dh).transpose(1, 2).reshape(b, h, t, dh)
            elif q.shape[2] == 1:
                a = torch.matmul(torch.matmul(q * (q.shape[-1] ** -0.5), ckt).softmax(-1), cv)
            else:
                a = F.scaled_dot_product_attention(q, ckt.transpose(-1, -2), cv)
            x = x + self.cross_out(self.merge(a))
        x = x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))
        return x, weights


class AudioEncoder(nn.Module):
    def __init__(self, cfg: WhisperConfig) -> None:
        super().__init__()
        d = cfg.n_audio_state
        self.conv1 = nn.Conv1d(cfg.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(cfg.n_audio_ctx, d))
        self.blocks = nn.ModuleList(Block(d, cfg.n_audio_head, cfg.n_audio_mlp or 4 * d, cross=False)
                                    for _ in range(cfg.n_audio_layer))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel: Tensor) -> Tensor:
        # mel: (B, n_mels, 2 * T) -> (B, T, D); T = n_audio_ctx (30 s) as trained, or fewer (audio_ctx)
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"expected at most {2 * self.positions.shape[0]} mel frames, got {mel.shape[-1]}")
        x = x + self.positions[:x.shape[1]].to(x.dtype)
        for block in self.blocks:
            x, _ = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    def __init__(self, cfg: WhisperConfig) -> None:
        super().__init__()
        d = cfg.n_text_state
        self.token_embedding = nn.Embedding(cfg.n_vocab, d)
        self.positional_embedding = nn.Parameter(torch.zeros(cfg.n_text_ctx, d))
        self.blocks = nn.ModuleList(Block(d, cfg.n_text_head, cfg.n_text_mlp or 4 * d, cross=True)
                                    for _ in range(cfg.n_text_layer))
        self.ln = nn.LayerNorm(d)
        self.proj: nn.Module | None = None  # optional untied copy (e.g. int8) of the output projection

    def cross_kv(self, xa: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Cross-attention keys/values of every layer for encoder output xa (B, Ta, D): once per window.

        Per layer: keys transposed (B, H, Dh, Ta) and values (B, H, Ta, Dh), both contiguous.
        """
        out = []
        for b in self.blocks:
            k, v = b.cross_kv(xa).chunk(2, dim=-1)
            out.append((b.heads(k).transpose(-1, -2).contiguous(), b.heads(v).contiguous()))
        return out

    def forward(self, tokens: Tensor, cross: list[tuple[Tensor, Tensor]], cache: KVCache | None = None,
                last_only: bool = False, want_weights: bool = False, positions: list[int] | None = None):
        """tokens (B, T) at positions cache.length.. -> logits (B, T, V) [, cross-attention weights].

        ``last_only`` (or ``positions``) computes the output projection only for the last (or the
        listed) positions: (B, 1, V) or (B, len(positions), V). Advances ``cache.length`` by T.
        """
        offset = cache.length if cache is not None else 0
        t = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[offset:offset + t]
        weights = []
        if t == 1 and cache is not None and not want_weights:  # a decoding step
            for i, block in enumerate(self.blocks):
                x = block.step(x, cache, i, cross[i])
        else:
            for i, block in enumerate(self.blocks):
                x, w = block(x, cache, i, cross[i], want_weights)
                weights.append(w)
        if cache is not None:
            cache.length += t
        if last_only:
            x = x[:, -1:]
        elif positions is not None:
            x = x[:, positions]
        x = self.ln(x)
        logits = self.proj(x) if self.proj is not None else x @ self.token_embedding.weight.T
        return (logits, weights) if want_weights else logits


class Whisper(nn.Module):
    def __init__(self, cfg: WhisperConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = AudioEncoder(cfg)
        self.decoder = TextDecoder(cfg)

    @property
    def device(self) -> torch.device:
        return self.decoder.positional_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.positional_embedding.dtype

    def forward(self, mel: Tensor, tokens: Tensor) -> Tensor:
        """Full (teacher-forced) pass: mel (B, n_mels, 3000), tokens (B, T) -> logits (B, T, V)."""
        return self.decoder(tokens, self.decoder.cross_kv(self.encoder(mel)))

    def quantize_int8(self, split: str | None = None, empty: bool = False) -> "Whisper":
        """Int8 Linear layers on the CPU (``split``: :data:`INT8_SPLITS`): the decoder's per-row (``models.int8``,
        which says why), the encoder's torch-dynamic. ``empty``: shells for a prepared file, filled afterwards."""
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        split = split or INT8_DEFAULT
        if split not in INT8_SPLITS:
            raise ValueError(f"unknown int8 split {split!r} (known: {', '.join(INT8_SPLITS)})")
        if split in ("all", "fp32-encoder"):  # the vocabulary projection as an int8 (untied) copy
            proj = nn.Linear(self.cfg.n_text_state, self.cfg.n_vocab, bias=False)
            proj.weight = self.decoder.token_embedding.weight
            self.decoder.proj = int8.quantize(proj, empty)
        if split != "fp32-decoder":
            int8.quantize(self.decoder.blocks, empty)
        if split != "fp32-encoder" and not empty:
            with warnings.catch_warnings():  # torch marks its quantized tensors deprecated; they still work
                warnings.simplefilter("ignore")
                quantize_dynamic(self.encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                                 inplace=True)
        self.int8 = split
        return self


# Parts int8 covers ("fp32-logits": a float32 vocabulary projection). Measured in bench_whisper_int8.py:
# "all", the cheapest, keeps float32's accuracy; engine.models.load uses it on the CPU by default.
INT8_SPLITS = ("all", "fp32-logits", "fp32-encoder", "fp32-decoder")
INT8_DEFAULT = "all"


# ---------------------------------------------------------------------------------------------
# Loading

def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Whisper:
    """Load a Whisper checkpoint: an HF folder, a CTranslate2 folder or an openai-whisper ``.pt`` file."""
    path = Path(path)
    if path.is_dir():
        if (path / NATIVE_CONFIG).exists():
            model = load_native(path)
        elif (path / "model.bin").exists():
            model = load_ctranslate2(path)
        elif (path / "model.safetensors").exists() or (path / "model.safetensors.index.json").exists():
            model = load_hf(path)
        elif list(path.glob("*.pt")):
            model = load_openai(next(iter(sorted(path.glob("*.pt")))))
        else:
            raise CheckpointError(f"No Whisper checkpoint in {path} (expected model.bin, model.safetensors or a .pt file)")
    elif path.suffix == ".pt":
        model = load_openai(path)
    elif path.exists():
        raise CheckpointError(f"Not a Whisper checkpoint: {path}")
    else:
        raise CheckpointError(f"Model not found: {path}")
    return model.to(device=device, dtype=dtype).eval()


NATIVE_CONFIG = "sonoscope_whisper.json"


def prepared_meta(model: Whisper) -> dict[str, str]:
    """What :func:`build_prepared` needs to rebuild the module from a prepared file."""
    split = getattr(model, "int8", False)
    return {"config": json.dumps(model.cfg.to_dict()), "int8": split if isinstance(split, str) else "0"}


def build_prepared(meta: dict[str, str]) -> Whisper:
    """The empty module a prepared file fits (see ``engine.models.prepared``)."""
    d = json.loads(meta["config"])
    d["alignment_heads"] = [tuple(x) for x in d.get("alignment_heads", [])]
    cfg = WhisperConfig(**{k: v for k, v in d.items() if k in WhisperConfig.__dataclass_fields__})
    model = Whisper(cfg)
    if meta.get("int8", "0") != "0":
        model.quantize_int8(meta["int8"], empty=True)
    return model


def save_native(model: Whisper, folder: str | os.PathLike) -> Path:
    """Write the module as is: ``sonoscope_whisper.json`` (the config) + ``model.safetensors``."""
    from safetensors.torch import save_file

    from ..fileio import atomic_path, write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(sd, str(tmp))
    write_text_atomic(folder / NATIVE_CONFIG, json.dumps(model.cfg.to_dict(), indent=1))
    return folder


def load_native(folder: str | os.PathLike) -> Whisper:
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        d = json.loads((folder / NATIVE_CONFIG).read_text())
        cfg = WhisperConfig(**{k: v for k, v in d.items() if k in WhisperConfig.__dataclass_fields__})
        cfg.alignment_heads = [tuple(h) for h in cfg.alignment_heads]
        sd = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{folder}: unreadable Sonoscope Whisper checkpoint ({e})") from e
    return _build(cfg, sd, str(folder))


_OPENAI_SIMPLE = {"out": "attn.out", "attn_ln": "attn_ln", "cross_q": "cross_attn.query", "cross_out": "cross_attn.out",
                  "cross_ln": "cross_attn_ln", "fc1": "mlp.0", "fc2": "mlp.2", "mlp_ln": "mlp_ln"}


def _build(cfg: WhisperConfig, sd: dict[str, Tensor], source: str) -> Whisper:
    from .prepared import skip_init

    with skip_init():  # no random initialisation: every tensor comes from the checkpoint
        model = Whisper(cfg)
    sd = {k: v.float() for k, v in sd.items()}
    sd.setdefault("encoder.positions", model.encoder.positions)
    missing, unexpected = model.load_state_dict(sd, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match the Whisper architecture "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model


def _fuse(*ts: Tensor | None, like: Tensor | None = None) -> Tensor:
    ref = next(t for t in ts if t is not None)
    return torch.cat([t if t is not None else torch.zeros_like(ref) for t in ts], dim=0)


def _block_from(get, prefix_names: dict[str, str], cross: bool) -> dict[str, Tensor]:
    """Map one block's tensors given a getter and a naming table (separate q/k/v -> fused)."""
    out = {}
    n = prefix_names
    out["attn_ln.weight"], out["attn_ln.bias"] = get(n["attn_ln"] + ".weight"), get(n["attn_ln"] + ".bias")
    out["qkv.weight"] = _fuse(get(n["q"] + ".weight"), get(n["k"] + ".weight"), get(n["v"] + ".weight"))
    out["qkv.bias"] = _fuse(get(n["q"] + ".bias"), get(n["k"] + ".bias", True), get(n["v"] + ".bias"))
    out["out.weight"], out["out.bias"] = get(n["o"] + ".weight"), get(n["o"] + ".bias")
    if cross:
        out["cross_ln.weight"], out["cross_ln.bias"] = get(n["cross_ln"] + ".weight"), get(n["cross_ln"] + ".bias")
        out["cross_q.weight"], out["cross_q.bias"] = get(n["cq"] + ".weight"), get(n["cq"] + ".bias")
        out["cross_kv.weight"] = _fuse(get(n["ck"] + ".weight"), get(n["cv"] + ".weight"))
        out["cross_kv.bias"] = _fuse(get(n["ck"] + ".bias", True), get(n["cv"] + ".bias"))
        out["cross_out.weight"], out["cross_out.bias"] = get(n["co"] + ".weight"), get(n["co"] + ".bias")
    out["mlp_ln.weight"], out["mlp_ln.bias"] = get(n["mlp_ln"] + ".weight"), get(n["mlp_ln"] + ".bias")
    out["fc1.weight"], out["fc1.bias"] = get(n["fc1"] + ".weight"), get(n["fc1"] + ".bias")
    out["fc2.weight"], out["fc2.bias"] = get(n["fc2"] + ".weight"), get(n["fc2"] + ".bias")
    return out


def _getter(sd: dict[str, Tensor], prefix: str, source: str):
    def get(name: str, optional: bool = False) -> Tensor | None:
        key = prefix + name
        if key in sd:
            return sd[key]
        if optional:
            return None
        raise CheckpointError(f"{source}: tensor {key!r} is missing")
    return get


# -- openai-whisper .pt ---------------------------------------------------------------------------

_OPENAI_NAMES = dict(attn_ln="attn_ln", q="attn.query", k="attn.key", v="attn.value", o="attn.out",
                     cross_ln="cross_attn_ln", cq="cross_attn.query", ck="cross_attn.key", cv="cross_attn.value",
                     co="cross_attn.out", mlp_ln="mlp_ln", fc1="mlp.0", fc2="mlp.2")


def load_openai(path: str | os.PathLike) -> Whisper:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickles with code in them are refused on purpose
        raise CheckpointError(f"Could not read {path} as an openai-whisper checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an openai-whisper checkpoint (no 'dims'/'model_state_dict')")
    cfg = WhisperConfig(**{k: int(v) for k, v in ckpt["dims"].items() if k in WhisperConfig.__dataclass_fields__})
    sd, src = ckpt["model_state_dict"], str(path)
    heads = ckpt.get("alignment_heads")
    if isinstance(heads, Tensor):  # dense bool mask (n_text_layer, n_text_head), stored sparse
        heads = heads.to_dense() if heads.is_sparse else heads
        cfg.alignment_heads = [tuple(map(int, x)) for x in heads.nonzero().tolist()]
    out: dict[str, Tensor] = {
        "encoder.conv1.weight": sd["encoder.conv1.weight"], "encoder.conv1.bias": sd["encoder.conv1.bias"],
        "encoder.conv2.weight": sd["encoder.conv2.weight"], "encoder.conv2.bias": sd["encoder.conv2.bias"],
        "encoder.positions": sd["encoder.positional_embedding"],
        "encoder.ln_post.weight": sd["encoder.ln_post.weight"], "encoder.ln_post.bias": sd["encoder.ln_post.bias"],
        "decoder.token_embedding.weight": sd["decoder.token_embedding.weight"],
        "decoder.positional_embedding": sd["decoder.positional_embedding"],
        "decoder.ln.weight": sd["decoder.ln.weight"], "decoder.ln.bias": sd["decoder.ln.bias"],
    }
    for side, n, cross in (("encoder", cfg.n_audio_layer, False), ("decoder", cfg.n_text_layer, True)):
        for i in range(n):
            for k, v in _block_from(_getter(sd, f"{side}.blocks.{i}.", src), _OPENAI_NAMES, cross).items():
                out[f"{side}.blocks.{i}.{k}"] = v
    return _build(cfg, out, src)


# -- Hugging Face folder --------------------------------------------------------------------------

_HF_NAMES = dict(attn_ln="self_attn_layer_norm", q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj",
                 o="self_attn.out_proj", cross_ln="encoder_attn_layer_norm", cq="encoder_attn.q_proj",
                 ck="encoder_attn.k_proj", cv="encoder_attn.v_proj", co="encoder_attn.out_proj",
                 mlp_ln="final_layer_norm", fc1="fc1", fc2="fc2")


def config_from_hf(c: dict) -> WhisperConfig:
    d = c["d_model"]
    return WhisperConfig(
        n_mels=c.get("num_mel_bins", 80), n_audio_ctx=c.get("max_source_positions", 1500), n_audio_state=d,
        n_audio_head=c["encoder_attention_heads"], n_audio_layer=c["encoder_layers"], n_vocab=c["vocab_size"],
        n_text_ctx=c.get("max_target_positions", 448), n_text_state=d, n_text_head=c["decoder_attention_heads"],
        n_text_layer=c["decoder_layers"],
        n_audio_mlp=0 if c.get("encoder_ffn_dim", 4 * d) == 4 * d else c["encoder_ffn_dim"],
        n_text_mlp=0 if c.get("decoder_ffn_dim", 4 * d) == 4 * d else c["decoder_ffn_dim"],
        alignment_heads=[tuple(h) for h in (c.get("alignment_heads") or [])])


def load_hf(folder: str | os.PathLike) -> Whisper:
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        c = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder}: unreadable config.json ({e})") from e
    if c.get("model_type") not in (None, "whisper"):
        raise CheckpointError(f"{folder} holds a {c.get('model_type')!r} model, not Whisper")
    cfg = config_from_hf(c)
    gen = folder / "generation_config.json"
    if gen.exists() and not cfg.alignment_heads:
        cfg.alignment_heads = [tuple(h) for h in (json.loads(gen.read_text()).get("alignment_heads") or [])]
    sd: dict[str, Tensor] = {}
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    for f in files:
        sd.update(load_file(str(folder / f)))
    sd = {k.removeprefix("model."): v for k, v in sd.items()}
    src = str(folder)
    get = _getter(sd, "", src)
    out: dict[str, Tensor] = {
        "encoder.conv1.weight": get("encoder.conv1.weight"), "encoder.conv1.bias": get("encoder.conv1.bias"),
        "encoder.conv2.weight": get("encoder.conv2.weight"), "encoder.conv2.bias": get("encoder.conv2.bias"),
        "encoder.ln_post.weight": get("encoder.layer_norm.weight"), "encoder.ln_post.bias": get("encoder.layer_norm.bias"),
        "decoder.token_embedding.weight": get("decoder.embed_tokens.weight"),
        "decoder.positional_embedding": get("decoder.embed_positions.weight"),
        "decoder.ln.weight": get("decoder.layer_norm.weight"), "decoder.ln.bias": get("decoder.layer_norm.bias"),
    }
    if "encoder.embed_positions.weight" in sd:
        out["encoder.positions"] = sd["encoder.embed_positions.weight"]
    for side, n, cross in (("encoder", cfg.n_audio_layer, False), ("decoder", cfg.n_text_layer, True)):
        for i in range(n):
            for k, v in _block_from(_getter(sd, f"{side}.layers.{i}.", src), _HF_NAMES, cross).items():
                out[f"{side}.blocks.{i}.{k}"] = v
    return _build(cfg, out, src)


# -- CTranslate2 folder ---------------------------------------------------------------------------

# CTranslate2 data type ids (ctranslate2/specs/model_spec.py)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ct2_bin(path: str | os.PathLike) -> tuple[str, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin``: (spec name, {variable name: array}) with aliases resolved.

    Layout (little endian): u32 version, [str spec name, u32 revision] (version >= 2),
    u32 count, then per variable: str name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, data;
    then u32 alias count and (alias, target) string pairs. A string is u16 length (with the
    trailing NUL) followed by the bytes.
    """
    data = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def string() -> str:
        nonlocal pos
        (n,) = take("H")
        s = bytes(data[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return s

    try:
        (version,) = take("I")
        if version > 6:
            raise CheckpointError(f"{path}: CTranslate2 binary version {version} is newer than this reader (6)")
        spec = ""
        if version >= 2:
            spec = string()
            take("I")
        (count,) = take("I")
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = take("B")
            dims = take(f"{rank}I") if rank else ()
            if version >= 4:
                dtype_id, nbytes = take("BI")
                dtype = _CT2_DTYPES.get(dtype_id)
                if dtype is None:
                    raise CheckpointError(f"{path}: unknown data type {dtype_id} for {name}")
            else:
                (itemsize,) = take("B")
                (n_items,) = take("I")
                nbytes = itemsize * n_items
                dtype = {4: np.float32, 2: np.int16, 1: np.int8}[itemsize]
            raw = data[pos:pos + nbytes]
            pos += nbytes
            if dtype == "bfloat16":
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype)
            out[name] = arr.reshape(dims)
        if pos < len(data):
            (n_alias,) = take("I")
            for _ in range(n_alias):
                alias, target = string(), string()
                out[alias] = out[target]
    except (struct.error, KeyError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid CTranslate2 model file ({e})") from e
    return spec, out


def _ct2_weight(v: dict[str, np.ndarray], name: str) -> Tensor:
    """A weight as float32, dequantized when stored as int8/int16 with a per-row ``weight_scale``."""
    w = v[name + "/weight"].astype(np.float32)
    scale = v.get(name + "/weight_scale")
    if scale is not None:
        scale = np.asarray(scale, np.float32)
        w = w / (scale.reshape((-1,) + (1,) * (w.ndim - 1)) if scale.ndim else scale)
    return torch.from_numpy(np.ascontiguousarray(w))


def _ct2_linear(v: dict[str, np.ndarray], name: str) -> tuple[Tensor, Tensor | None]:
    b = v.get(name + "/bias")
    return _ct2_weight(v, name), (torch.from_numpy(b.astype(np.float32)) if b is not None else None)


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.float32)))


def _scalar(v: dict[str, np.ndarray], name: str) -> int:
    return int(np.asarray(v[name]).reshape(-1)[0])


def load_ctranslate2(folder: str | os.PathLike) -> Whisper:
    folder = Path(folder)
    spec, v = read_ct2_bin(folder / "model.bin")
    src = str(folder / "model.bin")
    if spec and spec != "WhisperSpec":
        raise CheckpointError(f"{src} holds a {spec}, not a Whisper model")
    layers = [re.match(r"(encoder|decoder)/layer_(\d+)/", k) for k in v]
    n_enc = len({m[2] for m in layers if m and m[1] == "encoder"})
    n_dec = len({m[2] for m in layers if m and m[1] == "decoder"})
    emb = v["decoder/embeddings/weight"]
    d = emb.shape[1]
    cfg = WhisperConfig(
        n_mels=v["encoder/conv1/weight"].shape[1], n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=v["encoder/conv1/weight"].shape[0], n_audio_head=_scalar(v, "encoder/num_heads"),
        n_audio_layer=n_enc, n_vocab=emb.shape[0], n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=d, n_text_head=_scalar(v, "decoder/num_heads"), n_text_layer=n_dec)
    mlp_a = v["encoder/layer_0/ffn/linear_0/weight"].shape[0] if n_enc else 4 * cfg.n_audio_state
    mlp_t = v["decoder/layer_0/ffn/linear_0/weight"].shape[0] if n_dec else 4 * d
    cfg.n_audio_mlp = 0 if mlp_a == 4 * cfg.n_audio_state else mlp_a
    cfg.n_text_mlp = 0 if mlp_t == 4 * d else mlp_t
    conf = folder / "config.json"
    if conf.exists():
        cfg.alignment_heads = [tuple(h) for h in (json.loads(conf.read_text()).get("alignment_heads") or [])]
    out: dict[str, Tensor] = {
        "encoder.conv1.weight": _ct2_weight(v, "encoder/conv1"), "encoder.conv1.bias": _t(v["encoder/conv1/bias"]),
        "encoder.conv2.weight": _ct2_weight(v, "encoder/conv2"), "encoder.conv2.bias": _t(v["encoder/conv2/bias"]),
        "encoder.positions": _t(v["encoder/position_encodings/encodings"]),
        "encoder.ln_post.weight": _t(v["encoder/layer_norm/gamma"]), "encoder.ln_post.bias": _t(v["encoder/layer_norm/beta"]),
        "decoder.token_embedding.weight": _ct2_weight(v, "decoder/embeddings"),
        "decoder.positional_embedding": _t(v["decoder/position_encodings/encodings"]),
        "decoder.ln.weight": _t(v["decoder/layer_norm/gamma"]), "decoder.ln.bias": _t(v["decoder/layer_norm/beta"]),
    }

    def put(prefix: str, ct2: str, dest: str) -> None:
        w, b = _ct2_linear(v, ct2)
        out[f"{prefix}.{dest}.weight"] = w
        out[f"{prefix}.{dest}.bias"] = b if b is not None else torch.zeros(w.shape[0])

    def norm(prefix: str, ct2: str, dest: str) -> None:
        out[f"{prefix}.{dest}.weight"] = _t(v[ct2 + "/gamma"])
        out[f"{prefix}.{dest}.bias"] = _t(v[ct2 + "/beta"])

    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            p, c = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            norm(p, c + "/self_attention/layer_norm", "attn_ln")
            put(p, c + "/self_attention/linear_0", "qkv")
            put(p, c + "/self_attention/linear_1", "out")
            if side == "decoder":
                norm(p, c + "/attention/layer_norm", "cross_ln")
                put(p, c + "/attention/linear_0", "cross_q")
                put(p, c + "/attention/linear_1", "cross_kv")
                put(p, c + "/attention/linear_2", "cross_out")
            norm(p, c + "/ffn/layer_norm", "mlp_ln")
            put(p, c + "/ffn/linear_0", "fc1")
            put(p, c + "/ffn/linear_1", "fc2")
    return _build(cfg, out, src)
