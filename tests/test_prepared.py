"""Prepared models: written once per model and precision, reused, rebuilt when the source changes,
never unpickled, built without random initialisation; outputs identical to a fresh conversion."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from engine import models
from engine.models import prepared
from engine.models import whisper as W


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SONOSCOPE_MODELS", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "_cache", type(models._cache)())  # no model kept from other tests
    torch.manual_seed(0)
    cfg = W.WhisperConfig(n_mels=80, n_audio_ctx=50, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                          n_vocab=51864, n_text_ctx=24, n_text_state=32, n_text_head=4, n_text_layer=2,
                          alignment_heads=[(1, 0)])
    m = W.Whisper(cfg).eval()
    W.save_native(m, tmp_path / "w")
    return tmp_path / "w", tmp_path / "cache" / ".prepared"


def outputs(model):
    torch.manual_seed(1)
    mel, tokens = torch.randn(1, 80, 100), torch.randint(0, 51864, (1, 5))
    with torch.no_grad():
        return model(mel, tokens)


@pytest.mark.parametrize("int8", [True, False])
def test_written_once_reused_and_identical(folder, monkeypatch, int8):
    src, cache = folder
    fresh = W.load_model(src)
    fresh = fresh.quantize_int8() if int8 else fresh
    first = models.load(src, family="whisper", int8=int8)
    files = sorted(cache.glob("whisper-*.safetensors"))
    assert len(files) == 1 and ("int8" if int8 else "fp32") in files[0].name
    assert torch.equal(outputs(first), outputs(fresh))
    stamp = files[0].stat().st_mtime_ns
    monkeypatch.setattr(models, "_cache", type(models._cache)())  # a new process, as far as the cache knows
    monkeypatch.setattr(W, "load_model", lambda *a, **k: pytest.fail("converted again instead of reused"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    again = models.load(src, family="whisper", int8=int8)
    assert again is not first and torch.equal(outputs(again), outputs(fresh))
    assert sorted(cache.glob("whisper-*.safetensors")) == files and files[0].stat().st_mtime_ns == stamp
    if int8:
        from torch.ao.nn.quantized.dynamic import Linear as QLinear

        from engine.models.int8 import Int8Linear

        assert isinstance(again.decoder.proj, Int8Linear) and isinstance(again.decoder.blocks[0].fc1, Int8Linear)
        assert isinstance(again.encoder.blocks[0].fc1, QLinear)


def test_a_changed_source_is_prepared_again(folder, monkeypatch):
    src, cache = folder
    models.load(src, family="whisper", int8=True)
    (old,) = cache.glob("whisper-*.safetensors")
    sd = W.load_model(src).state_dict()
    sd["decoder.ln.bias"] += 1.0  # another version of the model, same place
    m = W.Whisper(W.load_model(src).cfg)
    m.load_state_dict(sd)
    W.save_native(m, src)
    os.utime(src / "model.safetensors", ns=(1, 1))
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    new = models.load(src, family="whisper", int8=True)
    (now,) = cache.glob("whisper-*.safetensors")
    assert now != old  # the stale one is gone, the new one written
    assert torch.equal(outputs(new), outputs(m.quantize_int8()))


def test_loading_skips_initialisation(folder, monkeypatch):
    src, _ = folder
    models.load(src, family="whisper", int8=True)  # prepare
    calls = []
    for name in prepared._INITS:
        real = getattr(torch.nn.init, name)
        monkeypatch.setattr(torch.nn.init, name, lambda t, *a, _r=real, _n=name, **k: calls.append(_n) or _r(t, *a, **k))
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    models.load(src, family="whisper", int8=True)
    assert calls == []
    W.Whisper(W.load_model(src).cfg)  # the check itself sees initialisation where there is some
    assert "kaiming_uniform_" in calls


def test_a_damaged_prepared_file_is_rebuilt(folder, monkeypatch):
    src, cache = folder
    models.load(src, family="whisper", int8=False)
    (f,) = cache.glob("whisper-*.safetensors")
    f.write_bytes(f.read_bytes()[:1000])
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    m = models.load(src, family="whisper", int8=False)
    assert torch.equal(outputs(m), outputs(W.load_model(src)))
    assert f.stat().st_size > 1000
