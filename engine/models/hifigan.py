"""HiFi-GAN generator in the SpeechT5HifiGan format: log-mel frames -> waveform (16 kHz for SpeechT5).

    mel (B, F, 80) -> (mel - mean) / scale (the checkpoint's statistics, if normalize_before)
        -> Conv1d(80, C, 7)                                                   (B, C, F)
        -> per upsampling stage i: LeakyReLU(0.1) -> ConvTranspose1d(stride u_i) -> C / 2^(i+1) channels,
           then the mean of the multi-receptive-field residual blocks (kernels k_j, dilations d_j:
           each 3 x (LeakyReLU, dilated Conv1d, LeakyReLU, Conv1d) + residual)
        -> LeakyReLU(0.01) -> Conv1d(., 1, 7) -> tanh                         (B, F * prod(u))

Checkpoints: ``config.json`` (model_type speecht5_hifigan) + ``model.safetensors`` or
``pytorch_model.bin`` (read with ``weights_only=True``); weight-normalised weights (``weight_g`` /
``weight_v``, or parametrizations' ``original0/1``) are folded into plain weights on loading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .speecht5 import read_config, read_state_dict


@dataclass
class HifiGanConfig:
    model_in_dim: int = 80
    sampling_rate: int = 16000
    upsample_initial_channel: int = 512
    upsample_rates: list = field(default_factory=lambda: [4, 4, 4, 4])
    upsample_kernel_sizes: list = field(default_factory=lambda: [8, 8, 8, 8])
    resblock_kernel_sizes: list = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list = field(default_factory=lambda: [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    leaky_relu_slope: float = 0.1
    normalize_before: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "HifiGanConfig":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations, slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope))
        return x


class HifiGan(nn.Module):
    def __init__(self, config: HifiGanConfig) -> None:
        super().__init__()
        c = self.config = config
        ch = c.upsample_initial_channel
        self.conv_pre = nn.Conv1d(c.model_in_dim, ch, 7, padding=3)
        self.upsampler = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2 ** i, ch // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes)))
        self.num_kernels = len(c.resblock_kernel_sizes)
        self.resblocks = nn.ModuleList(
            ResBlock(ch // 2 ** (i + 1), k, d, c.leaky_relu_slope)
            for i in range(len(self.upsampler))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.upsampler), 1, 7, padding=3)
        self.register_buffer("mean", torch.zeros(c.model_in_dim))
        self.register_buffer("scale", torch.ones(c.model_in_dim))

    @property
    def hop(self) -> int:
        """Samples per mel frame."""
        n = 1
        for u in self.config.upsample_rates:
            n *= u
        return n

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, F, n_mels) or (F, n_mels) -> waveform (B, F * hop) or (F * hop,)"""
        batched = mel.dim() == 3
        if self.config.normalize_before:
            mel = (mel - self.mean) / self.scale
        x = self.conv_pre((mel if batched else mel[None]).transpose(1, 2))
        for i, up in enumerate(self.upsampler):
            x = up(F.leaky_relu(x, self.config.leaky_relu_slope))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / self.num_kernels
        y = torch.tanh(self.conv_post(F.leaky_relu(x)))[:, 0]
        return y if batched else y[0]


def _fold_weight_norm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """weight = g * v / ||v|| (norm over every dim but 0), for both weight-norm layouts."""
    out = dict(sd)
    for key in list(sd):
        for g_suffix, v_suffix, base in ((".weight_g", ".weight_v", ""), (".parametrizations.weight.original0",
                                                                           ".parametrizations.weight.original1", "")):
            if key.endswith(g_suffix):
                stem = key[: -len(g_suffix)]
                g, v = sd[key], sd.get(stem + v_suffix)
                if v is None:
                    raise CheckpointError(f"weight norm of {stem}: {v_suffix} is missing")
                norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
                out[stem + ".weight"] = g * v / norm
                del out[key], out[stem + v_suffix]
    return out


def load_model(folder: str | Path, device: str = "cpu") -> HifiGan:
    folder = Path(folder)
    cfg = HifiGanConfig.from_dict(read_config(folder, "speecht5_hifigan"))
    model = HifiGan(cfg)
    sd = _fold_weight_norm(read_state_dict(folder))
    sd = {re.sub(r"^hifigan\.", "", k): v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder.name}: weights do not fit HiFi-GAN (missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]})")
    return model.eval().to(device)
