"""Parity of engine.models.ast with transformers' ASTForAudioClassification (tiny random weights), features
included, on real speech; checkpoint formats, checkpoint errors and int8 through the shared loader."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import engine.models as models  # noqa: E402
from engine.errors import CheckpointError  # noqa: E402
from engine.models import ast  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)

# (name, ASTConfig overrides, ASTFeatureExtractor overrides, clip): strides, patches, depths, lengths, label counts
VARIANTS = [
    ("p16-s10x10-len100", dict(max_length=100, num_labels=5), {}, 0),
    ("p14-s12x7-len256-3layers-noqkvbias", dict(patch_size=14, frequency_stride=12, time_stride=7, max_length=256,
                                                num_hidden_layers=3, num_labels=10, qkv_bias=False), {}, 1),
    ("p16-s10x10-len1024-527labels", dict(max_length=1024, num_labels=527, num_hidden_layers=1), {}, 2),
    ("p8-s8x4-64bins-len300-gelunew", dict(patch_size=8, frequency_stride=8, time_stride=4, max_length=300,
                                           num_mel_bins=64, num_labels=3, hidden_act="gelu_new",
                                           num_attention_heads=2, scale=0.4),
     dict(mean=-3.0, std=2.5), 3),
    ("p16-s16x16-len512-nonorm", dict(patch_size=16, frequency_stride=16, time_stride=16, max_length=512,
                                      num_labels=7, num_hidden_layers=4), dict(do_normalize=False), 4),
]


@pytest.fixture(scope="module")
def tf():
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


@pytest.fixture(scope="module")
def clips(librivox):
    """The five real LibriVox utterances (16 kHz mono float32), plus all five joined (~25 s)."""
    out = []
    for path, _ in librivox:
        a, sr = sf.read(str(path), dtype="float32")
        assert sr == 16000 and a.ndim == 1
        out.append(a)
    return out + [np.concatenate(out)]


def build(tf, folder, seed=0, fe_kw=None, scale=0.1, **overrides):
    """A random ASTForAudioClassification saved with save_pretrained (safetensors) + its ASTFeatureExtractor.

    Every tensor is perturbed (transformers zero-initialises the CLS/distillation tokens and position
    embeddings and sets LayerNorms to identity), so a swapped token, a wrong position or a missed
    LayerNorm bias shows in the logits; ``scale`` sets how far (larger: activations reach the range where
    erf and tanh GELU part)."""
    torch.manual_seed(seed)
    cfg = tf.ASTConfig(**{**TINY, **overrides})
    model = tf.ASTForAudioClassification(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    model.save_pretrained(str(folder))
    fe = tf.ASTFeatureExtractor(max_length=cfg.max_length, num_mel_bins=cfg.num_mel_bins, **(fe_kw or {}))
    fe.save_pretrained(str(folder))
    return model, fe


def reference(model, fe, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = fe(audio, sampling_rate=16000, return_tensors="pt")["input_values"]
    with torch.inference_mode():
        return x[0].numpy(), model(x).logits[0].numpy()


@pytest.mark.parametrize("name,overrides,fe_kw,clip", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_logits_match_transformers_on_real_speech(tf, tmp_path, clips, name, overrides, fe_kw, clip):
    model, fe = build(tf, tmp_path, fe_kw=fe_kw, **overrides)
    ours = ast.load_model(tmp_path)
    cfg = ours.config
    assert (cfg.max_length, cfg.num_mel_bins, cfg.num_labels) == (model.config.max_length, model.config.num_mel_bins,
                                                                  model.config.num_labels)
    assert (cfg.mean, cfg.std, cfg.do_normalize) == (fe.mean, fe.std, fe.do_normalize)
    assert cfg.num_tokens == model.audio_spectrogram_transformer.embeddings.position_embeddings.shape[1]
    worst = 0.0
    for audio in (clips[clip], clips[-1], clips[clip][:8000]):  # as is, longer than the window, 0.5 s (padded)
        ref_x, ref = reference(model, fe, audio)
        x = ast.features(audio, cfg)
        assert x.shape == ref_x.shape == (cfg.max_length, cfg.num_mel_bins)
        np.testing.assert_allclose(x, ref_x, atol=1e-4, rtol=0)
        got = ours.logits(audio)
        assert got.shape == ref.shape == (cfg.num_labels,)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
        assert ref.std() > 0.05  # the logits are not all alike: the comparison means something
        worst = max(worst, float(np.abs(got - ref).max()))
    print(f"{name}: max |logit difference| {worst:.2e}")


def test_batch_equals_one_by_one(tf, tmp_path, clips):
    model, fe = build(tf, tmp_path, max_length=256, num_labels=6)
    ours = ast.load_model(tmp_path)
    xs = torch.from_numpy(np.stack([ast.features(c, ours.config) for c in clips[:3]]))
    with torch.inference_mode():
        batch = ours(xs).numpy()
        ref = model(xs).logits.numpy()
    np.testing.assert_allclose(batch, ref, atol=1e-4, rtol=0)
    for i, c in enumerate(clips[:3]):
        np.testing.assert_allclose(batch[i], ours.logits(c), atol=1e-5, rtol=0)


def test_labels_in_index_order_and_family(tf, tmp_path):
    build(tf, tmp_path, max_length=100, num_labels=4)
    cfg_path = tmp_path / "config.json"
    d = json.loads(cfg_path.read_text())
    d["id2label"] = {"2": "Dog", "0": "Speech", "3": "Music", "1": "Bird"}  # written out of order
    cfg_path.write_text(json.dumps(d))
    assert ast.load_model(tmp_path).config.labels == ["Speech", "Bird", "Dog", "Music"]
    assert models.detect_family(tmp_path) == "ast"
    assert "ast" in models.FAMILIES


def test_defaults_without_preprocessor_config(tf, tmp_path, clips):
    model, fe = build(tf, tmp_path, max_length=100, num_labels=5)
    (tmp_path / "preprocessor_config.json").unlink()
    ours = ast.load_model(tmp_path)
    assert (ours.config.mean, ours.config.std, ours.config.sampling_rate) == (-4.2677393, 4.5689974, 16000)
    np.testing.assert_allclose(ours.logits(clips[0]), reference(model, fe, clips[0])[1], atol=1e-4, rtol=0)


def test_pytorch_model_bin_loads_the_same(tf, tmp_path, clips):
    model, fe = build(tf, tmp_path / "st", max_length=256, num_labels=5, frequency_stride=12, time_stride=7)
    want = ast.load_model(tmp_path / "st").logits(clips[1])
    from safetensors.torch import load_file

    hub = load_file(str(tmp_path / "st" / "model.safetensors"))  # the Hub's names (encoder.layer.N.attention...)
    memory = model.state_dict()  # transformers 5's own names (layers.N.attention.q_proj ...)
    assert set(hub) != set(memory)
    for name, sd in (("hub-names", hub), ("memory-names", memory)):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("config.json", "preprocessor_config.json"):
            shutil.copy(tmp_path / "st" / f, folder / f)
        torch.save(sd, folder / "pytorch_model.bin")
        got = ast.load_model(folder).logits(clips[1])
        np.testing.assert_array_equal(got, want)


def test_pickled_code_is_refused(tmp_path, tf):
    build(tf, tmp_path, max_length=100, num_labels=5)
    (tmp_path / "model.safetensors").unlink()
    torch.save({"weights": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="could not be read safely"):
        ast.load_model(tmp_path)


def test_missing_tensor_is_a_clear_checkpoint_error(tf, tmp_path):
    build(tf, tmp_path, max_length=100, num_labels=5)
    from safetensors.torch import load_file, save_file

    sd = load_file(str(tmp_path / "model.safetensors"))
    del sd["audio_spectrogram_transformer.encoder.layer.1.attention.attention.value.bias"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as e:
        ast.load_model(tmp_path)
    msg = str(e.value)
    assert "does not match the AST architecture" in msg and "missing" in msg
    assert "layers.1.attention.v_proj.bias" in msg and str(tmp_path) in msg


def test_id2label_disagreeing_with_classifier_is_a_clear_checkpoint_error(tf, tmp_path):
    build(tf, tmp_path, max_length=100, num_labels=5)
    cfg_path = tmp_path / "config.json"
    d = json.loads(cfg_path.read_text())
    d["id2label"] = {str(i): f"tag {i}" for i in range(4)}
    d["label2id"] = {f"tag {i}": i for i in range(4)}
    cfg_path.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match=r"names 4 labels \(id2label\) but the classifier gives 5 scores"):
        ast.load_model(tmp_path)
    d["id2label"] = {"0": "a", "1": "b", "2": "c", "3": "d", "7": "e"}  # 5 names, but a hole in the indices
    cfg_path.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match=r"id2label indices are not 0\.\.4"):
        ast.load_model(tmp_path)


def test_config_disagreeing_with_weights_is_a_checkpoint_error(tf, tmp_path):
    build(tf, tmp_path, max_length=100, num_labels=5)
    cfg_path = tmp_path / "config.json"
    good = cfg_path.read_text()
    cfg_path.write_text(json.dumps({**json.loads(good), "max_length": 200}))
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match=r"position_embeddings has shape \(1, 110, 32\), config.json implies "
                                              r"\(1, 230, 32\)"):
        ast.load_model(tmp_path)
    cfg_path.write_text(good)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"max_length": 1024}))
    with pytest.raises(CheckpointError, match="preprocessor_config.json has max_length=1024 but the model was built "
                                              "for 100"):
        ast.load_model(tmp_path)
    cfg_path.write_text(json.dumps({**json.loads(good), "model_type": "vit"}))
    with pytest.raises(CheckpointError, match="not audio-spectrogram-transformer"):
        ast.load_model(tmp_path)


def test_int8_through_the_shared_loader_keeps_top1(tf, tmp_path, clips):
    build(tf, tmp_path, hidden_size=96, num_attention_heads=4, intermediate_size=192, num_hidden_layers=3,
          max_length=1024, num_labels=527)
    fp32 = models.load(tmp_path, int8=False)
    q = models.load(tmp_path, int8=True)
    assert q is not fp32 and q.config == fp32.config
    assert isinstance(q.layers[0].mlp.fc1, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(fp32.layers[0].mlp.fc1, torch.nn.Linear)
    worst, corr = 0.0, 1.0
    # four real utterances whose fp32 top-1 leads by > 0.4 (int8 moves these random logits by ~0.15 at most;
    # clip 3's leader is 0.03 ahead, within that noise, so its top-1 depends on the CPU's int8 kernels)
    for audio in (clips[0], clips[1], clips[2], clips[4]):
        a, b = fp32.logits(audio), q.logits(audio)
        assert int(np.argmax(a)) == int(np.argmax(b))
        corr = min(corr, float(np.corrcoef(a, b)[0, 1]))
        worst = max(worst, float(np.abs(a - b).max() / np.ptp(a)))
    assert corr > 0.995
    assert worst < 0.05
    print(f"int8: top-1 identical, max |difference| {worst:.3f} of the logit range, correlation {corr:.4f}")
