"""Compute device choice and thread settings."""

from __future__ import annotations

import pytest
import torch

from engine.compute import cpu_threads, pick_device, set_threads
from engine.errors import DeviceError


def _fake_accelerators(monkeypatch, cuda: bool, mps: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, want", [(True, True, "cuda"), (True, False, "cuda"),
                                             (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, want):
    monkeypatch.delenv("SONOSCOPE_DEVICE", raising=False)
    _fake_accelerators(monkeypatch, cuda, mps)
    assert pick_device("auto") == torch.device(want)
    assert pick_device(None) == torch.device(want)  # no preference and no setting: auto
    assert pick_device("AUTO") == torch.device(want)
    monkeypatch.setenv("SONOSCOPE_DEVICE", "auto")
    assert pick_device() == torch.device(want)
    monkeypatch.setenv("SONOSCOPE_DEVICE", "cpu")  # the setting is obeyed, whatever is there
    assert pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_explicit_devices_and_clear_errors(monkeypatch):
    monkeypatch.delenv("SONOSCOPE_DEVICE", raising=False)
    _fake_accelerators(monkeypatch, cuda=True, mps=False, count=2)
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceError, match=r"there is no GPU cuda:2 \(found 2\)"):
        pick_device("cuda:2")
    with pytest.raises(DeviceError, match="MPS .* is not available"):
        pick_device("mps")
    _fake_accelerators(monkeypatch, cuda=False, mps=True)
    assert pick_device("mps") == torch.device("mps")
    with pytest.raises(DeviceError, match="CUDA was requested but no CUDA GPU is usable"):
        pick_device("cuda")
    monkeypatch.setenv("SONOSCOPE_DEVICE", "cuda")  # a GPU set in the environment but not there
    with pytest.raises(DeviceError, match="CUDA was requested"):
        pick_device()
    with pytest.raises(DeviceError, match="unknown compute device 'tpu'"):
        pick_device("tpu")


def test_thread_settings(monkeypatch):
    old = torch.get_num_threads()
    try:
        monkeypatch.setenv("SONOSCOPE_THREADS", "1")
        assert set_threads(None) == 1  # the environment setting
        assert set_threads(2) == 2  # an explicit count wins
        with pytest.raises(ValueError), cpu_threads(1):
            assert torch.get_num_threads() == 1
            raise ValueError
        assert torch.get_num_threads() == 2  # restored even after an error
        with cpu_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
