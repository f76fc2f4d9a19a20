"""The text front end shared by every voice: sentences, then words a voice can say.

``sentences(text)`` splits text into sentences (never after "Dr." or "e.g.", never inside "$3.50"),
and cuts an over-long sentence at commas, then at spaces, so that synthesis (and memory) works
one bounded piece at a time. ``normalize(sentence)`` spells out what voices read badly:

    "$3.50"  -> "three dollars and fifty cents"      "10:30 pm" -> "ten thirty p m"
    "1999"   -> "nineteen ninety-nine"               "21st"     -> "twenty-first"
    "Dr. No" -> "Doctor No"                          "50%"      -> "fifty percent"
    "1,234"  -> "one thousand, two hundred and thirty-four"

Numbers become words through ``num2words``. Characters that no voice can say (emoji, symbols,
control characters) are dropped and reported. Text with nothing to say is a :class:`TextError`.
``iter_sentences(chunks)`` does the same for text arriving in pieces (a long .txt file read block
by block): memory stays bounded by the longest sentence, not the text.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Iterator

from ..errors import SonoscopeError

MAX_SENTENCE = 300  # characters: longer sentences are cut at a comma, else at a space


class TextError(SonoscopeError):
    """The text holds nothing a voice can say (empty, only spaces or punctuation)."""


# -- abbreviations ------------------------------------------------------------------------------
# titles before a name (never end a sentence)
_TITLES = {"mr": "Mister", "mrs": "Missus", "ms": "Miz", "dr": "Doctor", "prof": "Professor",
           "st": "Saint", "mt": "Mount", "gen": "General", "capt": "Captain", "lt": "Lieutenant",
           "col": "Colonel", "sgt": "Sergeant", "rev": "Reverend", "gov": "Governor", "sen": "Senator",
           "rep": "Representative", "hon": "Honorable", "fr": "Father"}
# abbreviations that may sit inside or at the end of a sentence
# (no abbreviation that is also a word: "no.", "sat.", "sun.", "mar.", "min.")
_ABBREV = {"jr": "Junior", "sr": "Senior", "st": "Street", "dr": "Drive", "vs": "versus", "etc": "et cetera",
           "approx": "approximately", "dept": "department", "inc": "Incorporated", "ltd": "Limited",
           "corp": "Corporation", "ave": "Avenue", "blvd": "Boulevard", "jan": "January", "feb": "February",
           "apr": "April", "jun": "June", "jul": "July", "aug": "August", "sep": "September",
           "sept": "September", "oct": "October", "nov": "November", "dec": "December", "mon": "Monday",
           "tue": "Tuesday", "thu": "Thursday", "fri": "Friday", "hr": "hours", "hrs": "hours", "ft": "feet",
           "lbs": "pounds", "oz": "ounces", "km": "kilometers", "kg": "kilograms", "mph": "miles per hour"}
# titles that are never words of their own ("Mr. and Mrs. Smith"); the others only before a name
_ABBREV.update({k: v for k, v in _TITLES.items() if k in ("mr", "mrs", "ms", "prof", "capt", "lt", "sgt", "mt")})
_DOTTED = {"e.g.": "for example", "i.e.": "that is", "a.m.": "a m", "p.m.": "p m", "u.s.": "U S",
           "u.k.": "U K", "ph.d.": "P H D"}
_NO_SPLIT_AFTER = set(_TITLES) | set(_ABBREV) - {"etc", "inc", "ltd", "corp", "st", "dr", "ft", "lbs", "oz"}

_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "", "")}
_SCALES = ("thousand", "million", "billion", "trillion")
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "#": " number ", "°": " degrees ",
            "×": " times ", "½": " one half ", "¼": " one quarter ", "¾": " three quarters "}
_PUNCT_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": ", ",
                            "\u2014": ", ", "\u2026": "...", "\u00a0": " ", "\t": " "})


def _n2w(number, **kw) -> str:
    from num2words import num2words

    return num2words(number, lang="en", **kw).replace(",", "")


def _cardinal(digits: str) -> str:
    digits = digits.replace(",", "")
    return _n2w(int(digits)) if "." not in digits else _n2w(float(digits)) if len(digits) < 16 else \
        " ".join(_n2w(int(d)) if d.isdigit() else "point" for d in digits)


def _decimal(whole: str, frac: str) -> str:
    """3.14 -> three point one four (digits after the point are read one by one)."""
    return f"{_cardinal(whole)} point {' '.join(_n2w(int(d)) for d in frac)}"


# -- patterns, applied in this order -------------------------------------------------------------
_NUM = r"\d{1,3}(?:,\d{3})+|\d+"
_RE_CURRENCY = re.compile(rf"(?P<neg>-)?(?P<sym>[$£€¥])\s?(?P<whole>{_NUM})(?:\.(?P<frac>\d{{1,2}}))?"
                          rf"(?:\s?(?P<scale>{'|'.join(_SCALES)})\b)?")
_RE_TIME = re.compile(r"\b(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?::(?P<s>[0-5]\d))?"
                      r"(?:\s?(?P<ampm>[AaPp])\.?\s?[Mm]\b)?")
_RE_AMPM = re.compile(r"\b(?P<h>1[0-2]|[1-9])\s?(?P<ampm>[AaPp])\.?\s?[Mm]\b")
_RE_ORDINAL = re.compile(r"\b(?P<n>\d{1,3}(?:,\d{3})*|\d+)(?P<suf>st|nd|rd|th)\b", re.I)
_RE_DECADE = re.compile(r"\b(?P<y>1[1-9]\d0|20\d0)'?s\b")
_RE_YEAR = re.compile(r"(?<![\d,.])(?P<y>1[1-9]\d\d|20\d\d)(?!\d|[,.]\d)")
_RE_PERCENT = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s?%")
_RE_DECIMAL = re.compile(rf"(?<![\d.])(?P<whole>{_NUM})\.(?P<frac>\d+)(?!\d|\.\d)")
_RE_NUMBER = re.compile(rf"(?P<neg>(?<![\w-])-)?(?P<n>{_NUM})")
_RE_TITLE = re.compile(r"\b(?P<a>(?i:" + "|".join(sorted(_TITLES, key=len, reverse=True)) + r"))\.(?=\s+[A-Z])")
_RE_ABBREV = re.compile(r"\b(?P<a>" + "|".join(sorted(_ABBREV, key=len, reverse=True)) + r")\.(?P<end>\s*$)?", re.I)
_RE_NUMBER_ABBREV = re.compile(r"\b[Nn]o\.\s?(?=\d)")
_RE_DOTTED = re.compile("|".join(re.escape(k) for k in sorted(_DOTTED, key=len, reverse=True)), re.I)


def _currency(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m["sym"]]
    whole = int(m["whole"].replace(",", ""))
    neg = "minus " if m["neg"] else ""
    if m["scale"]:  # "$3.5 million" -> three point five million dollars
        amount = _decimal(m["whole"], m["frac"]) if m["frac"] else _cardinal(m["whole"])
        return f"{neg}{amount} {m['scale']} {many}"
    cents = int((m["frac"] or "0").ljust(2, "0")) if sub_one else 0
    parts = []
    if whole or not cents:
        parts.append(f"{_n2w(whole)} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{_n2w(cents)} {sub_one if cents == 1 else sub_many}")
    return neg + " and ".join(parts)


def _ampm(letter: str | None) -> str:
    return "" if not letter else " a m" if letter.lower() == "a" else " p m"


def _time(m: re.Match) -> str:
    h, mins = int(m["h"]), int(m["m"])
    words = _n2w(h)
    if mins == 0:
        words += "" if m["ampm"] else " o'clock" if 0 < h <= 12 else " hundred"
    elif mins < 10:
        words += f" oh {_n2w(mins)}"
    else:
        words += f" {_n2w(mins)}"
    if m["s"] and int(m["s"]):
        words += f" and {_n2w(int(m['s']))} seconds"
    return words + _ampm(m["ampm"])


def _year(y: str) -> str:
    return _n2w(int(y), to="year")


def _decade(m: re.Match) -> str:
    words = _year(m["y"])  # "nineteen ninety" -> "nineteen nineties"; "two thousand" -> "two thousands"
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def normalize(text: str) -> str:
    """One sentence (or any text) with numbers, money, times, years and abbreviations as words."""
    t = unicodedata.normalize("NFKC", text).translate(_PUNCT_MAP)
    t = _RE_DOTTED.sub(lambda m: _DOTTED[m[0].lower()], t)
    t = _RE_NUMBER_ABBREV.sub("number ", t)
    t = _RE_CURRENCY.sub(_currency, t)
    t = _RE_TIME.sub(_time, t)
    t = _RE_AMPM.sub(lambda m: _n2w(int(m["h"])) + _ampm(m["ampm"]), t)
    t = _RE_ORDINAL.sub(lambda m: _n2w(int(m["n"].replace(",", "")), to="ordinal"), t)
    t = _RE_PERCENT.sub(lambda m: f"{m['num']} percent", t)
    t = _RE_DECADE.sub(_decade, t)
    t = _RE_YEAR.sub(lambda m: _year(m["y"]), t)
    t = _RE_DECIMAL.sub(lambda m: _decimal(m["whole"], m["frac"]), t)
    t = _RE_NUMBER.sub(lambda m: ("minus " if m["neg"] else "") + _cardinal(m["n"]), t)
    t = _RE_TITLE.sub(lambda m: _TITLES[m["a"].lower()], t)
    t = _RE_ABBREV.sub(lambda m: _ABBREV[m["a"].lower()] + ("." if m["end"] is not None else ""), t)
    for sym, words in _SYMBOLS.items():
        t = t.replace(sym, words)
    return re.sub(r"\s+", " ", t).strip()


def unsayable(text: str) -> str:
    """The characters of ``text`` no voice can say (symbols, emoji, control characters), once each."""
    seen: dict[str, None] = {}
    for ch in text:
        if _drop(ch):
            seen.setdefault(ch)
    return "".join(seen)


def _drop(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "CS" and ch not in "\n\r\t" and ch not in _SYMBOLS and ch not in "$£€¥%"


def clean(text: str) -> tuple[str, str]:
    """``(text without unsayable characters, the dropped characters)``."""
    dropped = unsayable(text)
    if dropped:
        text = "".join(" " if ch in dropped else ch for ch in text)
    return text, dropped


def has_words(text: str) -> bool:
    """Whether the text holds anything to say (a letter or a digit)."""
    return any(ch.isalnum() for ch in text)


# -- sentences ----------------------------------------------------------------------------------
_RE_END = re.compile(r"([.!?]+)([\"')\]]*)(\s+|$)")
_RE_PARAGRAPH = re.compile(r"\n\s*\n")


def _ends_sentence(text: str, m: re.Match) -> bool:
    if m[1] != ".":
        return True  # ! ? ... always end one
    before = text[:m.start()]
    word = re.search(r"([A-Za-z.]+)$", before)
    if word is None:
        return True
    w = word[1].lower()
    if w in _NO_SPLIT_AFTER or (len(w) == 1 and w.isalpha()) or (w + ".") in _DOTTED:
        return False  # "Dr. Smith", "J. R. R. Tolkien", "e.g. this"
    if "." in w and len(w) <= 5 and (w + ".") not in _DOTTED:
        return False  # "U.S.A." inside a sentence
    return True


def _split_long(sentence: str, limit: int) -> list[str]:
    """Cut a sentence longer than ``limit`` at commas/semicolons, then at spaces, then anywhere."""
    if len(sentence) <= limit:
        return [sentence]
    out: list[str] = []
    rest = sentence
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
        if cut < limit // 3:
            cut = window.rfind(" ")
        if cut < limit // 3:
            cut = limit - 1
        out.append(rest[:cut + 1].strip())
        rest = rest[cut + 1:].strip()
    if rest:
        out.append(rest)
    return out


def _split(text: str, limit: int) -> list[str]:
    out: list[str] = []
    for para in _RE_PARAGRAPH.split(text):
        para = " ".join(para.split())
        start = 0
        for m in _RE_END.finditer(para):
            if m.end() == len(para) or _ends_sentence(para, m):
                piece = para[start:m.end()].strip()
                if piece:
                    out += _split_long(piece, limit)
                start = m.end()
        tail = para[start:].strip()
        if tail:
            out += _split_long(tail, limit)
    return out


def _last_boundary(buf: str) -> int:
    """Where the last sentence known to be finished ends in ``buf`` (0: none yet)."""
    cut = 0
    for m in _RE_END.finditer(buf):
        if m.end() < len(buf) and _ends_sentence(buf, m):
            cut = m.end()
    for m in _RE_PARAGRAPH.finditer(buf):
        if m.end() < len(buf):
            cut = max(cut, m.end())
    return cut


def iter_sentences(chunks: Iterable[str], limit: int = MAX_SENTENCE) -> Iterator[str]:
    """Sentences from text arriving in pieces; only the unfinished sentence is held back."""
    buf = ""
    for chunk in chunks:
        buf += chunk
        cut = _last_boundary(buf)
        if not cut and len(buf) > 4 * limit:  # a run-on text: cut it at a space
            cut = buf.rfind(" ", 0, len(buf) - limit) + 1
        if cut:
            yield from _split(buf[:cut], limit)
            buf = buf[cut:]
    yield from _split(buf, limit)


def sentences(text: str, limit: int = MAX_SENTENCE) -> list[str]:
    """The sentences of ``text`` (raw: not normalised), each at most ``limit`` characters."""
    return _split(text, limit)


def prepare(text: str | Iterable[str], limit: int = MAX_SENTENCE, on_drop=None) -> Iterator[str]:
    """Normalised sentences ready for a voice, streamed. ``text`` is a string or an iterable of
    chunks. ``on_drop(chars)`` hears the characters dropped from each sentence (if any).

    Raises :class:`TextError` (before yielding anything) when the text holds nothing to say."""
    chunks = [text] if isinstance(text, str) else text
    any_words = False
    for raw in iter_sentences(chunks, limit):
        cleaned, dropped = clean(raw)
        if dropped and on_drop is not None:
            on_drop(dropped)
        said = normalize(cleaned)
        if not has_words(said):
            continue
        any_words = True
        yield from _split_long(said, limit * 2)  # "$1,234,567" grows a lot when spelled out
    if not any_words:
        raise TextError("there is nothing to say: the text is empty or holds only punctuation and symbols")


def check_text(text: str) -> None:
    """Raise :class:`TextError` now if ``text`` holds nothing to say (cheap: for a GUI or CLI check)."""
    if not isinstance(text, str) or not has_words(clean(text)[0]):
        raise TextError("there is nothing to say: the text is empty or holds only punctuation and symbols")
