"""SpeechT5 text-to-speech (the acoustic model): characters -> log-mel frames, one step at a time.

    ids (B, T) -> text encoder pre-net: embedding + alpha * sinusoid           (B, T, d)
               -> LayerNorm -> N post-LN layers (self-attention with a relative position bias
                  q . pe_k[i - j], GELU FFN)                                    enc (B, T, d)
    previous mel frame (B, n_mels) -> speech decoder pre-net: 2 x (Linear, ReLU, always-on dropout)
               -> Linear -> + alpha * sinusoid(position)
               -> concat(L2-normalised 512-d x-vector) -> Linear -> ReLU        (B, 1, d)
               -> M post-LN layers (causal self-attention with a KV cache, cross-attention to enc,
                  GELU FFN)                                                     h (B, 1, d)
    h -> feat_out: reduction_factor mel frames (B, r, n_mels); prob_out: r stop logits
    all frames (B, F, n_mels) -> post-net: K x (Conv1d, BatchNorm, tanh; last without tanh),
               added to its input                                               mel (B, F, n_mels)

The decoding loop (stop threshold, min/max length ratios, the pre-net's dropout masks) is in
``engine.speech.speecht5``; this module only holds the network and the Hugging Face checkpoint
reader (``config.json`` + ``model.safetensors``, or ``pytorch_model.bin`` read with
``weights_only=True``), the SentencePiece character tokenizer and x-vector files.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError


@dataclass
class SpeechT5Config:
    vocab_size: int = 81
    hidden_size: int = 768
    encoder_layers: int = 12
    encoder_attention_heads: int = 12
    encoder_ffn_dim: int = 3072
    decoder_layers: int = 6
    decoder_attention_heads: int = 12
    decoder_ffn_dim: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1
    eos_token_id: int = 2
    num_mel_bins: int = 80
    reduction_factor: int = 2
    speech_decoder_prenet_layers: int = 2
    speech_decoder_prenet_units: int = 256
    speech_decoder_prenet_dropout: float = 0.5
    speaker_embedding_dim: int = 512
    speech_decoder_postnet_layers: int = 5
    speech_decoder_postnet_units: int = 256
    speech_decoder_postnet_kernel: int = 5
    max_speech_positions: int = 4000
    max_text_positions: int = 450
    encoder_max_relative_position: int = 160

    @classmethod
    def from_dict(cls, d: dict) -> "SpeechT5Config":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


_ACT = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu, "swish": F.silu}


def sinusoid(length: int, dim: int) -> torch.Tensor:
    """(length, dim): sin on even channels, cos on odd ones (the scaled positional encoding's table)."""
    pe = torch.zeros(length, dim)
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, hd)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
               position_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Tq, d) attends to k, v (B, H, Tk, hd); ``position_bias`` (Tq, Tk, hd) adds q . pe."""
        q = self.split(self.q_proj(x) * self.scaling)                       # (B, H, Tq, hd)
        w = q @ k.transpose(-1, -2)                                          # (B, H, Tq, Tk)
        if position_bias is not None:
            w = w + torch.einsum("bhqd,qkd->bhqk", q, position_bias)
        if bias is not None:
            w = w + bias
        out = torch.softmax(w, dim=-1) @ v                                   # (B, H, Tq, hd)
        return self.out_proj(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int, act: str) -> None:
        super().__init__()
        self.intermediate_dense, self.output_dense = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.act = _ACT[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(self.act(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c: SpeechT5Config) -> None:
        super().__init__()
        d = c.hidden_size
        self.attention = Attention(d, c.encoder_attention_heads)
        self.layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.feed_forward = FeedForward(d, c.encoder_ffn_dim, c.hidden_act)
        self.final_layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, position_bias: torch.Tensor) -> torch.Tensor:
        k, v = self.attention.kv(x)
        x = self.layer_norm(x + self.attention.attend(x, k, v, bias, position_bias))
        return self.final_layer_norm(x + self.feed_forward(x))


class TextEncoder(nn.Module):
    def __init__(self, c: SpeechT5Config) -> None:
        super().__init__()
        d = c.hidden_size
        self.embed_tokens = nn.Embedding(c.vocab_size, d, c.pad_token_id)
        self.pos_alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("pe", sinusoid(c.max_text_positions, d), persistent=False)
        self.layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.max_rel = c.encoder_max_relative_position
        self.pe_k = nn.Embedding(2 * self.max_rel, d // c.encoder_attention_heads)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.encoder_layers))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T), mask (B, T) 1 = token -> (B, T, d)"""
        T = ids.shape[1]
        x = self.layer_norm(self.embed_tokens(ids) + self.pos_alpha * self.pe[:T])
        rel = torch.arange(T, device=ids.device)
        rel = (rel[:, None] - rel[None, :]).clamp(-self.max_rel, self.max_rel - 1) + self.max_rel
        position_bias = self.pe_k(rel)                                       # (T, T, hd)
        bias = None
        if mask is not None and not bool(mask.all()):
            bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias, position_bias)
        return x


