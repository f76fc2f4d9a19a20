"""Speaking aloud while synthesising: sentences go into a bounded queue that playback pulls from.

    producer (a thread or an engine job)          audio thread (PortAudio callback)
    synthesize(text) -> sentence blocks --push--> StreamSource (<= ahead_seconds queued) --fill--> device

The first sentence plays as soon as it is made, while the rest is synthesised; the queue keeps
the producer at most ``ahead_seconds`` ahead of the ear, so a chapter plays with bounded memory.
Stopping closes the source: the callback outputs silence from its next block and the producer's
next ``push`` returns False, so it stops too. Cancelling the producer's job closes the source too.

- :func:`stream_into`: the producer loop (the CLI's ``speak --play``, the Speak panel's job and
  "Read aloud" all run it)
- :class:`SpeechStream`: a producer thread plus a :class:`~engine.audio.playback.Playback`
  (headless use: the CLI, tests, benchmarks)
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np

from ..audio.playback import Playback, StreamSource
from ..errors import Cancelled
from ..jobs import JobState, null_state
from . import text as T
from .task import check_speed, synthesize
from .voices import load_voice

AHEAD_SECONDS = 8.0  # audio synthesised ahead of playback at most (the queue's bound)
# Output buffer of a SpeechStream's own Playback: synthesis shares the CPU with the (Python) audio
# callback; on a loaded 2-core box PortAudio flagged output underflows over a 200-word paragraph
# at its "high" latency (35 ms through ALSA-Pulse: 0 to 28 per run) and none at 0.3 s, which
# costs 0.3 s more before the first sound.
SPEECH_LATENCY = 0.3


def open_source(voice, ahead_seconds: float = AHEAD_SECONDS) -> StreamSource:
    """An empty stream source at the voice's rate (mono)."""
    return StreamSource(voice.sample_rate, 1, ahead_seconds)


def stream_into(source: StreamSource, text: str, voice, *, speed: float = 1.0, speaker=None,
                state: JobState | None = None,
                on_block: Callable[[np.ndarray], None] | None = None,
                on_sentence: Callable[[int, str], None] | None = None, quick_start: bool = True) -> bool:
    """Synthesise ``text`` sentence by sentence into ``source`` and end it. True: everything was
    queued; False: the listener stopped (``source`` was closed). A cancelled ``state`` or an error
    closes the source (the sound stops) and raises. ``on_block(samples)`` sees each block as it is
    queued (the panel draws the waveform from it). ``quick_start``: a long first sentence is
    spoken in two blocks, so the first sound comes after a few words' synthesis."""
    state = state or null_state()
    total = max(1, len(text))
    said = [0]

    def progress(i: int, sentence: str) -> None:
        state.update(progress=min(1.0, said[0] / total), status=f"sentence {i + 1}")
        said[0] += len(sentence)
        if on_sentence is not None:
            on_sentence(i, sentence)

    try:
        for block in synthesize(text, voice, speed=speed, speaker=speaker, state=state, on_sentence=progress,
                                quick_start=quick_start):
            if source.closed:
                return False
            if on_block is not None:
                on_block(block)
            while not source.push(block, timeout=0.1):  # waits while the queue is full
                if source.closed:
                    return False
                state.check()
            state.check()
        source.end()
    except BaseException:
        source.close()
        raise
    state.update(progress=1.0, status="spoken")
    return True


