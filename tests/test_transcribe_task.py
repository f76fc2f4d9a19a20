"""The task functions shared by panels and CLI (transcribe_file, separate_file, live_session), the
shared model cache, and the user-visible fixes of the engine layout issue."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine import models
from engine.audio import io as eaudio
from engine.errors import AudioFileNotFound, DeviceError
from engine.jobs import JobRunner, JobStatus
from engine.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model
from engine.transcribe.ctc import CTCVocab, greedy
from engine.transcribe.task import transcribe_file

VOCAB = ["<pad>", "|"] + list("ETAONISRHD")


def write_ctc_folder(folder, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2), seed=0):
    """A tiny random wav2vec2 CTC checkpoint in the Hugging Face layout (config.json + safetensors)."""
    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, conv_dim=(16,) * len(conv_stride), conv_stride=conv_stride,
                         conv_kernel=conv_kernel, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         feat_extract_norm="layer", conv_bias=True, vocab=list(VOCAB))
    m = Wav2Vec2Model(cfg).eval()
    with torch.no_grad():
        m.lm_head.weight.mul_(40)  # many different tokens: many words
        m.lm_head.bias[1] += 2.0  # and word delimiters
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"], "vocab_size": len(VOCAB), "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
        "conv_dim": [16] * len(conv_stride), "conv_stride": list(conv_stride), "conv_kernel": list(conv_kernel),
        "conv_bias": True, "feat_extract_norm": "layer", "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4, "pad_token_id": 0}))
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(folder / "model.safetensors"))
    return m


@pytest.fixture(scope="module")
def ctc_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctc")
    return d, write_ctc_folder(d)


def test_ctc_timestamps_follow_the_checkpoints_own_stride(tmp_path, librivox):
    """A checkpoint with conv strides (5, 4, 4) has 5 ms frames, not wav2vec2's 20 ms: every word stays
    inside the file, at the time of its frames."""
    m = write_ctc_folder(tmp_path / "w", conv_stride=(5, 4, 4), conv_kernel=(10, 3, 3))
    wav = librivox[0][0]
    duration = eaudio.info(wav).duration
    t = transcribe_file(None, wav, engine="ctc", model=tmp_path / "w", int8=False)
    words = t.words
    assert len(words) > 20
    assert max(w.end for w in words) <= duration + 1e-6
    assert t.duration == pytest.approx(duration)
    assert t.language is None  # a CTC model does not know its language: say nothing rather than "en"
    a, _ = eaudio.load(wav, mono=True)
    ref = greedy(m.logits(a), CTCVocab.from_config(m.config), frame_seconds=80 / 16000)
    assert [(w.text, w.start, w.end) for w in words] == [(w.word, w.start, w.end) for w in ref.words]
    for s in t.segments:  # segments span exactly their words
        assert (s.start, s.end) == (s.words[0].start, s.words[-1].end)


def test_a_missing_file_fails_before_any_model_is_loaded(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(models, "load", lambda *a, **k: calls.append(a) or pytest.fail("model loaded"))
    with pytest.raises(AudioFileNotFound):
        transcribe_file(None, tmp_path / "missing.wav", engine="ctc", model=tmp_path)
    assert calls == []


def test_models_load_caches_and_loads_once_under_concurrency(ctc_folder, monkeypatch):
    d, _ = ctc_folder
    real = models._build
    built = []

    def slow_build(*args):
        built.append(args)
        threading.Event().wait(0.2)  # two callers overlap inside the load
        return real(*args)

    monkeypatch.setattr(models, "_build", slow_build)
    monkeypatch.setattr(models, "_cache", type(models._cache)())
    got = []
    threads = [threading.Thread(target=lambda: got.append(models.load(d, int8=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and got[0] is got[1]
    assert models.load(d, int8=False) is got[0]
    assert models.load(d, int8=True) is not got[0]  # another precision is another model
    assert len(built) == 2


def test_compute_device_is_honoured_by_the_stems_task(tmp_path, monkeypatch):
    """The Stems panel's device reaches the model load (it used to run on the CPU whatever was chosen)."""
    from engine.stems import separate

    path = tmp_path / "x.wav"
    eaudio.save(path, np.zeros((2, 4410), np.float32), 44100)
    asked = []

    def fake_load(name, state=None, device="cpu", int8=None, family=None):
        asked.append((name, device))
        raise RuntimeError("stop here")

    monkeypatch.setattr(models, "load", fake_load)
    with pytest.raises(RuntimeError, match="stop here"):
        separate.separate_file(None, path, tmp_path / "out", stems=4, device="cpu")
    assert asked == [("spleeter-4stems", "cpu")]
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA was requested"):
            separate.separate_file(None, path, tmp_path / "out", device="cuda")
        assert len(asked) == 1


def test_a_transcription_runs_while_a_live_session_is_on(ctc_folder, librivox):
    """A live session holds its own thread: a file transcription submitted meanwhile finishes while
    the session is still listening, instead of queueing silently behind it."""
    from engine.audio.capture import ReplaySource
    from engine.transcribe.live import live_session

    d, _ = ctc_folder
    runner = JobRunner()
    try:
        source = ReplaySource(librivox[2][0], speed=1.0)  # real time: the session lasts the whole utterance
        session = runner.start_session("live", live_session, engine="ctc", model=str(d), source=source,
                                       int8=False, device="cpu")
        job = runner.submit("transcribe", transcribe_file, librivox[4][0], engine="ctc", model=d, int8=False,
                            device="cpu")
        assert job.wait(60), "the transcription never ran"
        assert job.status is JobStatus.DONE and job.result.text
        assert session.status is JobStatus.RUNNING  # still listening
        session.cancel()
        assert session.wait(30) and session.status is JobStatus.DONE
        assert session.result["transcript"].duration > 0
    finally:
        runner.shutdown()