class DecoderPrenet(nn.Module):
    def __init__(self, c: SpeechT5Config) -> None:
        super().__init__()
        units, d = c.speech_decoder_prenet_units, c.hidden_size
        self.layers = nn.ModuleList(nn.Linear(c.num_mel_bins if i == 0 else units, units)
                                    for i in range(c.speech_decoder_prenet_layers))
        self.final_layer = nn.Linear(units, d)
        self.pos_alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("pe", sinusoid(c.max_speech_positions, d), persistent=False)
        self.speaker_embeds_layer = nn.Linear(c.speaker_embedding_dim + d, d)
        self.p = c.speech_decoder_prenet_dropout

    def forward(self, frame: torch.Tensor, position: int, speaker: torch.Tensor,
                masks: list[torch.Tensor]) -> torch.Tensor:
        """frame (B, n_mels) at ``position``; speaker (B, 512) already L2-normalised; ``masks``: one
        0/1 keep mask (units,) per layer (SpeechT5 keeps its pre-net dropout on at inference)
        -> (B, 1, d)"""
        x = frame[:, None]
        for layer, keep in zip(self.layers, masks):
            x = torch.where(keep == 1, F.relu(layer(x)), 0.0) / (1 - self.p)
        x = self.final_layer(x) + self.pos_alpha * self.pe[position]
        spk = speaker[:, None].expand(-1, x.shape[1], -1)
        return F.relu(self.speaker_embeds_layer(torch.cat([x, spk], dim=-1)))


