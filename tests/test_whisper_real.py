"""Real weights (offline packs) on real speech: WER, equality with faster-whisper, words, long form.

Each model is loaded once per module; the faster-whisper reference reads the same CTranslate2 folder.
"""

from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf
import torch

from engine.jobs import JobState
from engine.wer import normalize_words, wer
from engine.transcribe.whisper.loading import load, resolve_folder
from engine.transcribe.whisper.longform import transcribe


def test_wer_helper():
    assert wer(["he was not an ill disposed young man"], ["He was not an ill-disposed young man."]) == 0
    assert wer(["a b c d"], ["a x c"]) == 0.5
    assert wer("Mr. John Dashwood", "mister john dashwood") == 0
    assert wer(["a b", "c d e f"], ["a", "c d e f"]) == 1 / 6  # summed over the corpus, not averaged


def _setup(name: str):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    folder = resolve_folder(name)  # the offline packs, through the model store (checksums verified)
    model, tokenizer = load(folder, int8=False)
    return name, folder, model, tokenizer


@pytest.fixture(scope="module")
def tiny():
    return _setup("tiny.en")


@pytest.fixture(scope="module")
def base():
    return _setup("base")


@pytest.mark.parametrize("which", ["tiny", "base"])
def test_wer_and_equal_to_faster_whisper(which, request, librivox):
    from faster_whisper import WhisperModel

    name, folder, model, tokenizer = request.getfixturevalue(which)
    ref_model = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=2)
    ours, theirs = [], []
    for path, _ in librivox:
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 16000
        state = JobState()
        result = transcribe(state, model, tokenizer, path)
        assert state.partials == result.segments and state.progress == 1.0
        assert result.language == "en"
        ours.append(result.text)
        segs, _ = ref_model.transcribe(audio, beam_size=1)
        segs = list(segs)
        theirs.append("".join(s.text for s in segs).strip())
        # same segmentation and timestamps (but no end past the audio: faster-whisper's last
        # timestamp may lie in the window's padding), and the same scores
        dur = len(audio) / sr
        assert [(s.start, s.end) for s in result.segments] == \
            [(round(min(s.start, dur), 3), round(min(s.end, dur), 3)) for s in segs]
        assert result.segments[0].avg_logprob == pytest.approx(segs[0].avg_logprob, abs=2e-3)
        assert result.segments[0].no_speech_prob == pytest.approx(segs[0].no_speech_prob, abs=2e-3)
    assert ours == theirs
    score = wer([t for _, t in librivox], ours)
    assert score <= {"tiny.en": 0.06, "base": 0.03}[name], (score, ours)


def test_word_timestamps_follow_the_speech(tiny, librivox):
    name, folder, model, tokenizer = tiny
    path, ref = librivox[0]  # 7.1 s, 23 words
    result = transcribe(None, model, tokenizer, path, word_timestamps=True)
    words = [w for s in result.segments for w in s.words]
    assert normalize_words(" ".join(w.word for w in words)) == normalize_words(result.text)
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert words[0].start < 0.6 and 6.3 < words[-1].end <= 7.2
    # "Dashwood" is spoken around 1.1-1.7 s in this recording (faster-whisper: 1.10-1.68)
    dash = next(w for w in words if "dashwood" in w.word.lower())
    assert 0.9 < dash.start < 1.4 and 1.4 < dash.end < 1.9
    assert np.mean([w.probability for w in words]) > 0.7


def test_long_form_seeks_through_windows_and_cancels(tiny, librivox, tmp_path):
    name, folder, _, _ = tiny
    model, tokenizer = load(folder, int8=True)  # the default CPU path: int8 weights
    # 5 utterances with 2.5 s of silence between them: ~38 s, two or more windows
    gap = np.zeros(int(2.5 * 16000), np.float32)
    parts, spans, t = [], [], 0.0
    for path, _ in librivox:
        a, _ = sf.read(path, dtype="float32")
        spans.append((t, t + len(a) / 16000))
        parts += [a, gap]
        t += (len(a) + len(gap)) / 16000
    long = np.concatenate(parts)
    f = tmp_path / "long.flac"
    sf.write(f, long, 16000)
    state = JobState()
    result = transcribe(state, model, tokenizer, f)
    assert abs(result.duration - len(long) / 16000) < 0.01
    assert len(state.partials) == len(result.segments) >= 5
    assert max(s.seek for s in result.segments) > 0  # more than one window
    assert wer([" ".join(t for _, t in librivox)], [result.text]) <= 0.08
    # every utterance lies in a segment that covers where it was placed (segment edges are whole
    # seconds with this model, as faster-whisper gives on the same file)
    for (path, ref), (t0, t1) in zip(librivox, spans):
        seg = next(s for s in result.segments if normalize_words(s.text)[-3:] == normalize_words(ref)[-3:])
        assert seg.start <= t0 + 1.0 and seg.end >= t1 - 1.0 and seg.end - seg.start < (t1 - t0) + 6, (ref, seg)

    # cancel from a listener once the first segment appeared: stops with Cancelled, nothing more decoded
    from engine.errors import Cancelled

    state = JobState()
    state.add_listener(lambda s: s.cancel() if s.partials else None)
    with pytest.raises(Cancelled):
        transcribe(state, model, tokenizer, f)
    assert 1 <= len(state.partials) < len(result.segments)
