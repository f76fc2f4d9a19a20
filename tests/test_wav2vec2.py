"""Parity of engine.models.wav2vec2 with transformers' Wav2Vec2/HuBERT models (tiny random weights)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.transcribe.ctc import CTCVocab, greedy, ids_to_text  # noqa: E402
from engine.errors import CheckpointError, ModelError  # noqa: E402
from engine.models.wav2vec2 import load_model, normalize_waveform, read_config  # noqa: E402

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "'", "S", "H", "D"]
TINY = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4, pad_token_id=0)

# (name, family, config overrides) covering every variant in use
CTC_VARIANTS = [
    ("w2v-group-postnorm", "wav2vec2", dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)),
    ("w2v-layer-stable-bias", "wav2vec2", dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    ("w2v-layer-postnorm-bias", "wav2vec2", dict(feat_extract_norm="layer", do_stable_layer_norm=False, conv_bias=True)),
    ("w2v-group-stable", "wav2vec2", dict(feat_extract_norm="group", do_stable_layer_norm=True, conv_bias=False)),
    ("hubert-group-postnorm", "hubert", dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False)),
    ("hubert-layer-stable-bias-noprojln", "hubert",
     dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, feat_proj_layer_norm=False)),
]


@pytest.fixture(scope="module")
def tf():
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


def save_processor(tf, folder, do_normalize=True):
    (folder / "vocab.json").parent.mkdir(parents=True, exist_ok=True)
    vj = folder / "vocab_src.json"
    vj.write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tok = tf.Wav2Vec2CTCTokenizer(str(vj), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    fe = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                     do_normalize=do_normalize, return_attention_mask=False)
    proc = tf.Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok)
    proc.save_pretrained(str(folder))
    vj.unlink()
    return proc


def build(tf, folder, family, head="ctc", **overrides):
    torch.manual_seed(0)
    cfg_cls = tf.HubertConfig if family == "hubert" else tf.Wav2Vec2Config
    cfg = cfg_cls(**{**TINY, **overrides})
    cls = {("wav2vec2", "ctc"): tf.Wav2Vec2ForCTC, ("hubert", "ctc"): tf.HubertForCTC,
           ("wav2vec2", "sequence"): tf.Wav2Vec2ForSequenceClassification,
           ("hubert", "sequence"): tf.HubertForSequenceClassification,
           ("wav2vec2", "frame"): tf.Wav2Vec2ForAudioFrameClassification}[(family, head)]
    model = cls(cfg).eval()
    # random init leaves the LayerNorms at identity: perturb every parameter so each one matters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(folder))
    return model


def speechlike(seconds=1.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.1 * rng.standard_normal(t.size)
    return (x + 0.05).astype(np.float32)  # a DC offset so normalisation matters


@pytest.mark.parametrize("name,family,over", CTC_VARIANTS, ids=[v[0] for v in CTC_VARIANTS])
def test_ctc_logits_and_transcripts_match_transformers(tf, tmp_path, name, family, over):
    ref = build(tf, tmp_path, family, **over)
    proc = save_processor(tf, tmp_path)
    mine = load_model(tmp_path)
    assert mine.config.model_type == family and mine.config.head == "ctc"
    assert mine.config.vocab == VOCAB and mine.config.do_normalize
    audio = speechlike()
    iv = proc(audio, sampling_rate=16000, return_tensors="pt").input_values
    assert torch.allclose(mine.prepare(audio), iv, atol=1e-5)
    with torch.no_grad():
        r = ref(iv).logits[0].numpy()
    m = mine.logits(audio)
    assert m.shape == r.shape == (mine.config.num_frames(audio.size), len(VOCAB))
    assert np.abs(m - r).max() < 1e-4
    # greedy transcripts equal processor.batch_decode exactly: on the model's own logits and on
    # logits with a wide spread of tokens (a tiny random model mostly repeats one token)
    vocab = CTCVocab.from_config(mine.config)
    rng = np.random.default_rng(1)
    batch = [r, m, rng.standard_normal((60, len(VOCAB))) * 3, rng.standard_normal((3, len(VOCAB)))]
    ref_text = proc.batch_decode([b.argmax(-1) for b in batch])
    assert [greedy(b, vocab).text for b in batch] == ref_text


def test_pytorch_bin_and_legacy_weight_norm_names(tf, tmp_path):
    """pytorch_model.bin (weights_only) with pre-parametrization ``weight_g``/``weight_v`` keys."""
    ref = build(tf, tmp_path / "src", "wav2vec2", feat_extract_norm="group")
    from safetensors.torch import load_file

    sd = load_file(str(tmp_path / "src" / "model.safetensors"))
    legacy = {k.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): v for k, v in sd.items()}
    assert any(k.endswith("weight_g") for k in legacy)
    out = tmp_path / "bin"
    out.mkdir()
    shutil.copy(tmp_path / "src" / "config.json", out / "config.json")
    torch.save(legacy, out / "pytorch_model.bin")
    mine = load_model(out)
    x = speechlike(0.8, seed=3)
    with torch.no_grad():
        r = ref(torch.from_numpy(x)[None]).logits[0].numpy()
    mine.config.do_normalize = False  # no preprocessor_config.json: feed the raw waveform as the reference got
    assert np.abs(mine.logits(x) - r).max() < 1e-4


def test_unsafe_pickle_refused(tmp_path):
    from fractions import Fraction  # any class outside torch's weights_only allow-list

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"],
                                                      "vocab_size": 5}))
    torch.save({"x": Fraction(1, 3)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError):
        load_model(tmp_path)


def test_bad_folders(tmp_path):
    with pytest.raises(ModelError):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(ModelError):
        read_config(tmp_path)


def test_mismatched_checkpoint_is_reported(tf, tmp_path):
    build(tf, tmp_path, "wav2vec2")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["num_hidden_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path)


@pytest.mark.parametrize("family,head,over", [
    ("wav2vec2", "sequence", dict(num_labels=5, classifier_proj_size=8)),
    ("wav2vec2", "sequence", dict(num_labels=4, classifier_proj_size=8, use_weighted_layer_sum=True,
                                  feat_extract_norm="layer", do_stable_layer_norm=True)),
    ("hubert", "sequence", dict(num_labels=3, classifier_proj_size=8, use_weighted_layer_sum=True)),
    ("wav2vec2", "frame", dict(num_labels=3)),
    ("wav2vec2", "frame", dict(num_labels=3, use_weighted_layer_sum=True, feat_extract_norm="layer",
                               do_stable_layer_norm=True, conv_bias=True)),
])
def test_classification_heads_match(tf, tmp_path, family, head, over):
    ref = build(tf, tmp_path, family, head=head, **over)
    mine = load_model(tmp_path)
    assert mine.config.head == head and mine.config.num_labels == over["num_labels"]
    mine.config.do_normalize = False
    x = speechlike(1.0, seed=5)
    with torch.no_grad():
        r = ref(torch.from_numpy(x)[None]).logits[0].numpy()
    m = mine.logits(x)
    assert m.shape == r.shape
    assert np.abs(m - r).max() < 1e-4


def test_normalize_matches_feature_extractor(tf):
    fe = tf.Wav2Vec2FeatureExtractor(do_normalize=True)
    x = speechlike(0.5, seed=7) * 3
    ref = fe(x, sampling_rate=16000, return_tensors="np").input_values[0]
    assert np.abs(normalize_waveform(x) - ref).max() < 1e-5
    assert ids_to_text([], CTCVocab(VOCAB)) == ""
