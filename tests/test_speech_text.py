"""The text front end: sentences, and numbers, years, times, money and abbreviations as words."""

from __future__ import annotations

import pytest

from engine.errors import SonoscopeError
from engine.speech import text as T


@pytest.mark.parametrize("raw, said", [
    ("It costs $3.50.", "It costs three dollars and fifty cents."),
    ("$1 and 1 cent: $0.01", "one dollar and one cent: one cent"),
    ("£20 or €2.05", "twenty pounds or two euros and five cents"),
    ("$3.5 million", "three point five million dollars"),
    ("In 1999 and 2024.", "In nineteen ninety-nine and twenty twenty-four."),
    ("In 1999, we met.", "In nineteen ninety-nine, we met."),
    ("The 1980s.", "The nineteen eighties."),
    ("At 10:30, then 9:05 pm and 7am.", "At ten thirty, then nine oh five p m and seven a m."),
    ("Be there at 12:00.", "Be there at twelve o'clock."),
    ("The 21st and the 3rd.", "The twenty-first and the third."),
    ("About 50% of 1,234 people.", "About fifty percent of one thousand two hundred and thirty-four people."),
    ("Pi is 3.14.", "Pi is three point one four."),
    ("It was -3 outside.", "It was minus three outside."),
    ("Dr. Smith met Mr. and Mrs. Jones.", "Doctor Smith met Mister and Missus Jones."),
    ("St. Louis is on Main St.", "Saint Louis is on Main Street."),
    ("Fruit, e.g. apples, etc.", "Fruit, for example apples, et cetera."),
    ("No. 5 vs. No. 6", "number five versus number six"),
    ("Rock & roll", "Rock and roll"),
])
def test_normalize(raw, said):
    assert T.normalize(raw) == said


def test_sentences_split_at_ends_not_abbreviations():
    text = "Hello there. Dr. Smith costs $3.50 today! Is it 10.5 or 11? J. R. R. Tolkien, e.g. him...\n\nA new line"
    assert T.sentences(text) == ["Hello there.", "Dr. Smith costs $3.50 today!", "Is it 10.5 or 11?",
                                 "J. R. R. Tolkien, e.g. him...", "A new line"]


def test_long_sentence_is_cut_at_commas_then_spaces():
    s = ", ".join(["the quick brown fox jumps over the lazy dog"] * 40) + "."
    parts = T.sentences(s, limit=120)
    assert len(parts) > 10 and all(len(p) <= 120 for p in parts)
    assert " ".join(parts).replace(" ,", ",") == s
    words = " ".join(["word"] * 500)  # no punctuation at all
    parts = T.sentences(words, limit=100)
    assert all(len(p) <= 100 for p in parts) and " ".join(parts) == words


def test_streamed_text_splits_like_whole_text():
    text = ("Mr. Brown arrived at 10:30. He paid $3.50 for tea! Was it good? It was, e.g. hot. " * 30).strip()
    chunks = [text[i:i + 7] for i in range(0, len(text), 7)]  # cut anywhere, "Mr." and "$3.50" included
    assert list(T.iter_sentences(chunks)) == T.sentences(text)


def test_unsayable_characters_are_dropped_and_reported():
    dropped = []
    out = list(T.prepare("Hello 😀 world \u2603. \x07Bye!", on_drop=dropped.append))
    assert out == ["Hello world .", "Bye!"]
    assert "".join(dropped) == "😀\u2603\x07"


@pytest.mark.parametrize("bad", ["", "   \n\t", "...!?", "😀 ☃", "- -- ,;"])
def test_nothing_to_say_is_a_clear_error(bad):
    with pytest.raises(T.TextError, match="nothing to say"):
        T.check_text(bad)
    with pytest.raises(T.TextError):
        list(T.prepare(bad))
    assert issubclass(T.TextError, SonoscopeError)


def test_fifty_thousand_characters_stream():
    sentence = "On 4th July 1976, 1,200 people paid $5.25 each at 9:30 am. "
    text = sentence * (50_000 // len(sentence) + 1)
    assert len(text) > 50_000
    out = list(T.prepare(text[:50_000]))
    assert len(out) >= 50_000 // len(sentence)
    assert out[0] == ("On fourth July nineteen seventy-six, one thousand two hundred people paid five dollars "
                      "and twenty-five cents each at nine thirty a m.")
    assert max(len(s) for s in out) <= 2 * T.MAX_SENTENCE
    assert not any(ch.isdigit() for s in out for ch in s)
