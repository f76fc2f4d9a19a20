"""Compute device choice and thread settings."""

from __future__ import annotations

import pytest
import torch

from engine.devices import cpu_threads, pick_device, set_threads
from engine.errors import DeviceError


def test_pick_device_and_clear_errors(monkeypatch):
    monkeypatch.delenv("SONOSCOPE_DEVICE", raising=False)
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else pick_device().type)
    with pytest.raises(DeviceError, match="unknown compute device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA was requested but no CUDA GPU is usable"):
            pick_device("cuda")
        monkeypatch.setenv("SONOSCOPE_DEVICE", "auto")
        assert pick_device().type in ("cpu", "mps")


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
