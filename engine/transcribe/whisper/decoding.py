"""Decoding one 30 s window: greedy / sampling / beam search with Whisper's logit rules.

Everything stateful lives here, outside the module: the preallocated self-attention
:class:`~engine.models.whisper.KVCache`, the cross-attention keys/values (computed once per
window) and the token sequences. Rules follow openai-whisper: blank and non-speech tokens
suppressed, timestamp tokens in pairs and non-decreasing, the first timestamp at most
``max_initial_timestamp``, timestamps forced when they are jointly more likely than any
text token; no-speech probability read at ``<|startoftranscript|>``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import zlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ...compute import cpu_threads
from ...models.whisper import KVCache, Whisper
from .tokenizer import TIME_PRECISION, Tokenizer


@dataclass
class DecodingOptions:
    task: str = "transcribe"  # or "translate"
    language: str | None = None  # None: detect (multilingual models)
    temperature: float = 0.0
    sample_len: int | None = None  # max tokens to sample (default n_text_ctx // 2)
    best_of: int | None = None  # candidates when sampling with temperature > 0
    beam_size: int | None = None  # None or 1: greedy
    patience: float | None = None
    length_penalty: float | None = None  # None: divide by length; else ((5 + len) / 6) ** alpha
    prompt: str | list[int] | None = None  # previous text (conditioning)
    prefix: str | list[int] | None = None  # forced start of the transcript
    suppress_tokens: str | list[int] | None = "-1"  # "-1": non-speech symbols + special tokens
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0


@dataclass
class DecodingResult:
    tokens: list[int]  # sampled tokens (timestamps included, no <|endoftext|>)
    text: str
    language: str
    language_probs: dict[str, float] | None = None
    avg_logprob: float = float("nan")
    sum_logprob: float = float("nan")
    no_speech_prob: float = float("nan")
    temperature: float = 0.0
    compression_ratio: float = float("nan")
    audio_features: Tensor | None = field(default=None, repr=False)


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


@torch.inference_mode()
def detect_language(model: Whisper, tokenizer: Tokenizer, audio_features: Tensor,
                    cross=None) -> tuple[list[str], list[dict[str, float]]]:
    """Most likely language per window from the logits after <|startoftranscript|>."""
    if not tokenizer.multilingual:
        return ["en"] * audio_features.shape[0], [{"en": 1.0}] * audio_features.shape[0]
    cross = cross if cross is not None else model.decoder.cross_kv(audio_features)
    b = audio_features.shape[0]
    tokens = torch.full((b, 1), tokenizer.sot, dtype=torch.long, device=audio_features.device)
    logits = model.decoder(tokens, cross, last_only=True)[:, 0].float()
    codes = list(tokenizer.language_tokens)
    ids = torch.tensor([tokenizer.language_tokens[c] for c in codes], device=logits.device)
    probs = logits[:, ids].softmax(-1)
    best = [codes[i] for i in probs.argmax(-1).tolist()]
    return best, [{c: float(p) for c, p in zip(codes, row)} for row in probs.tolist()]


def suppressed_tokens(tokenizer: Tokenizer, suppress: str | list[int] | None) -> list[int]:
    if suppress is None:
        return []
    ids = [int(t) for t in suppress.split(",")] if isinstance(suppress, str) else list(suppress)
    if -1 in ids:
        ids = [t for t in ids if t >= 0] + tokenizer.non_speech_tokens
    ids += [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm]
    if tokenizer.no_speech is not None:
        ids.append(tokenizer.no_speech)
    return sorted({t for t in ids if t is not None and t >= 0})


class LogitRules:
    """The per-step logit filters (in place on (B, V) float logits)."""

    def __init__(self, tokenizer: Tokenizer, opts: DecodingOptions, sample_begin: int, n_vocab: int,
                 device) -> None:
        self.tk = tokenizer
        self.sample_begin = sample_begin
        self.timestamps = not opts.without_timestamps
        mask = torch.zeros(n_vocab, dtype=torch.bool)
        sup = [t for t in suppressed_tokens(tokenizer, opts.suppress_tokens) if t < n_vocab]
        mask[sup] = True
        if self.timestamps and tokenizer.no_timestamps is not None:
            mask[tokenizer.no_timestamps] = True
        self.mask = mask.to(device)
        self.blank = torch.tensor(tokenizer.encode(" ") + [tokenizer.eot], device=device) if opts.suppress_blank else None
        self.last_initial = None
        if opts.max_initial_timestamp is not None:
            self.last_initial = tokenizer.timestamp_begin + round(opts.max_initial_timestamp / TIME_PRECISION)

    def __call__(self, logits: Tensor, seqs: list[list[int]]) -> Tensor:
        n = len(seqs[0])  # all sequences have the same length
        if n == self.sample_begin and self.blank is not None:
            logits[:, self.blank] = -torch.inf
        logits.masked_fill_(self.mask, -torch.inf)
        if not self.timestamps:
            return logits
        tb, eot = self.tk.timestamp_begin, self.tk.eot
        for k, seq in enumerate(seqs):
            sampled = seq[self.sample_begin:]
            last_ts = len(sampled) >= 1 and sampled[-1] >= tb
            penult_ts = len(sampled) < 2 or sampled[-2] >= tb
            if last_ts:
                if penult_ts:  # a pair just closed: text (or end) must follow
                    logits[k, tb:] = -torch.inf
                else:  # a timestamp opened a pair: another timestamp or the end
                    logits[k, :eot] = -torch.inf
            stamps = [t for t in sampled if t >= tb]
            if stamps:  # timestamps never decrease (and a new segment starts strictly later)
                last = stamps[-1] if (last_ts and not penult_ts) else stamps[-1] + 1
                logits[k, tb:last] = -torch.inf
        if n == self.sample_begin:
            logits[:, :tb] = -torch.inf  # start with a timestamp
            if self.last_initial is not None:
                logits[:, self.last_initial + 1:] = -torch.inf
        logprobs = F.log_softmax(logits, dim=-1)
        ts_lp = logprobs[:, tb:].logsumexp(dim=-1)
        text_max = logprobs[:, :tb].max(dim=-1).values
        force = ts_lp > text_max
        if bool(force.any()):
            logits[force, :tb] = -torch.inf
        return logits


def _tokens(tokenizer: Tokenizer, x: str | list[int] | None) -> list[int]:
    if x is None:
        return []
    return tokenizer.encode(" " + x.strip()) if isinstance(x, str) else [int(t) for t in x]


def initial_tokens(model: Whisper, tokenizer: Tokenizer, opts: DecodingOptions, language: str) -> list[int]:
    n_ctx = model.cfg.n_text_ctx
    tokens = tokenizer.sot_sequence(language, opts.task)
    if opts.without_timestamps:
        tokens.append(tokenizer.no_timestamps)
    if opts.prefix:
        tokens += _tokens(tokenizer, opts.prefix)[-(n_ctx // 2 - 1):]
    if opts.prompt:
        prompt = _tokens(tokenizer, opts.prompt)
        tokens = [tokenizer.sot_prev] + prompt[-(n_ctx // 2 - 1):] + tokens
    return tokens


def sample(logits: Tensor, temperature: float) -> Tensor:
    """One token per row of (B, V) logits from softmax(logits / temperature), by inverse CDF.

    One random number per row: ``torch.distributions.Categorical`` draws one exponential per
    vocabulary entry, 11 ms a step for the five candidates of a fallback here against 0.6 ms.
    """
    c = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)
    x = torch.rand(c.shape[0], 1, device=c.device) * c[:, -1:]
    index = torch.searchsorted(c, x, right=True)[:, 0]
    last = (c < c[:, -1:]).sum(-1)  # the last token with probability > 0 (x may round up to the total)
    return torch.minimum(index, last)


class StepThreads:
    """Chooses the CPU thread count for the token-by-token steps by timing them: 1 or all threads.

    A step is a chain of small, memory-bound ops (one token per sequence). On a quiet machine two
    threads win (base greedy: 8.9 against 10.0 ms/token); when other processes keep the cores
    busy, each parallel op waits for a descheduled thread and one thread wins (10.2 against 12.7).
    So the first ``2 * probe`` steps of every window alternate between both and the rest run with
    the faster (median). The tokens are the same either way: only the speed depends on it.
    """

    def __init__(self, model: Whisper, probe: int = 6) -> None:
        n = torch.get_num_threads()
        self.choices = [1, n] if model.device.type == "cpu" and n > 1 else [None]
        self.times: dict[int | None, list[float]] = {c: [] for c in self.choices}
        self.probe = probe
        self.best = self.choices[0] if len(self.choices) == 1 else None

    @contextlib.contextmanager
    def __call__(self):
        if self.best is not None:
            with cpu_threads(self.best):
                yield
            return
        c = min(self.choices, key=lambda c: len(self.times[c]))  # alternate
        t = time.perf_counter()
        with cpu_threads(c):
            yield
        self.times[c].append(time.perf_counter() - t)
        if all(len(v) >= self.probe for v in self.times.values()):
            self.best = min(self.choices, key=lambda c: statistics.median(self.times[c]))


@torch.inference_mode()
def decode(model: Whisper, tokenizer: Tokenizer, mel: Tensor | None, opts: DecodingOptions | None = None,
           audio_features: Tensor | None = None, check=None) -> list[DecodingResult]:
    """Decode windows: mel (B, n_mels, 3000) (or precomputed audio_features (B, Ta, D)) -> one result each.

    ``check`` (e.g. ``JobState.check``) is called every few steps so that a job can be cancelled mid-window.
    """
    opts = opts or DecodingOptions()
    if audio_features is None:
        audio_features = model.encoder(mel.to(model.device, model.dtype))
    n_audio = audio_features.shape[0]
    cross = model.decoder.cross_kv(audio_features)

    language_probs = None
    if opts.language is None and tokenizer.multilingual:
        langs, language_probs = detect_language(model, tokenizer, audio_features, cross)
    else:
        langs = [opts.language or "en"] * n_audio
    results = []
    # windows with different languages decode separately (rare: batched windows of one file share one)
    groups: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        groups.setdefault(lang, []).append(i)
    out: list[DecodingResult | None] = [None] * n_audio
    for lang, idx in groups.items():
        sub_cross = [(k[idx], v[idx]) for k, v in cross] if len(idx) != n_audio else cross
        for j, r in zip(idx, _decode_group(model, tokenizer, sub_cross, len(idx), opts, lang, check)):
            r.language = lang
            r.language_probs = language_probs[j] if language_probs else None
            r.audio_features = audio_features[j]
            out[j] = r
    results = [r for r in out if r is not None]
    return results


def _decode_group(model: Whisper, tk: Tokenizer, cross, n_audio: int, opts: DecodingOptions,
                  language: str, check=None) -> list[DecodingResult]:
    cfg = model.cfg
    init = initial_tokens(model, tk, opts, language)
    sample_begin = len(init)
    sot_index = init.index(tk.sot)
    sample_len = opts.sample_len or cfg.n_text_ctx // 2
    sample_len = min(sample_len, cfg.n_text_ctx - sample_begin)
    beam = opts.beam_size if (opts.beam_size or 1) > 1 and opts.temperature == 0 else None
    n_group = beam or (opts.best_of if opts.temperature > 0 and opts.best_of else 1)
    batch = n_audio * n_group
    # the n_group rows of a window share its cross-attention keys/values (no copies; see Block.forward)
    device = model.device
    rules = LogitRules(tk, opts, sample_begin, cfg.n_vocab, device)
    cache = KVCache.empty(cfg, batch, dtype=model.dtype, device=device, max_len=sample_begin + sample_len + 1)
    seqs = [list(init) for _ in range(batch)]
    sum_lp = torch.zeros(batch, dtype=torch.float32)

    # first pass over the prompt: logits at <|startoftranscript|> (no-speech) and at the last position
    tokens = torch.tensor(seqs, device=device)
    logits = model.decoder(tokens, cross, cache, positions=[sot_index, sample_begin - 1]).float()
    no_speech = [float("nan")] * batch
    if tk.no_speech is not None:
        no_speech = logits[:, 0].softmax(-1)[:, tk.no_speech].tolist()
    logits = logits[:, 1]

    finished: list[dict[tuple, float]] = [{} for _ in range(n_audio)]
    max_candidates = round((beam or 1) * (opts.patience or 1.0))
    done = [False] * batch
    threads = StepThreads(model)
    for step in range(sample_len):
        with threads():  # the thread count of a step is chosen by timing (StepThreads)
            if check is not None and step % 8 == 7:
                check()
            logits = rules(logits, seqs)
            logprobs = F.log_softmax(logits, dim=-1).cpu()
            if beam:
                index, completed = _beam_step(logprobs, seqs, sum_lp, finished, beam, max_candidates, tk.eot)
                if completed:
                    break
                if index != list(range(batch)):
                    cache.reorder(torch.tensor(index, device=device))
                nxt = [s[-1] for s in seqs]
            else:
                if opts.temperature == 0:
                    nxt_t = logprobs.argmax(-1)
                else:
                    nxt_t = sample(logits.cpu(), opts.temperature)
                lp = logprobs.gather(1, nxt_t[:, None])[:, 0]
                nxt = nxt_t.tolist()
                for b in range(batch):
                    if done[b]:
                        nxt[b] = tk.eot
                    else:
                        sum_lp[b] += float(lp[b])
                        seqs[b].append(nxt[b])
                        done[b] = nxt[b] == tk.eot
                if all(done):
                    break
            if len(seqs[0]) >= sample_begin + sample_len:
                break
            logits = model.decoder(torch.tensor(nxt, device=device)[:, None], cross, cache, last_only=True)[:, 0].float()

    # collect candidates per audio
    results = []
    for i in range(n_audio):
        if beam:
            cands = dict(finished[i])
            if len(cands) < beam:
                rows = sorted(range(i * beam, (i + 1) * beam), key=lambda r: -float(sum_lp[r]))
                for r in rows:
                    cands.setdefault(tuple(seqs[r]) + (tk.eot,), float(sum_lp[r]))
                    if len(cands) >= beam:
                        break
            cand_list = [(list(c[sample_begin:]), lp) for c, lp in cands.items()]
        else:
            rows = range(i * n_group, (i + 1) * n_group)
            cand_list = [(seqs[r][sample_begin:], float(sum_lp[r])) for r in rows]
        trimmed = []
        for toks, lp in cand_list:
            if tk.eot in toks:
                toks = toks[:toks.index(tk.eot)]
            trimmed.append((toks, lp))

        def score(c):
            toks, lp = c
            n = len(toks)
            penalty = n if opts.length_penalty is None else ((5 + n) / 6) ** opts.length_penalty
            return lp / max(penalty, 1e-9)

        toks, lp = max(trimmed, key=score)
        text = tk.decode(toks).strip()
        results.append(DecodingResult(
            tokens=toks, text=text, language=language, avg_logprob=lp / (len(toks) + 1), sum_logprob=lp,
            no_speech_prob=no_speech[i * n_group], temperature=opts.temperature,
            compression_ratio=compression_ratio(text)))
    return results


def _beam_step(logprobs: Tensor, seqs: list[list[int]], sum_lp: Tensor, finished: list[dict], beam: int,
               max_candidates: int, eot: int) -> tuple[list[int], bool]:
    """One step of openai-whisper's beam search; updates seqs/sum_lp in place, returns the source rows."""
    n_audio = len(seqs) // beam
    new_seqs, new_lp, source = [], [], []
    top_lp, top_id = logprobs.topk(beam + 1, dim=-1)
    top_lp, top_id = top_lp.tolist(), top_id.tolist()
    for i in range(n_audio):
        scores: dict[tuple, float] = {}
        origin: dict[tuple, int] = {}
        for j in range(beam):
            r = i * beam + j
            prefix = tuple(seqs[r])
            base = float(sum_lp[r])
            for lp, t in zip(top_lp[r], top_id[r]):
                s = prefix + (t,)
                scores[s] = base + lp
                origin[s] = r
        saved = 0
        for s in sorted(scores, key=scores.get, reverse=True):
            if s[-1] == eot:
                if len(finished[i]) < max_candidates:
                    finished[i][s] = scores[s]
            else:
                new_seqs.append(list(s))
                new_lp.append(scores[s])
                source.append(origin[s])
                saved += 1
                if saved == beam:
                    break
    seqs[:] = new_seqs
    sum_lp[:] = torch.tensor(new_lp)
    completed = all(len(f) >= max_candidates for f in finished)
    return source, completed
