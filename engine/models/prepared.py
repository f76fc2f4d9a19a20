"""Prepared models: a network written once, after conversion and quantisation, and loaded directly.

Converting a checkpoint (a CTranslate2 file, an openai ``.pt``) and quantising its Linear layers
to int8 takes seconds on every start. The first load writes the ready module to
``<model cache>/.prepared/<family>-<precision>-<key>.safetensors``: plain tensors, the config in
the metadata. ``models.int8`` layers are plain int8 buffers with their scales; torch's
dynamic-quantized Linear layers are stored as their int8 weights with per-row scales and zero
points and re-packed from them on load (bit-identical weights). Later loads build the module
without initialising it and assign the stored tensors. Modules are built with
:func:`skip_init` (uninitialised storage, then assigned): the ``meta`` device would be the
textbook way, but its first use imports torch's compiler stack (4 s here).

The key covers the source files (names, sizes, modification times), the family, the precision
and this file's format version, so a changed checkpoint is prepared again. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

FORMAT = 2  # 2: models.int8 layers beside torch's dynamic-quantized ones
log = logging.getLogger(__name__)
_INITS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
          "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
_init_lock = threading.RLock()


@contextlib.contextmanager
def skip_init():
    """Build modules without initialising their weights (they are loaded right after): ``torch.nn.init``
    does nothing inside this block. Only for modules whose every tensor is then assigned."""
    init = torch.nn.init
    with _init_lock:  # one builder at a time: another thread's model keeps its initialisation
        saved = {name: getattr(init, name) for name in _INITS}
        try:
            for name in _INITS:
                setattr(init, name, lambda tensor, *a, **k: tensor)
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)


def source_key(folder: Path, *extra: Any) -> str:
    """A key that changes when any file of the model folder (or ``extra``) changes."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*")
                                                     if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256(json.dumps([FORMAT, str(folder.resolve()), *map(str, extra)]).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(folder) if p != folder else p.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _quantized_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    q = QLinear(1, 1, dtype=torch.qint8)  # a small shell: the real weight is packed once, below
    q.in_features, q.out_features = weight.shape[1], weight.shape[0]
    q.set_weight_bias(weight, bias)
    return q


def save(model: nn.Module, path: str | os.PathLike, meta: dict[str, str]) -> Path:
    """Write ``model`` (float, with ``models.int8`` layers or torch's dynamic int8 Linear layers) as a
    prepared file, atomically."""
    from safetensors.torch import save_file
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from ..fileio import atomic_path

    tensors: dict[str, torch.Tensor] = {}
    quantized = [name for name, m in model.named_modules() if isinstance(m, QLinear)]
    for name in quantized:
        m = model.get_submodule(name)
        w = m.weight()
        tensors[f"{name}.int8"] = w.int_repr().contiguous()
        tensors[f"{name}.scales"] = w.q_per_channel_scales().contiguous()
        tensors[f"{name}.zero_points"] = w.q_per_channel_zero_points().contiguous()
        if m.bias() is not None:
            tensors[f"{name}.bias"] = m.bias().detach().contiguous()
    skip = tuple(f"{n}." for n in quantized)
    seen: dict[int, str] = {}
    shared: dict[str, str] = {}
    for k, v in model.state_dict().items():
        if k.startswith(skip) or not isinstance(v, torch.Tensor):
            continue
        if v.data_ptr() in seen:  # tied weights are stored once
            shared[k] = seen[v.data_ptr()]
            continue
        seen[v.data_ptr()] = k
        tensors[k] = v.detach().contiguous()
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, "format": str(FORMAT), "quantized": json.dumps(quantized),
                                               "shared": json.dumps(shared)})
    return path


def load(path: str | os.PathLike, build: Callable[[dict[str, str]], nn.Module], device: str = "cpu") -> nn.Module:
    """The module written by :func:`save`; ``build(metadata)`` makes the architecture (without
    initialisation: every tensor is then assigned from the file)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt", device="cpu") as f:
        meta = f.metadata() or {}
        if meta.get("format") != str(FORMAT):
            raise ValueError(f"prepared format {meta.get('format')} is not {FORMAT}")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    with skip_init():
        model = build(meta)
    quantized = json.loads(meta.get("quantized", "[]"))
    layers = {name: (tensors.pop(f"{name}.int8"), tensors.pop(f"{name}.scales"), tensors.pop(f"{name}.zero_points"),
                     tensors.pop(f"{name}.bias", None)) for name in quantized}
    for k, src in json.loads(meta.get("shared", "{}")).items():
        tensors[k] = tensors[src]
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    skip = tuple(f"{n}." for n in quantized)  # still the float placeholders: replaced just below
    missing = [k for k in missing if not k.startswith(skip)]
    if missing or unexpected:
        raise ValueError(f"prepared file does not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
    with warnings.catch_warnings():  # torch marks its quantized tensors deprecated; they still work
        warnings.simplefilter("ignore")
        for name, (w8, scales, zero_points, bias) in layers.items():
            w = torch._make_per_channel_quantized_tensor(w8, scales, zero_points, 0)
            model.set_submodule(name, _quantized_linear(w, bias))
    return model.to(device).eval()


def cached(folder: Path, family: str, precision: str, root: Path, make: Callable[[], nn.Module],
           build: Callable[[dict[str, str]], nn.Module], meta: Callable[[nn.Module], dict[str, str]]) -> nn.Module:
    """The prepared module for ``folder`` at ``precision``: loaded from ``root`` when it is there,
    else made by ``make()`` and written for the next time (best effort: a read-only cache only costs
    time). A damaged prepared file is made again."""
    path = root / ".prepared" / f"{family}-{precision}-{source_key(folder, family, precision)}.safetensors"
    if path.exists():
        try:
            return load(path, build)
        except Exception as e:  # damaged or from another version: prepare again
            log.warning("prepared model %s is unusable (%s); preparing it again", path.name, e)
    model = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = precision.split("-")[0]  # "int8-<split>": a file of another split is another version
        for old in path.parent.glob(f"{family}-{kind}-*.safetensors"):  # other versions of this model
            if old != path and _same_source(old, folder):
                old.unlink(missing_ok=True)
        save(model, path, {"source": str(Path(folder).resolve()), **meta(model)})
    except OSError as e:
        log.warning("could not write the prepared model %s: %s", path, e)
    return model


def _same_source(path: Path, folder: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("source") == str(Path(folder).resolve())
    except Exception:
        return False