class SpeechStream:
    """Speak ``text`` through ``playback`` (default: a new one on the default output) as it is made.

    Bad input (empty text, a bad speed, an unknown voice or speaker) fails in the constructor,
    before any sound. ``start()`` returns at once; ``wait()`` blocks until the last sentence was
    heard; ``stop()`` silences it within one callback block. ``underruns`` counts PortAudio's
    output-underflow flags, ``starved`` the frames of silence played because synthesis was late;
    ``first_block_s`` is the time from ``start()`` to the first sentence queued."""

    def __init__(self, text: str, voice=None, *, speed: float = 1.0, speaker=None,
                 playback: Playback | None = None, ahead_seconds: float = AHEAD_SECONDS,
                 on_block: Callable[[np.ndarray], None] | None = None) -> None:
        T.check_text(text)
        self.speed = check_speed(speed)
        self.voice = voice if hasattr(voice, "say") else load_voice(voice)
        self.voice.speaker_id(speaker)
        self.text, self.speaker, self.on_block = text, speaker, on_block
        self.source = open_source(self.voice, ahead_seconds)
        self.playback = playback if playback is not None else Playback(latency=SPEECH_LATENCY)
        self._own_playback = playback is None
        self.state = JobState()
        self.error: BaseException | None = None
        self.first_block_s: float | None = None
        self.silenced_s: float | None = None
        self.done = threading.Event()  # the producer finished (all queued, stopped or failed)
        self._t0 = 0.0
        self._thread: threading.Thread | None = None

    def _produce(self) -> None:
        def first(block: np.ndarray) -> None:
            if self.first_block_s is None:
                self.first_block_s = time.monotonic() - self._t0
            if self.on_block is not None:
                self.on_block(block)

        try:
            stream_into(self.source, self.text, self.voice, speed=self.speed, speaker=self.speaker,
                        state=self.state, on_block=first)
        except Cancelled:
            pass
        except BaseException as e:  # reported by wait()
            self.error = e
        finally:
            self.done.set()

    def start(self) -> "SpeechStream":
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._produce, name="sonoscope-speak", daemon=True)
        self._thread.start()  # synthesis of the first sentence overlaps opening the device
        try:
            self.playback.load_stream(self.source)
            self.playback.play()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def underruns(self) -> int:
        return self.playback.underruns

    @property
    def starved(self) -> int:
        return self.source.starved

    @property
    def playing(self) -> bool:
        return self.playback.playing

    def wait(self, timeout: float | None = None) -> bool:
        """Until the last sentence was played (True), or ``timeout``; re-raises a synthesis error."""
        t_end = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.error is not None:
                raise self.error
            left = None if t_end is None else t_end - time.monotonic()
            if left is not None and left <= 0:
                return False
            if self.playback.wait(0.1 if left is None else min(0.1, left)):
                if self.error is not None:
                    raise self.error
                return True
            if self.source.closed and self.done.is_set():
                return True  # stopped

    def stop(self) -> None:
        """Silence now (the source is closed and the stream aborted); the producer stops too."""
        t0 = time.monotonic()
        self.state.cancel()
        self.source.close()
        self.playback.stop()
        self.silenced_s = time.monotonic() - t0  # stop() until the output stream was aborted
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def close(self) -> None:
        self.stop()
        if self._own_playback:
            self.playback.close()


PEAK_HOP = 256  # samples per waveform peak sent to a listener


def peaks(block: np.ndarray, hop: int = PEAK_HOP) -> np.ndarray:
    """Min and max of every ``hop`` samples of ``block``: ``(ceil(n / hop), 2)`` float32 (a waveform)."""
    n = len(block)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    pad = np.pad(np.asarray(block, np.float32), (0, (-n) % hop))
    frames = pad.reshape(-1, hop)
    return np.stack([frames.min(axis=1), frames.max(axis=1)], axis=1)


def speak_aloud_job(state: JobState, text: str, voice: str | None = None, *, speed: float = 1.0,
                    speaker=None, ahead_seconds: float = AHEAD_SECONDS) -> dict:
    """The job behind the app's Play / Read aloud: it loads the voice, hands the listener an empty
    :class:`StreamSource` as its first partial ``("source", source)`` (to play at once), then fills
    it, adding ``("peaks", (k, 2) array)`` partials (every :data:`PEAK_HOP` samples) as blocks are
    made. The listener stops it by closing the source (or cancelling the job)."""
    T.check_text(text)
    speed = check_speed(speed)
    v = load_voice(voice, state)
    v.speaker_id(speaker)
    source = open_source(v, ahead_seconds)
    state.add_partial(("source", source))
    complete = stream_into(source, text, v, speed=speed, speaker=speaker, state=state,
                           on_block=lambda b: state.add_partial(("peaks", peaks(b))))
    return {"voice": getattr(v, "id", str(voice)), "sample_rate": source.samplerate,
            "seconds": source.frames / source.samplerate, "stopped": not complete}
