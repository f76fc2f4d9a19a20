"""engine.audio.dsp against its references: librosa's mel matrix (as shipped by openai-whisper), whisper's
log-mel, torchaudio-style Kaldi fbank and transformers' ASTFeatureExtractor, on real speech."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.audio import dsp

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def speech(librivox):
    return [sf.read(str(p), dtype="float32")[0] for p, _ in librivox]


@pytest.fixture(scope="module")
def whisper_filters():
    import whisper

    with np.load(os.path.join(os.path.dirname(whisper.__file__), "assets", "mel_filters.npz")) as f:
        return {80: f["mel_80"], 128: f["mel_128"]}


def test_constants():
    assert (dsp.SAMPLE_RATE, dsp.N_FFT, dsp.HOP_LENGTH, dsp.CHUNK_LENGTH) == (16000, 400, 160, 30)
    assert dsp.N_SAMPLES == 480000 and dsp.N_FRAMES == 3000


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_equal_whisper_assets(n_mels, whisper_filters):
    ours = dsp.mel_filters(16000, 400, n_mels)
    ref = whisper_filters[n_mels]
    assert ours.shape == ref.shape == (n_mels, 201) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_mel_filters_htk_and_unnormalised():
    w = dsp.mel_filters(22050, 1024, 40, fmin=50, fmax=8000, htk=True, norm=None)
    assert w.shape == (40, 513)
    assert np.isclose(w.max(), 1.0, atol=0.05)  # unnormalised triangles peak near 1
    assert np.all(w[:, np.fft.rfftfreq(1024, 1 / 22050) > 8000] == 0)
    np.testing.assert_allclose(dsp.mel_to_hz(dsp.hz_to_mel([100.0, 1000.0, 5000.0], htk=True), htk=True),
                               [100.0, 1000.0, 5000.0])
    np.testing.assert_allclose(dsp.mel_to_hz(dsp.hz_to_mel([100.0, 1000.0, 5000.0])), [100.0, 1000.0, 5000.0])
    with pytest.raises(ValueError):
        dsp.mel_filters(16000, 400, 80, norm="l2")


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("padding", [0, dsp.N_SAMPLES])
def test_log_mel_equals_whisper(speech, n_mels, padding):
    import whisper.audio as wa

    for x in speech[:3]:
        ref = wa.log_mel_spectrogram(torch.from_numpy(x), n_mels, padding=padding)
        ours = dsp.log_mel_spectrogram(x, n_mels, padding=padding)
        assert ours.shape == ref.shape == (n_mels, (x.size + padding) // dsp.HOP_LENGTH)
        assert (ours - ref).abs().max().item() < 1e-4


def test_log_mel_batched_and_window(speech):
    import whisper.audio as wa

    x = dsp.pad_or_trim(speech[1])
    batch = torch.from_numpy(np.stack([x, 0.5 * x]))
    ours = dsp.log_mel_spectrogram(batch)
    assert ours.shape == (2, 80, dsp.N_FRAMES)
    ref = wa.log_mel_spectrogram(torch.from_numpy(x))
    assert (ours[0] - ref).abs().max().item() < 1e-4
    # float64 input is accepted (computed in float32 like whisper's)
    assert (dsp.log_mel_spectrogram(x.astype(np.float64)) - ref).abs().max().item() < 1e-4
    # the per-batch floor (max - 8) is taken over the whole batch, as whisper does
    assert ours[1].min().item() >= ours.max().item() - 2.0 - 1e-6


def test_pad_or_trim_numpy_and_torch():
    import whisper.audio as wa

    rng = np.random.default_rng(0)
    for n in (100, 480000, 500000):
        a = rng.standard_normal((2, n)).astype(np.float32)
        for arr in (a, torch.from_numpy(a)):
            ours, ref = dsp.pad_or_trim(arr), wa.pad_or_trim(arr)
            assert tuple(ours.shape) == (2, 480000)
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
    # another axis (mel frames in the middle)
    m = rng.standard_normal((80, 10, 3)).astype(np.float32)
    assert dsp.pad_or_trim(m, 3000, axis=1).shape == (80, 3000, 3)
    assert tuple(dsp.pad_or_trim(torch.from_numpy(m), 3000, axis=1).shape) == (80, 3000, 3)
    np.testing.assert_array_equal(dsp.pad_or_trim(m, 4, axis=1), m[:, :4])


def test_stft_istft_round_trip_and_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16000)
    spec = dsp.stft(x, 1024, 256)
    assert spec.shape == (2, 3, 513, 16000 // 256 + 1) and spec.is_complex()
    ref = torch.stft(x[1, 2], 1024, 256, window=torch.hann_window(1024), return_complex=True)
    assert torch.allclose(spec[1, 2], ref)
    y = dsp.istft(spec, 1024, 256, length=16000)
    assert y.shape == x.shape
    assert (y - x).abs().max().item() < 1e-5
    # numpy input, custom window, no centring
    w = torch.hann_window(512).sqrt()
    s2 = dsp.stft(x[0, 0].numpy(), 512, 128, window=w, center=False)
    assert s2.shape == (257, 1 + (16000 - 512) // 128)


def _torchaudio_style_fbank_reference(x: np.ndarray, window: str) -> np.ndarray:
    """An independent, loop-per-frame transcription of Kaldi's compute-fbank (float64)."""
    win, shift, padded = 400, 160, 512
    n = 1 + (x.size - win) // shift
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(8000.0)
    delta = (hi - lo) / 129
    bins = mel(np.arange(256) * 16000 / 512)
    banks = np.zeros((128, 257))
    for m in range(128):
        left, center, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
        for k, b in enumerate(bins):
            if left < b < right:
                banks[m, k] = (b - left) / (center - left) if b <= center else (right - b) / (right - center)
    i = np.arange(win)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * i / (win - 1))
    w = hann ** 0.85 if window == "povey" else hann
    out = np.empty((n, 128))
    for t in range(n):
        f = x[t * shift: t * shift + win].astype(np.float64)
        f = f - f.mean()
        f = np.concatenate([[f[0] - 0.97 * f[0]], f[1:] - 0.97 * f[:-1]])
        p = np.abs(np.fft.rfft(f * w, padded)) ** 2
        out[t] = np.log(np.maximum(banks @ p, np.finfo(np.float32).eps))
    return out


