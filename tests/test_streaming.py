"""Streaming CTC state machine: streamed == offline with enough context; committed text only grows."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from engine.audio import io as eaudio
from engine.transcribe.ctc import CTCVocab, greedy
from engine.models.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model
from engine.transcribe.streaming import CTCStreamer, StreamUpdate, check_monotonic, replay, word_latencies

VOCAB = ["<pad>", "|"] + list("ETAONISRHD")


def tiny(norm: str = "group", stable: bool = False, normalize: bool = True, seed: int = 0) -> Wav2Vec2Model:
    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=4, feat_extract_norm=norm, do_stable_layer_norm=stable,
                         conv_bias=norm == "layer", do_normalize=normalize, vocab=list(VOCAB))
    m = Wav2Vec2Model(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
        m.lm_head.weight.mul_(40)  # a spread of tokens, so transcripts have many words
        spread = m.lm_head(m.wav2vec2(torch.randn(1, 32000))).std().item()
        m.lm_head.bias[0] += 1.0 * spread  # blanks and word delimiters as often as in speech
        m.lm_head.bias[1] += 0.5 * spread
    return m


@pytest.fixture(scope="module")
def speech(librivox):
    a, sr = eaudio.load(librivox[0][0], mono=True)
    assert sr == 16000
    return a[: 6 * sr]  # 6 s of real speech


def norm_space(s: str) -> str:
    return re.sub(r" +", " ", s).strip()


@pytest.mark.parametrize("norm,stable,normalize", [("group", False, True), ("layer", True, True),
                                                   ("layer", False, False)])
def test_full_context_stream_equals_offline(speech, norm, stable, normalize):
    m = tiny(norm, stable, normalize)
    off = m.logits(speech)
    s = CTCStreamer(m, chunk=0.5, left=60, right=60, keep_logits=True)
    ups = replay(s, speech, block=0.1)
    assert ups[-1].final
    assert s.logits.shape == off.shape
    assert np.abs(s.logits - off).max() < 1e-4
    g = greedy(off, CTCVocab.from_config(m.config))
    assert len(g.words) >= 5
    assert ups[-1].committed == norm_space(g.text)
    assert [(w.word, w.start, w.end) for w in s.words] == [(w.word, w.start, w.end) for w in g.words]


@pytest.mark.parametrize("norm,stable", [("group", False), ("layer", True)])
def test_limited_context_close_to_offline(speech, norm, stable):
    """Only the attention/positional context is cut when the utterance's normalisation statistics are
    pinned. Stated tolerance (tiny random model, whose attention is far less local than a trained
    one's): away from the edges, 1 s chunks with 2 s left / 0.5 s right context stay within 6% of
    the largest |logit| (measured 4.1-4.5%), 8 s / 2 s within 3% (measured 2.3-2.6%); the mean
    error shrinks as context grows, and >= 97% of frames keep their best token at 8 s / 2 s."""
    m = tiny(norm, stable)
    off = m.logits(speech)
    scale = np.abs(off).max()
    rel_max, rel_mean, agree = [], [], []
    for left, right in [(2.0, 0.5), (8.0, 2.0)]:
        s = CTCStreamer(m, chunk=1.0, left=left, right=right, keep_logits=True)
        s.fix_stats(speech)
        replay(s, speech, block=0.1)
        d = np.abs(s.logits - off)[25:-25]  # away from the utterance edges
        rel_max.append(d.max() / scale)
        rel_mean.append(d.mean() / np.abs(off).mean())
        agree.append((s.logits.argmax(-1) == off.argmax(-1)).mean())
    assert rel_max[0] < 0.06 and rel_max[1] < 0.03, rel_max
    assert rel_mean[1] < rel_mean[0], rel_mean
    assert agree[1] >= 0.97, agree


def test_committed_text_never_changes_and_tail_is_tentative(speech):
    m = tiny("group")
    shown: list[StreamUpdate] = []
    s = CTCStreamer(m, chunk=0.5, left=1.5, right=0.3)
    ups = replay(s, speech, block=0.08, on_update=shown.append)
    assert shown == ups and len(ups) >= 10
    check_monotonic(ups)
    assert any(u.tentative for u in ups[:-1])
    assert ups[-1].tentative == "" and ups[-1].committed == " ".join(w.word for w in s.words)
    # every update's committed words are exactly the words reported as new so far
    seen = []
    for u in ups:
        seen += [w.word for w in u.new_words]
        assert " ".join(seen) == u.committed
        assert u.final_time <= u.audio_time + 1e-9
    # committed words carry increasing times within the audio
    starts = [w.start for w in s.words]
    assert starts == sorted(starts) and s.words[-1].end <= len(speech) / 16000 + 1e-6
    with pytest.raises(RuntimeError):
        s.insert_audio(speech[:100])


def test_replay_is_deterministic_whatever_the_block_size(speech):
    m = tiny("layer", True)
    a = CTCStreamer(m, chunk=0.6, left=1.0, right=0.4, keep_logits=True)
    b = CTCStreamer(m, chunk=0.6, left=1.0, right=0.4, keep_logits=True)
    ua = replay(a, speech, block=0.05)
    ub = replay(b, speech, block=0.37)
    assert ua[-1].committed == ub[-1].committed
    assert np.array_equal(a.logits, b.logits)
    # process() only runs when a whole chunk + look-ahead has arrived: memory stays bounded
    assert a.buf.data.size <= (a.left + a.chunk + a.right + 2) * a.stride + a.field


def test_short_and_empty_input():
    m = tiny("group")
    s = CTCStreamer(m)
    s.insert_audio(np.zeros(200, np.float32))
    assert s.process() is None
    u = s.finish()
    assert u.final and u.committed == "" and u.tentative == ""
    s.reset()
    assert s.finish().committed == ""


@pytest.mark.parametrize("chunk, right", [(0.5, 0.3), (1.0, 0.6)])
def test_latency_simulation_reports_rtf(speech, monkeypatch, chunk, right):
    import types

    import engine.transcribe.streaming as S

    m = tiny("group")
    block = 0.1
    factory = lambda: CTCStreamer(m, chunk=chunk, left=1.0, right=right)  # noqa: E731
    r = word_latencies(factory, speech, block=block)
    words, lat = r["words"], np.array(r["latencies"])
    # every word committed before the end of the audio has a latency (only those of finish() have none)
    assert len(words) >= 10 and len(lat) >= 0.75 * len(words), (len(words), len(lat))
    # a word is committed once the look-ahead after its chunk has arrived: never sooner than `right`
    assert lat.min() >= right - 1e-9, lat.min()
    assert r["rtf"] > 0 and len(r["compute"]) >= len(speech) / 16000 / chunk - 1  # (speed: benchmarks/bench_ctc.py)

    # without compute time (a frozen clock) the latency is the algorithm's alone: at least the
    # look-ahead, at most a chunk (the word's delimiter may fall in the next one) + chunk + look-ahead + block
    monkeypatch.setattr(S, "time", types.SimpleNamespace(perf_counter=lambda: 0.0))
    r0 = word_latencies(factory, speech, block=block)
    lat0 = np.array(r0["latencies"])
    assert [w.word for w in r0["words"]] == [w.word for w in words] and len(lat0) == len(lat)
    assert r0["rtf"] == 0 and set(r0["compute"]) == {0.0}
    assert lat0.min() >= right - 1e-9 and lat0.max() <= 2 * chunk + right + block + 1e-9, (lat0.min(), lat0.max())
    # compute only ever delays a word
    assert (lat >= lat0 - 1e-9).all()
    # a clock on which every model step takes 0.1 s: each word waits for its own update's compute
    ticks = iter(range(10**6))
    monkeypatch.setattr(S, "time", types.SimpleNamespace(perf_counter=lambda: 0.1 * next(ticks)))
    r2 = word_latencies(factory, speech, block=block)
    lat2 = np.array(r2["latencies"])
    assert len(lat2) == len(lat0) and (lat2 >= lat0 + 0.1 - 1e-9).all()
    assert r2["rtf"] == pytest.approx(sum(r2["compute"]) / (len(speech) / 16000)) and r2["rtf"] > 0.1 / chunk - 0.05


def test_feature_cache_is_exact_with_fixed_statistics(speech):
    """Reusing the CNN features of earlier windows changes nothing when the statistics are fixed,
    and little with running statistics."""
    m = tiny("group")
    speech = speech[: 4 * 16000]
    outs = {}
    for cache in (True, False):
        for fixed in (True, False):
            s = CTCStreamer(m, chunk=0.4, left=0.8, right=0.2, keep_logits=True, cache_features=cache)
            if fixed:
                s.fix_stats(speech)
            replay(s, speech, block=0.1)
            outs[cache, fixed] = s.logits
    assert np.abs(outs[True, True] - outs[False, True]).max() < 1e-4
    d = np.abs(outs[True, False] - outs[False, False])
    assert d[100:].mean() / np.abs(outs[False, False]).mean() < 0.02  # after 2 s
