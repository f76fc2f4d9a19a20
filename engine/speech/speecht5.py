"""SpeechT5's autoregressive decoding: text ids + x-vector -> mel frames -> (HiFi-GAN) waveform.

Each step feeds the previous mel frame (zeros at first) through the pre-net and the decoder
(self-attention over a preallocated KV cache; cross-attention keys/values computed once), emits
``reduction_factor`` frames and stops when the summed stop probability reaches ``threshold``
(after at least ``minlenratio * T / r`` steps; at most ``maxlenratio * T / r``). The post-net then
refines all frames at once.

SpeechT5 keeps its pre-net dropout on at inference. ``rng="fast"`` draws one keep mask per layer
per step; ``rng="transformers"`` draws them exactly as ``SpeechT5ForTextToSpeech.generate_speech``
does (a mask for the whole sequence so far at each step, of which only the last row matters), so
that under the same torch seed both give the same frames: the parity tests use it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _masks(p: float, units: int, layers: int, step: int, rng: str, generator=None) -> list[torch.Tensor]:
    if rng == "transformers":  # torch.bernoulli(inputs_embeds[0], p) over (step + 1, units), last row
        return [torch.bernoulli(torch.empty(step + 1, units), p, generator=generator)[-1] for _ in range(layers)]
    return [torch.bernoulli(torch.empty(units), p, generator=generator) for _ in range(layers)]


@torch.inference_mode()
def generate(model, ids: torch.Tensor | list[int], speaker: torch.Tensor | np.ndarray, threshold: float = 0.5,
             minlenratio: float = 0.0, maxlenratio: float = 20.0, rng: str = "fast",
             generator: torch.Generator | None = None, check=None) -> torch.Tensor:
    """Mel frames ``(frames, n_mels)`` (after the post-net) for one sentence.

    ``ids``: token ids with the final ``</s>``; ``speaker``: a 512-d x-vector; ``check()`` is called
    every step (a job's cancel check)."""
    c = model.config
    param = next(model.parameters())
    ids = torch.as_tensor(ids, dtype=torch.long, device=param.device).reshape(1, -1)
    spk = torch.as_tensor(np.asarray(speaker, np.float32), device=param.device).reshape(1, -1)
    spk = F.normalize(spk)
    enc = model.encode(ids)
    T, r = enc.shape[1], c.reduction_factor
    maxlen = min(int(T * maxlenratio / r), c.max_speech_positions - 1)
    minlen = int(T * minlenratio / r)
    cross = model.cross_kv(enc)
    cache = model.new_cache(1, max(1, maxlen) + 1, device=param.device, dtype=enc.dtype)
    frame = enc.new_zeros(1, c.num_mel_bins)
    frames = []
    step = 0
    units, layers = c.speech_decoder_prenet_units, c.speech_decoder_prenet_layers
    while True:
        if check is not None:
            check()
        masks = [m.to(param.device) for m in _masks(c.speech_decoder_prenet_dropout, units, layers, step, rng, generator)]
        spec, logits = model.decode_step(frame, step, spk, masks, cache, cross)
        frames.append(spec)
        frame = spec[:, -1]
        step += 1
        if step < minlen:
            continue
        if step >= maxlen or float(torch.sigmoid(logits).sum()) >= threshold:
            break
    mel = torch.cat(frames, dim=1)                                           # (1, steps * r, n_mels)
    return model.refine(mel)[0]


@torch.inference_mode()
def speak(model, vocoder, tokenizer, sentence: str, xvector: np.ndarray, speed: float = 1.0,
          threshold: float = 0.5, check=None) -> np.ndarray:
    """One sentence -> float32 samples at the vocoder's rate (speed: resampled in time by the
    vocoder's frame count, i.e. the mel is stretched before vocoding)."""
    text = tokenizer.clean(sentence)
    limit = model.config.max_text_positions - 1
    pieces = [text[i:i + limit] for i in range(0, len(text), limit)] or [""]
    out = []
    for piece in pieces:
        mel = generate(model, tokenizer.encode(piece), xvector, threshold=threshold, check=check)
        if speed != 1.0:  # stretch the frames: fewer frames speak faster
            n = max(1, int(round(mel.shape[0] / speed)))
            mel = F.interpolate(mel.T[None], size=n, mode="linear", align_corners=False)[0].T
        out.append(vocoder(mel).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)