@pytest.mark.parametrize("window", ["povey", "hanning"])
def test_kaldi_fbank_matches_loop_reference(speech, window):
    x = speech[1][:16000]
    ours = dsp.kaldi_fbank(x, window=window).numpy()
    ref = _torchaudio_style_fbank_reference(x, window)
    assert ours.shape == ref.shape == (1 + (16000 - 400) // 160, 128)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_kaldi_fbank_options():
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    e = dsp.kaldi_fbank(x, num_mel_bins=40, use_energy=True)
    assert e.shape == (48, 41)
    np.testing.assert_allclose(e[:, 1:].numpy(), dsp.kaldi_fbank(x, num_mel_bins=40).numpy())
    assert dsp.kaldi_fbank(x[:100]).shape == (0, 128)  # shorter than one frame
    assert dsp.kaldi_fbank(x, round_to_power_of_two=False, window="hamming").shape == (48, 128)
    with pytest.raises(ValueError):
        dsp.kaldi_fbank(x, window="triangle")
    with pytest.raises(ValueError):
        dsp.kaldi_fbank(x, low_freq=9000)


@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
def test_ast_features_equal_transformers(speech):
    from transformers import ASTFeatureExtractor

    fe = ASTFeatureExtractor()
    # without torchaudio the extractor takes its numpy path: that is the one matched here
    assert hasattr(fe, "mel_filters"), "transformers took the torchaudio path; this test targets the numpy one"
    long = np.concatenate(speech[:3])  # > 10.24 s: exercises truncation
    assert long.size > 1024 * 160 + 400
    for x in speech + [long, speech[1][:3000]]:
        ref = fe(x, sampling_rate=16000, return_tensors="np").input_values[0]
        ours = dsp.ast_features(x)
        assert ours.shape == ref.shape == (1024, 128) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
