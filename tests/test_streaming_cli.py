"""CLI: `live --file` replay and `transcribe --engine ctc` on a tiny wav2vec2 folder; no-device message;
long files through the overlap-add harness; the catalog entries."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import save_file

from engine.audio import io as eaudio
from engine.cli import main as cli
from engine.transcribe.ctc import CTCVocab, greedy, long_logits
from engine.transcribe.streaming import CTCStreamer, replay
from tests.test_streaming import VOCAB, tiny


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A wav2vec2 CTC folder in Hugging Face layout written from our own tiny model."""
    m = tiny("layer", True, True)
    d = tmp_path_factory.mktemp("w2v")
    c = m.config
    cfg = {"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"], "vocab_size": c.vocab_size,
           "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
           "num_attention_heads": c.num_attention_heads, "intermediate_size": c.intermediate_size,
           "conv_dim": list(c.conv_dim), "conv_stride": list(c.conv_stride), "conv_kernel": list(c.conv_kernel),
           "conv_bias": c.conv_bias, "feat_extract_norm": c.feat_extract_norm,
           "do_stable_layer_norm": c.do_stable_layer_norm, "num_conv_pos_embeddings": c.num_conv_pos_embeddings,
           "num_conv_pos_embedding_groups": c.num_conv_pos_embedding_groups, "pad_token_id": 0}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (d / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(d / "model.safetensors"))
    return d, m


def test_transcribe_engine_ctc(tiny_folder, librivox, tmp_path, capsys):
    d, m = tiny_folder
    wav = librivox[4][0]
    rc = cli(["transcribe", "--engine", "ctc", "--model", str(d), "--fp32", str(wav), "--format", "txt", "json",
              "--out", str(tmp_path)])
    assert rc == 0
    a, _ = eaudio.load(wav, mono=True)
    expect = greedy(m.logits(a), CTCVocab.from_config(m.config))
    assert len(expect.words) > 3
    txt = (tmp_path / f"{wav.stem}.txt").read_text()
    assert " ".join(txt.split()) == " ".join(expect.text.split())
    j = json.loads((tmp_path / f"{wav.stem}.json").read_text())
    words = [w for s in j["segments"] for w in s["words"]]
    assert [w["word"].strip() for w in words] == [w.word for w in expect.words]
    assert [w["start"] for w in words] == [w.start for w in expect.words]


def test_transcribe_engine_ctc_with_beam_search(tiny_folder, librivox, tmp_path):
    from engine.transcribe.ctc import beam_search

    d, m = tiny_folder
    wav = librivox[4][0]
    a, _ = eaudio.load(wav, mono=True)
    vocab = CTCVocab.from_config(m.config)
    logits = m.logits(a)
    want = beam_search(logits, vocab, beam_width=16)
    assert want.text != greedy(logits, vocab).text  # on this utterance the beam search changes the text
    rc = cli(["transcribe", "--engine", "ctc", "--beam-size", "16", "--model", str(d), "--fp32", str(wav),
              "--format", "txt", "json", "--out", str(tmp_path)])
    assert rc == 0
    assert " ".join((tmp_path / f"{wav.stem}.txt").read_text().split()) == " ".join(want.text.split())
    j = json.loads((tmp_path / f"{wav.stem}.json").read_text())
    words = [w for s in j["segments"] for w in s["words"]]
    assert [(w["word"].strip(), w["start"]) for w in words] == [(w.word, w.start) for w in want.words]


def test_live_file_replay_writes_transcript_and_audio(tiny_folder, librivox, tmp_path):
    d, m = tiny_folder
    wav = librivox[1][0]
    out, aud = tmp_path / "t.json", tmp_path / "s.wav"
    rc = cli(["live", "--engine", "ctc", "--model", str(d), "--fp32", "--file", str(wav), "--out", str(out),
              "--save-audio", str(aud)])
    assert rc == 0
    a, _ = eaudio.load(wav, mono=True)
    s = CTCStreamer(m)
    ups = replay(s, a, block=0.1)
    j = json.loads(out.read_text())
    assert j["text"] == ups[-1].committed and j["text"]
    back, sr = eaudio.load(aud, mono=True)
    assert sr == 16000 and abs(len(back) - len(a)) <= 1


def test_live_without_device_says_so(capsys):
    rc = cli(["live", "--device", "no-such-microphone-xyz"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "input device" in err and "--file" in err


def test_long_logits_file_equals_array_and_whole_signal(tiny_folder, librivox):
    d, m = tiny_folder
    wav = librivox[0][0]
    a, _ = eaudio.load(wav, mono=True)
    whole = m.logits(a)
    arr = long_logits(m, a, segment=30.0)  # one segment: the whole signal
    assert arr.shape == whole.shape and np.abs(arr - whole).max() < 1e-3
    lf = long_logits(m, wav, segment=3.0, overlap=1.0)  # streamed from the file in 3 s segments
    la = long_logits(m, a, segment=3.0, overlap=1.0)
    assert lf.shape == whole.shape and np.abs(lf - la).max() < 1e-5
    assert (la.argmax(-1) == whole.argmax(-1)).mean() > 0.8


def test_catalog_entries():
    from engine.store import ModelStore

    store = ModelStore(root="/nonexistent-sonoscope-test-root")
    ids = {s.id: s for s in store.catalog() if s.family == "wav2vec2"}
    assert set(ids) == {"wav2vec2-base-960h", "wav2vec2-large-960h-lv60-self", "hubert-large-ls960-ft"}
    for spec in ids.values():
        (src,) = spec.sources
        assert src["type"] == "hub" and src["revision"] == "main" and src["repo"].startswith("facebook/")
        files = set(src["files"])
        assert {"config.json", "vocab.json", "preprocessor_config.json"} <= files
        assert files & {"model.safetensors", "pytorch_model.bin"}
