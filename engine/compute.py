"""Compute device selection (CUDA / MPS / CPU) and thread settings. torch is imported lazily."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from .errors import DeviceError

CHOICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class ComputeDevice:
    name: str  # "cpu", "cuda:0", "mps"
    description: str
    memory_gb: float | None = None


def available() -> list[ComputeDevice]:
    import torch

    devs = [ComputeDevice("cpu", f"CPU ({os.cpu_count()} logical cores, {torch.get_num_threads()} threads)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devs.append(ComputeDevice(f"cuda:{i}", p.name, round(p.total_memory / 2**30, 1)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devs.append(ComputeDevice("mps", "Apple GPU (Metal)"))
    return devs


def pick_device(preference: str | None = None):
    """A ``torch.device`` for ``preference`` ("auto", "cpu", "cuda", "cuda:1", "mps").

    ``None`` reads ``SONOSCOPE_DEVICE`` (default "auto": CUDA, then MPS, then CPU).
    Asking for a GPU that is not there raises DeviceError with the reason.
    """
    import torch

    pref = (preference or os.environ.get("SONOSCOPE_DEVICE") or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA GPU is usable (this PyTorch build "
                              f"{'has no CUDA support' if torch.version.cuda is None else 'finds no GPU'}); "
                              "choose 'auto' or 'cpu'")
        idx = int(pref.split(":")[1]) if ":" in pref else 0
        if idx >= torch.cuda.device_count():
            raise DeviceError(f"there is no GPU {pref} (found {torch.cuda.device_count()})")
        return torch.device(pref)
    if pref == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError("MPS (Apple GPU) was requested but is not available; choose 'auto' or 'cpu'")
        return torch.device("mps")
    if pref == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown compute device '{preference}'; choose one of {', '.join(CHOICES)}")


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count (``None``/0: ``SONOSCOPE_THREADS`` or all cores). Returns it."""
    import torch

    n = n or int(os.environ.get("SONOSCOPE_THREADS") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads (``None``: as they are), restoring the count after."""
    import torch

    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
