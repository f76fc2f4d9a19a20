"""EfficientAT: MobileNetV3 AudioSet taggers (mn04 ... mn40) trained by knowledge distillation from
transformers (Schmid, Koutini, Widmer 2023), in their plain PyTorch state-dict format.

Input: EfficientAT's log-mel (``engine.audio.dsp.efficientat_mel``: 32 kHz, 128 bins, 10 ms hop)
``(B, 1, 128, N)`` -> stem conv (stride 2) -> 15 inverted-residual blocks of MobileNetV3-Large
(expand 1x1, depthwise k x k, channel squeeze-excitation on some, project 1x1) -> 1x1 conv ->
average pool -> MLP -> 527 AudioSet logits (sigmoid: several labels at once).

The width (mn04 = 0.4 ... mn40 = 4.0) is read from the checkpoint: every layer's channel count is
taken from its weights; strides, kernels' places and activations follow the MobileNetV3-Large
template. Checkpoints load with ``torch.load(weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError

SAMPLE_RATE = 32000
N_MELS = 128
BN_EPS = 1e-3
# MobileNetV3-Large: (stride, hard-swish) of each inverted-residual block
TEMPLATE = ((1, False), (2, False), (1, False), (2, False), (1, False), (1, False), (2, True), (1, True),
            (1, True), (1, True), (1, True), (1, True), (2, True), (1, True), (1, True))


@dataclass
class BlockConfig:
    cin: int
    expanded: int
    cout: int
    kernel: int
    stride: int
    hard_swish: bool
    se_dim: int | None  # squeeze size of the channel SE, or None


@dataclass
class EfficientATConfig:
    stem: int = 16
    blocks: list[BlockConfig] = field(default_factory=list)
    last_conv: int = 960
    hidden: int = 1280
    num_classes: int = 527
    labels: list[str] = field(default_factory=list)

    @property
    def width(self) -> float:
        return self.last_conv / 960


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation, as torchvision's ConvNormActivation (names 0, 1)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = None) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout, eps=BN_EPS)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class ChannelSE(nn.Module):
    """Squeeze-excitation over channels: mean over (freq, time) -> fc1 -> ReLU -> fc2 -> sigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, F, T)
        s = x.mean((2, 3))  # (B, C)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class ConcurrentSE(nn.Module):
    """EfficientAT's container of SE layers over chosen dimensions (the AudioSet models use channels only),
    aggregated by max; kept as a module list so the checkpoint names match."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelSE(channels, squeeze)])

    def forward(self, x: Tensor) -> Tensor:
        outs = [layer(x) for layer in self.conc_se_layers]
        return outs[0] if len(outs) == 1 else torch.stack(outs).amax(0)


class InvertedResidual(nn.Module):
    def __init__(self, c: BlockConfig) -> None:
        super().__init__()
        act = nn.Hardswish if c.hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if c.expanded != c.cin:
            layers.append(ConvBN(c.cin, c.expanded, 1, act=act))
        layers.append(ConvBN(c.expanded, c.expanded, c.kernel, c.stride, groups=c.expanded, act=act))
        if c.se_dim:
            layers.append(ConcurrentSE(c.expanded, c.se_dim))
        layers.append(ConvBN(c.expanded, c.cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = c.stride == 1 and c.cin == c.cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class EfficientAT(nn.Module):
    def __init__(self, cfg: EfficientATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.blocks[0].cin if cfg.blocks else cfg.stem
        layers: list[nn.Module] = [ConvBN(1, c0, 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidual(b) for b in cfg.blocks]
        last_in = cfg.blocks[-1].cout if cfg.blocks else c0
        layers.append(ConvBN(last_in, cfg.last_conv, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(1),
                                        nn.Linear(cfg.last_conv, cfg.hidden), nn.Hardswish(), nn.Dropout(0.0),
                                        nn.Linear(cfg.hidden, cfg.num_classes))

    def forward(self, mel: Tensor) -> Tensor:
        """(B, 1, 128, N) or (B, 128, N) log-mel -> (B, num_classes) logits."""
        if mel.ndim == 3:
            mel = mel[:, None]
        return self.classifier(self.features(mel))


def config_from_state(sd: dict[str, Tensor]) -> EfficientATConfig:
    """The architecture written in a checkpoint's tensor shapes (any width)."""
    try:
        stem = sd["features.0.0.weight"].shape[0]
        blocks = []
        for i, (stride, hs) in enumerate(TEMPLATE, start=1):
            p = f"features.{i}.block."
            has_expand = sd[f"{p}0.0.weight"].shape[1] != 1  # a depthwise conv has one input channel per group
            k = 0
            if has_expand:
                cin, expanded = sd[f"{p}0.0.weight"].shape[1], sd[f"{p}0.0.weight"].shape[0]
                k = 1
            dw = sd[f"{p}{k}.0.weight"]  # (E, 1, k, k)
            if not has_expand:
                cin = expanded = dw.shape[0]
            se = sd.get(f"{p}{k + 1}.conc_se_layers.0.fc1.weight")
            proj = sd[f"{p}{k + (2 if se is not None else 1)}.0.weight"]
            blocks.append(BlockConfig(int(cin), int(expanded), int(proj.shape[0]), int(dw.shape[-1]), stride, hs,
                                      int(se.shape[0]) if se is not None else None))
        last = sd[f"features.{len(TEMPLATE) + 1}.0.weight"]
        return EfficientATConfig(stem=int(stem), blocks=blocks, last_conv=int(last.shape[0]),
                                 hidden=int(sd["classifier.2.weight"].shape[0]),
                                 num_classes=int(sd["classifier.5.weight"].shape[0]))
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"not an EfficientAT MobileNetV3 checkpoint (no {e})") from None


def read_labels(path: str | os.PathLike) -> list[str]:
    """AudioSet display names from ``class_labels_indices.csv`` (index, mid, display_name), in index order."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    try:
        return [r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{Path(path).name}: not an AudioSet labels file ({e})") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> EfficientAT:
    """A checkpoint file, or a folder holding one ``*.pt`` (and ``class_labels_indices.csv`` for the labels)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        files = sorted(path.glob("*.pt"))
        if len(files) != 1:
            raise CheckpointError(f"{path}: expected one EfficientAT .pt checkpoint, found {len(files)}")
        path = files[0]
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a torch file
        raise CheckpointError(f"{path.name}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path.name}: not a state dict")
    cfg = config_from_state(sd)
    labels_file = folder / "class_labels_indices.csv"
    if labels_file.exists():
        cfg.labels = read_labels(labels_file)
        if len(cfg.labels) != cfg.num_classes:
            raise CheckpointError(f"{labels_file.name} has {len(cfg.labels)} labels but the model gives "
                                  f"{cfg.num_classes} scores")
    else:
        cfg.labels = [f"class {i}" for i in range(cfg.num_classes)]
    model = EfficientAT(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{path.name}: does not fit the EfficientAT architecture "
                              f"(missing {missing[:4]}, unexpected {unexpected[:4]})")
    return model.to(device).eval()
