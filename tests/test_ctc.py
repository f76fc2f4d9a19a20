"""CTC decoding: greedy vs the HF tokenizer, prefix beam search vs exhaustive search, lexicon/LM fixes."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.transcribe.ctc import CTCVocab, WordLM, beam_search, greedy, log_softmax  # noqa: E402

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
        # word times: the first and one-past-last frame of the word, 20 ms per frame
        assert [(w.word, w.start, w.end) for w in got.words] == \
            [(w["word"], pytest.approx(w["start_offset"] * 0.02), pytest.approx(w["end_offset"] * 0.02))
             for w in ref.word_offsets]


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


def test_word_list_lm_counts_and_lexicon():
    lm = WordLM.from_words(["hello", "World", "there", "HELLO", ""])  # any casing; empty entries ignored
    assert dict(lm.unigrams) == {"HELLO": 2, "WORLD": 1, "THERE": 1} and not lm.bigrams
    assert lm.is_word("Hello") and lm.is_word("there") and not lm.is_word("HELO")
    assert lm.is_prefix("HEL") and lm.is_prefix("") and lm.is_prefix("world") and not lm.is_prefix("HX")
    # add-k (k = 0.5) unigram probabilities; a word list has no bigrams, so context changes nothing
    assert lm.logprob("HELLO") == pytest.approx(math.log(2.5 / (4 + 0.5 * 3)))
    assert lm.logprob("WORLD", "HELLO") == pytest.approx(math.log(1.5 / 5.5))
    assert lm.logprob("NOPE") == lm.unk == -12.0
    low = WordLM.from_words(["Hello"], lower=True)
    assert dict(low.unigrams) == {"hello": 1} and low.is_word("HELLO")


def test_beam_search_with_a_word_list():
    # the second L of HELLO is weak: acoustics alone say "HELO"
    lp = spell("HELLO WORLD", confusions={3: (("L", 0.1), ("<pad>", 0.85))})
    assert beam_search(lp, V, beam_width=16).text == "HELO WORLD"
    words = WordLM.from_words(["hello", "world", "help", "word"])
    fixed = beam_search(lp, V, beam_width=16, lm=words, lexicon_only=True)
    assert fixed.text == "HELLO WORLD" and [w.word for w in fixed.words] == ["HELLO", "WORLD"]
    assert fixed.words[0].start == 0.0 and fixed.words[0].end <= fixed.words[1].start < 0.5
    # an open vocabulary with the same list: unknown words cost `unk`, so the known spelling still wins
    assert beam_search(lp, V, beam_width=16, lm=words, alpha=0.5, beta=0.0).text == "HELLO WORLD"
    # with alpha = 0 the list only adds beta per word: the acoustics decide again
    assert beam_search(lp, V, beam_width=16, lm=words, alpha=0.0, beta=0.0).text == "HELO WORLD"
    # a closed lexicon never lets a word outside it through, even where the acoustics are clear
    clean = spell("THE DOG RAN")
    lex = WordLM.from_words(["the", "ran", "do"])
    hyp = beam_search(clean, V, beam_width=16, lm=lex, lexicon_only=True)
    assert {w.word for w in hyp.words} <= {"THE", "RAN", "DO"} and "THE" in hyp.text and "DOG" not in hyp.text
    assert beam_search(clean, V, beam_width=16, lm=lex).text == "THE DOG RAN"  # open vocabulary: kept
    # the start of a lexicon word is not a word: neither before a delimiter nor at the end of the audio
    lex = WordLM.from_words(["hello", "world", "help"])
    assert beam_search(spell("HEL WORLD", p=0.99), V, beam_width=16, lm=lex, lexicon_only=True).text == "HELP WORLD"
    assert beam_search(spell("WORLD HEL", p=0.99), V, beam_width=16, lm=lex, lexicon_only=True).text == "WORLD HELP"
    # n_best: distinct hypotheses, best first
    hyps = beam_search(lp, V, beam_width=16, lm=words, lexicon_only=True, n_best=3)
    assert hyps[0].text == "HELLO WORLD" and len({h.text for h in hyps}) == len(hyps) >= 2
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_beam_search_word_times_follow_the_most_probable_path():
    for text in ("HELLO WORLD", "THE DOG", "A CAT SAT"):
        lp = spell(text)
        g, b = greedy(lp, V), beam_search(lp, V, beam_width=8)
        assert b.text == g.text == text
        assert [(w.word, w.start, w.end) for w in b.words] == \
            [(w.word, pytest.approx(w.start, abs=0.021), pytest.approx(w.end, abs=0.021)) for w in g.words], text
