"""CTC decoding: greedy vs the HF tokenizer, prefix beam search vs exhaustive search, lexicon/LM fixes."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.ctc import CTCVocab, WordLM, beam_search, greedy, log_softmax  # noqa: E402

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONISRHDLUCMFWGYPBVKXJQZ") + ["'"]
V = CTCVocab(VOCAB, blank=0, delimiter="|")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import transformers

    vj = tmp_path_factory.mktemp("tok") / "vocab.json"
    vj.write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    return transformers.Wav2Vec2CTCTokenizer(str(vj), word_delimiter_token="|")


def test_greedy_text_and_offsets_match_tokenizer(tokenizer):
    rng = np.random.default_rng(0)
    for trial in range(20):
        T = int(rng.integers(1, 80))
        # bias toward blanks and repeats, like a real CTC output
        logits = rng.standard_normal((T, len(VOCAB))) * 2
        logits[:, 0] += rng.uniform(0, 2)
        logits[:, 4] += rng.uniform(0, 1)
        ids = logits.argmax(-1)
        ref = tokenizer.decode(ids, output_char_offsets=True, output_word_offsets=True)
        got = greedy(logits, V)
        assert got.text == ref.text
        assert [(c["char"], c["start_frame"], c["end_frame"]) for c in got.chars] == \
            [(c["char"], c["start_offset"], c["end_offset"]) for c in ref.char_offsets]
        assert [(w.word, w.start_frame, w.end_frame) for w in got.words] == \
            [(w["word"], w["start_offset"], w["end_offset"]) for w in ref.word_offsets]
        for w in got.words:  # 20 ms per frame
            assert w.start == pytest.approx(w.start_frame * 0.02) and w.end == pytest.approx(w.end_frame * 0.02)


def spell(text: str, frames_per_char: int = 3, p: float = 0.9, confusions: dict | None = None) -> np.ndarray:
    """Log-probabilities of a clean CTC path spelling ``text`` with a blank after each character."""
    rows = []
    confusions = confusions or {}
    for i, ch in enumerate(text):
        tok = "|" if ch == " " else ch
        for _ in range(frames_per_char):
            r = np.full(len(VOCAB), (1 - p) / (len(VOCAB) - 1))
            if i in confusions:  # position i: split the mass between two spellings
                (a, pa), (b, pb) = confusions[i]
                r[:] = (1 - pa - pb) / (len(VOCAB) - 2)
                r[VOCAB.index(a)], r[VOCAB.index(b)] = pa, pb
            else:
                r[VOCAB.index(tok)] = p
            rows.append(r)
        r = np.full(len(VOCAB), (1 - p) / (len(VOCAB) - 1))
        r[0] = p
        rows.append(r)
    return np.log(np.array(rows))


def ctc_label_prob(lp: np.ndarray, labels: tuple[int, ...], blank: int = 0) -> float:
    """Exact log P(labels | x) by the CTC forward algorithm."""
    ext = [blank]
    for l in labels:
        ext += [l, blank]
    S, T = len(ext), len(lp)
    a = np.full(S, -np.inf)
    a[0] = lp[0, ext[0]]
    if S > 1:
        a[1] = lp[0, ext[1]]
    for t in range(1, T):
        n = np.full(S, -np.inf)
        for s in range(S):
            v = a[s]
            if s >= 1:
                v = np.logaddexp(v, a[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                v = np.logaddexp(v, a[s - 2])
            n[s] = v + lp[t, ext[s]]
        a = n
    return float(np.logaddexp(a[-1], a[-2]) if S > 1 else a[-1])


def test_beam_search_finds_most_probable_labelling():
    """Against exhaustive search over every label sequence (tiny alphabet, few frames)."""
    rng = np.random.default_rng(3)
    small = CTCVocab(["<pad>", "A", "B", "C"], blank=0, delimiter="|")  # no delimiter: labellings are distinct texts
    wins = 0
    for trial in range(6):
        lp = log_softmax(rng.standard_normal((6, 4)) * 1.5)
        best, best_lab = -np.inf, ()
        for n in range(0, 7):
            for lab in itertools.product([1, 2, 3], repeat=n):
                p = ctc_label_prob(lp, lab)
                if p > best:
                    best, best_lab = p, lab
        res = beam_search(lp, small, beam_width=2000, top_k=4, token_prune=-1e9)  # no pruning: exact
        assert tuple(c["id"] for c in res.chars) == best_lab
        assert res.score == pytest.approx(best, abs=1e-9)
        g = greedy(lp, small)
        wins += res.score > g.score + 1e-9
    assert wins >= 1  # prefix search beats the best single path at least once


def test_beam_equals_greedy_on_clean_paths():
    lp = spell("THE DOG")
    assert greedy(lp, V).text == "THE DOG"
    res = beam_search(lp, V, beam_width=8)
    assert res.text == "THE DOG"
    assert [w.word for w in res.words] == ["THE", "DOG"]
    assert res.words[1].start == pytest.approx(4 * 4 * 0.02)  # 'D' is the 5th char, 4 frames each


def test_lexicon_fixes_misspelling():
    # the second L of HELLO is weak: acoustics alone say "HELO"; the lexicon knows only HELLO
    lp = spell("HELLO WORLD", confusions={3: (("L", 0.1), ("<pad>", 0.85))})
    assert greedy(lp, V).text == "HELO WORLD"
    assert beam_search(lp, V, beam_width=16).text == "HELO WORLD"
    lm = WordLM.from_text("hello world. hello there. the world is round.")
    fixed = beam_search(lp, V, beam_width=16, lm=lm, alpha=0.5, beta=1.0, lexicon_only=True)
    assert fixed.text == "HELLO WORLD"
    assert [w.word for w in fixed.words] == ["HELLO", "WORLD"]


def test_bigram_context_picks_the_likely_word():
    # "A" vs "O" equally likely in the 2nd word: RED/ROD; the bigram THE RED is in the corpus
    lp = spell("THE RED", confusions={5: (("E", 0.45), ("O", 0.45))})
    lm = WordLM.from_text("the red dog. the red hen. a rod. the red sun.")
    assert beam_search(lp, V, lm=lm, alpha=1.0, beta=0.0).text == "THE RED"
    lm2 = WordLM.from_text("the rod is long. the rod. the rod broke. a red.")
    assert beam_search(lp, V, lm=lm2, alpha=1.0, beta=0.0).text == "THE ROD"
    assert lm.logprob("RED", "THE") > lm.logprob("ROD", "THE")
    assert lm.logprob("XYZZY") == lm.unk


def test_empty_and_blank_only():
    lp = np.log(np.tile([[0.97] + [0.03 / (len(VOCAB) - 1)] * (len(VOCAB) - 1)], (5, 1)))
    assert greedy(lp, V).text == "" and beam_search(lp, V).text == ""
    assert beam_search(lp, V).words == []
    assert math.isfinite(beam_search(lp, V).score)