class DecoderLayer(nn.Module):
    def __init__(self, c: SpeechT5Config) -> None:
        super().__init__()
        d = c.hidden_size
        self.self_attn = Attention(d, c.decoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.encoder_attn = Attention(d, c.decoder_attention_heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.feed_forward = FeedForward(d, c.decoder_ffn_dim, c.hidden_act)
        self.final_layer_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, step: int,
                cross_k: torch.Tensor, cross_v: torch.Tensor, cross_bias: torch.Tensor | None) -> torch.Tensor:
        """x (B, 1, d) at ``step``; cache_k/v (B, H, max_steps, hd) are filled in place at ``step``."""
        k, v = self.self_attn.kv(x)
        cache_k[:, :, step:step + 1] = k
        cache_v[:, :, step:step + 1] = v
        x = self.self_attn_layer_norm(x + self.self_attn.attend(x, cache_k[:, :, :step + 1], cache_v[:, :, :step + 1]))
        x = self.encoder_attn_layer_norm(x + self.encoder_attn.attend(x, cross_k, cross_v, cross_bias))
        return self.final_layer_norm(x + self.feed_forward(x))


class PostnetLayer(nn.Module):
    def __init__(self, c: SpeechT5Config, i: int) -> None:
        super().__init__()
        n = c.speech_decoder_postnet_layers
        cin = c.num_mel_bins if i == 0 else c.speech_decoder_postnet_units
        cout = c.num_mel_bins if i == n - 1 else c.speech_decoder_postnet_units
        k = c.speech_decoder_postnet_kernel
        self.conv = nn.Conv1d(cin, cout, k, padding=(k - 1) // 2, bias=False)
        self.batch_norm = nn.BatchNorm1d(cout)
        self.tanh = i < n - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.batch_norm(self.conv(x))
        return torch.tanh(x) if self.tanh else x


class SpeechT5TTS(nn.Module):
    def __init__(self, config: SpeechT5Config) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = TextEncoder(c)
        self.prenet = DecoderPrenet(c)
        self.decoder_layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.decoder_layers))
        self.feat_out = nn.Linear(c.hidden_size, c.num_mel_bins * c.reduction_factor)
        self.prob_out = nn.Linear(c.hidden_size, c.reduction_factor)
        self.postnet = nn.ModuleList(PostnetLayer(c, i) for i in range(c.speech_decoder_postnet_layers))

    # -- pieces the decoding loop calls ------------------------------------------------------------
    def encode(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(ids, mask)

    def cross_kv(self, enc: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each decoder layer's cross-attention keys and values, computed once per sentence."""
        return [layer.encoder_attn.kv(enc) for layer in self.decoder_layers]

    def new_cache(self, batch: int, steps: int, device=None, dtype=torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
        a = self.decoder_layers[0].self_attn
        shape = (batch, a.heads, steps, a.head_dim)
        return [(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
                for _ in self.decoder_layers]

    def decode_step(self, frame: torch.Tensor, step: int, speaker: torch.Tensor, masks: list[torch.Tensor],
                    cache, cross, cross_bias=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous frame (B, n_mels) -> (r new frames (B, r, n_mels), r stop logits (B, r))."""
        x = self.prenet(frame, step, speaker, masks)
        for layer, (ck, cv), (xk, xv) in zip(self.decoder_layers, cache, cross):
            x = layer(x, ck, cv, step, xk, xv, cross_bias)
        h = x[:, 0]
        return self.feat_out(h).view(h.shape[0], self.config.reduction_factor, -1), self.prob_out(h)

    def refine(self, mel: torch.Tensor) -> torch.Tensor:
        """The post-net: mel (B, F, n_mels) + its residual correction."""
        y = mel.transpose(1, 2)
        for layer in self.postnet:
            y = layer(y)
        return mel + y.transpose(1, 2)

    def quantize_int8(self) -> "SpeechT5TTS":
        """Dynamic int8 on the decoder's Linear layers (the per-step cost on the CPU)."""
        from torch.ao.quantization import quantize_dynamic

        self.decoder_layers = quantize_dynamic(self.decoder_layers, {nn.Linear}, dtype=torch.qint8)
        return self


# -- checkpoints --------------------------------------------------------------------------------
_RENAMES = [
    (r"^speecht5\.encoder\.prenet\.embed_tokens\.", "encoder.embed_tokens."),
    (r"^speecht5\.encoder\.prenet\.encode_positions\.alpha$", "encoder.pos_alpha"),
    (r"^speecht5\.encoder\.wrapped_encoder\.embed_positions\.pe_k\.", "encoder.pe_k."),
    (r"^speecht5\.encoder\.wrapped_encoder\.", "encoder."),
    (r"^speecht5\.decoder\.prenet\.encode_positions\.alpha$", "prenet.pos_alpha"),
    (r"^speecht5\.decoder\.prenet\.", "prenet."),
    (r"^speecht5\.decoder\.wrapped_decoder\.layers\.", "decoder_layers."),
    (r"^speech_decoder_postnet\.(feat_out|prob_out)\.", r"\1."),
    (r"^speech_decoder_postnet\.layers\.", "postnet."),
]
_IGNORED = re.compile(r"\.encode_positions\.pe$|^text_decoder|lm_head|embed_positions\.weights$")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Hugging Face folder: model.safetensors, else pytorch_model.bin (weights only)."""
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if st.exists():
            from safetensors.torch import load_file

            return load_file(str(st))
        if pt.exists():
            return torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CheckpointError(f"{folder.name}: unreadable weights ({type(e).__name__}: {str(e)[:200]})") from None
    raise CheckpointError(f"{folder}: no model.safetensors or pytorch_model.bin")


def read_config(folder: Path, model_type: str) -> dict:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder}: no readable config.json ({e})") from None
    if cfg.get("model_type") != model_type:
        raise CheckpointError(f"{folder}: config.json describes a {cfg.get('model_type')!r} model, "
                              f"not {model_type!r}")
    return cfg


def convert_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        if _IGNORED.search(key):
            continue
        new = key
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, new)
            if n:
                break
        out[new] = value
    return out


def load_model(folder: str | Path, device: str = "cpu") -> SpeechT5TTS:
    folder = Path(folder)
    cfg = SpeechT5Config.from_dict(read_config(folder, "speecht5"))
    model = SpeechT5TTS(cfg)
    sd = convert_state_dict(read_state_dict(folder))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{folder.name}: weights do not fit SpeechT5 TTS (missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]})")
    return model.eval().to(device)


# -- tokenizer and speaker embeddings -------------------------------------------------------------
class CharTokenizer:
    """SpeechT5's SentencePiece character model (``spm_char.model``): text -> ids + ``</s>``."""

    def __init__(self, path: Path) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.Load(str(path))
        except (OSError, RuntimeError) as e:
            raise CheckpointError(f"{path.name}: not a SentencePiece model ({e})") from None
        self.eos_id = self.sp.piece_to_id("</s>")
        self.unk_id = self.sp.unk_id()

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text)) + [self.eos_id]

    def unknown(self, text: str) -> str:
        """The characters of ``text`` the vocabulary lacks (dropped by :meth:`clean`)."""
        return "".join(dict.fromkeys(ch for ch in text if not ch.isspace() and self.sp.piece_to_id(ch) == self.unk_id))

    def clean(self, text: str) -> str:
        bad = set(self.unknown(text))
        return "".join(ch for ch in text if ch not in bad) if bad else text


def load_tokenizer(folder: str | Path) -> CharTokenizer:
    folder = Path(folder)
    for name in ("spm_char.model", "sentencepiece.bpe.model", "tokenizer.model"):
        if (folder / name).exists():
            return CharTokenizer(folder / name)
    raise CheckpointError(f"{folder}: no SentencePiece tokenizer (spm_char.model)")


def load_xvector(path: str | Path, dim: int = 512) -> np.ndarray:
    """A speaker x-vector (``dim`` floats) from a ``.npy`` file or a one-tensor ``.safetensors`` file."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if len(tensors) != 1:
                raise CheckpointError(f"{path.name}: expected one tensor (the x-vector), found {len(tensors)}")
            x = next(iter(tensors.values()))
        else:
            raise CheckpointError(f"{path.name}: an x-vector is a .npy or .safetensors file")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path.name}: unreadable x-vector ({e})") from None
    x = np.asarray(x, np.float32).reshape(-1)
    if x.size != dim or not np.all(np.isfinite(x)):
        raise CheckpointError(f"{path.name}: not a {dim}-d speaker x-vector (shape {x.shape})")
    return x
