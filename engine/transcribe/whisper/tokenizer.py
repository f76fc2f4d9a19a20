"""Whisper's tokenizer on top of a ``tokenizer.json`` (the ``tokenizers`` library).

Text tokens come first, then ``<|endoftext|>``, ``<|startoftranscript|>``, one token per
language, ``<|translate|>``, ``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``,
``<|nospeech|>`` (``<|nocaptions|>`` in older files), ``<|notimestamps|>`` and 1501
timestamp tokens ``<|0.00|>`` .. ``<|30.00|>`` (0.02 s apart) that follow ``<|notimestamps|>``.
"""

from __future__ import annotations

import os
import string
from functools import cached_property
from pathlib import Path

from ...errors import CheckpointError

LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
# names (and a few aliases) to codes, for --language english
TO_LANGUAGE_CODE = {**{name: code for code, name in LANGUAGES.items()},
                    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
                    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
                    "castilian": "es", "mandarin": "zh"}

TIME_PRECISION = 0.02  # seconds per timestamp token


class Tokenizer:
    """Encode/decode text and name Whisper's special tokens for one model's vocabulary."""

    def __init__(self, tokenizer_json: str | os.PathLike, n_vocab: int | None = None,
                 language: str | None = None, task: str = "transcribe") -> None:
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(tokenizer_json)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            raise CheckpointError(f"No tokenizer.json in {path.parent}")
        self.tok = HFTokenizer.from_file(str(path))
        sp = self.tok.token_to_id
        self.eot = sp("<|endoftext|>")
        self.sot = sp("<|startoftranscript|>")
        if self.eot is None or self.sot is None:
            raise CheckpointError(f"{path} is not a Whisper tokenizer (no <|startoftranscript|>)")
        self.translate = sp("<|translate|>")
        self.transcribe = sp("<|transcribe|>")
        self.sot_lm = sp("<|startoflm|>")
        self.sot_prev = sp("<|startofprev|>")
        self.no_speech = sp("<|nospeech|>") or sp("<|nocaptions|>")
        self.no_timestamps = sp("<|notimestamps|>")
        self.timestamp_begin = self.no_timestamps + 1
        # languages: the tokens between <|startoftranscript|> and <|translate|>
        self.language_tokens: dict[str, int] = {}
        for code in LANGUAGES:
            i = sp(f"<|{code}|>")
            if i is not None and i < self.translate:
                self.language_tokens[code] = i
        self.multilingual = bool(n_vocab >= 51865) if n_vocab is not None else len(self.language_tokens) > 1
        self.n_vocab = n_vocab
        if language is not None:
            language = normalize_language(language)
        self.language = language if self.multilingual else "en"
        self.task = task

    # -- prompts ---------------------------------------------------------------------------
    def sot_sequence(self, language: str | None = None, task: str | None = None) -> list[int]:
        seq = [self.sot]
        if self.multilingual:
            lang = language or self.language or "en"
            seq.append(self.language_tokens[lang])
            seq.append(self.translate if (task or self.task) == "translate" else self.transcribe)
        return seq

    # -- text ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, tokens) -> str:
        """Text of the text tokens (special and timestamp tokens dropped)."""
        return self.tok.decode([int(t) for t in tokens if int(t) < self.eot], skip_special_tokens=False)

    def decode_with_timestamps(self, tokens) -> str:
        out, text = [], []
        for t in map(int, tokens):
            if t >= self.timestamp_begin:
                if text:
                    out.append(self.decode(text))
                    text = []
                out.append(f"<|{(t - self.timestamp_begin) * TIME_PRECISION:.2f}|>")
            else:
                text.append(t)
        if text:
            out.append(self.decode(text))
        return "".join(out)

    def token_text(self, t: int) -> str:
        return self.tok.decode([int(t)], skip_special_tokens=False)

    @cached_property
    def non_speech_tokens(self) -> list[int]:
        """Tokens of symbols that are not speech (music notes, brackets...), as openai-whisper suppresses.

        Tokens that start with a space are kept apart from those without so that " -" and " '" stay allowed.
        """
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return sorted(result)

    def split_words(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        """Group text tokens into words: a word starts at a token with a leading space or punctuation.

        Languages written without spaces are split at unicode code points instead.
        """
        if self.language in {"zh", "ja", "th", "lo", "my", "yue"}:
            return self._split_unicode(tokens)
        subwords, subtokens = self._split_unicode(tokens)
        words: list[str] = []
        wtokens: list[list[int]] = []
        for sw, st in zip(subwords, subtokens):
            special = st[0] >= self.eot
            with_space = sw.startswith(" ")
            punct = sw.strip() != "" and sw.strip() in string.punctuation
            if special or with_space or punct or not words:
                words.append(sw)
                wtokens.append(list(st))
            else:
                words[-1] += sw
                wtokens[-1].extend(st)
        return words, wtokens

    def _split_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        words, wtokens, current = [], [], []
        for t in tokens:
            current.append(int(t))
            text = self.decode_with_timestamps(current)
            if "\ufffd" not in text:  # a complete UTF-8 sequence
                words.append(text)
                wtokens.append(current)
                current = []
        return words, wtokens


def normalize_language(language: str) -> str:
    lang = language.lower().strip()
    if lang in LANGUAGES:
        return lang
    if lang in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[lang]
    raise ValueError(f"Unknown language {language!r}; use a code such as 'en' or a name such as 'english'")
