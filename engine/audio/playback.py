"""Playback of arrays and files through an output device (play/pause/stop/seek, loop range).

The PortAudio callback only copies out of preallocated buffers; files are decoded a couple of
seconds ahead by a feeder thread, so memory stays bounded for hour-long files. A
:class:`StreamSource` plays audio while a producer (speech synthesis) is still making it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import AudioError, DeviceError
from . import io as audio_io
from .devices import find_device, portaudio_error, sounddevice_module

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# playback


class _ArraySource:
    """Frames from an in-memory array ``(frames, channels)``."""

    def __init__(self, audio: np.ndarray, samplerate: int) -> None:
        self.audio, self.samplerate = audio, samplerate
        self.frames, self.channels = len(audio), audio.shape[1]
        self.pos = 0            # next frame to output
        self.loop: tuple[int, int] | None = None
        self.wrapped = False    # the loop jumped back at least once since the last seek

    def seek(self, frame: int) -> None:
        self.pos = frame
        self.wrapped = False

    def set_loop(self, loop: tuple[int, int] | None) -> None:
        self.loop = loop

    def fill(self, out: np.ndarray) -> tuple[int, bool]:
        """Copy up to ``len(out)`` frames; ``(frames written, reached the end)``. Audio thread."""
        n_out, frames = 0, len(out)
        while n_out < frames:
            end = self.frames if self.loop is None else self.loop[1]
            take = min(frames - n_out, max(0, end - self.pos))
            if take > 0:
                _copy_channels(out[n_out:n_out + take], self.audio[self.pos:self.pos + take])
                self.pos += take
                n_out += take
            if self.pos >= end:
                if self.loop is None:
                    return n_out, True
                self.pos = self.loop[0]
                self.wrapped = True
        return n_out, False

    def close(self) -> None:
        pass


class _FileSource:
    """Frames decoded from a file by a feeder thread a couple of seconds ahead of playback.

    Memory stays at the read-ahead ring whatever the file length (an hour-long file plays
    without being loaded). The callback copies from the ring under a lock held only for
    copies; seeks and loop changes restart the decoder at the new position.
    """

    def __init__(self, path: str | os.PathLike, ahead_seconds: float = 2.0, block: int = 8192) -> None:
        info = audio_io.info(path)
        self.path, self.samplerate, self.channels = Path(path), info.samplerate, info.channels
        self.frames = info.frames
        self.block = block
        self.cap = max(4 * block, int(ahead_seconds * info.samplerate))
        self.ring = np.zeros((self.cap, self.channels), np.float32)
        self.index = np.zeros(self.cap, np.int64)  # file frame of each ring slot
        self.w = self.r = 0                          # absolute write / read counters
        self.pos = 0                                 # file frame after the last one output
        self.loop: tuple[int, int] | None = None
        self.wrapped = False
        self.eof = False
        self.error: str | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._restart_at: int | None = 0
        self._closed = False
        self._thread = threading.Thread(target=self._feed, name="sonoscope-playback-feeder", daemon=True)
        self._thread.start()

    # -- control (any thread) -----------------------------------------------------------------
    def seek(self, frame: int) -> None:
        with self._lock:
            self.w = self.r = 0
            self.pos = frame
            self.wrapped = False
            self.eof = False
            self._restart_at = frame
        self._wake.set()

    def set_loop(self, loop: tuple[int, int] | None) -> None:
        with self._lock:
            self.loop = loop
        self.seek(self.pos)  # re-feed from here so that the new range applies at once

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def wait_ready(self, frames: int, timeout: float = 2.0) -> bool:
        t_end = time.monotonic() + timeout
        while self.w - self.r < frames and not self.eof and time.monotonic() < t_end:
            time.sleep(0.002)
        return self.w - self.r >= frames or self.eof

    # -- audio thread ---------------------------------------------------------------------------
    def fill(self, out: np.ndarray) -> tuple[int, bool]:
        with self._lock:
            n = min(len(out), self.w - self.r)
            if n > 0:
                a = self.r % self.cap
                first = min(n, self.cap - a)
                _copy_channels(out[:first], self.ring[a:a + first])
                if first < n:
                    _copy_channels(out[first:n], self.ring[:n - first])
                last = self.index[(self.r + n - 1) % self.cap]
                if self.loop is not None and last + 1 < self.pos:
                    self.wrapped = True
                self.pos = int(last) + 1
                self.r += n
            ended = self.eof and self.w == self.r
        if n < len(out):
            out[n:] = 0  # an underrun (disk too slow) plays silence rather than stopping
        return (len(out) if not ended else n), ended

    # -- feeder thread --------------------------------------------------------------------------
    def _feed(self) -> None:
        blocks = None
        next_frame = 0
        while not self._closed:
            with self._lock:
                restart, self._restart_at = self._restart_at, None
                loop = self.loop
                space = self.cap - (self.w - self.r)
            if restart is not None:
                blocks, next_frame = None, restart
            if space < self.block:
                self._wake.wait(0.01)
                self._wake.clear()
                continue
            if loop is not None and next_frame >= loop[1]:
                blocks, next_frame = None, loop[0]
            if blocks is None:
                if next_frame >= self.frames:
                    with self._lock:
                        if self._restart_at is None:
                            self.eof = True
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                blocks = audio_io.stream(self.path, block_frames=self.block, start=next_frame / self.samplerate,
                                      check_finite=False)
            try:
                blk = next(blocks)
            except StopIteration:
                blocks = None
                next_frame = self.frames if loop is None else loop[1]
                continue
            except Exception as e:  # a decode error mid-file: stop there, say why
                self.error = f"{self.path.name}: {e}"
                blocks, next_frame = None, self.frames
                continue
            x = np.nan_to_num(blk.T, copy=False)
            if loop is not None and next_frame + len(x) > loop[1]:
                x = x[:loop[1] - next_frame]
            with self._lock:
                if self._restart_at is not None:
                    continue  # a seek came in while decoding: drop this block
                n = min(len(x), self.cap - (self.w - self.r))
                a = self.w % self.cap
                first = min(n, self.cap - a)
                self.ring[a:a + first] = x[:first]
                self.index[a:a + first] = np.arange(next_frame, next_frame + first)
                if first < n:
                    self.ring[:n - first] = x[first:n]
                    self.index[:n - first] = np.arange(next_frame + first, next_frame + n)
                self.w += n
            next_frame += n
            if n < len(x):  # ring full mid-block: restart from here next time
                blocks = None


class StreamSource:
    """Frames pushed by a producer thread (speech synthesis, block by block) and played as they come.

    A bounded queue: :meth:`push` waits while ``ahead_seconds`` of audio are queued and unplayed, so a
    fast producer never runs further ahead than that (memory stays bounded whatever the length of
    the text). The callback copies from the head block; when the producer lags behind the ear it
    plays silence and counts those frames in ``starved``. :meth:`close` (stop) drops what is queued
    and makes ``push`` return False at once, so the producer stops too. Not seekable; ``frames``
    (what was pushed so far) grows while it plays.
    """

    def __init__(self, samplerate: int, channels: int = 1, ahead_seconds: float = 8.0) -> None:
        self.samplerate, self.channels = int(samplerate), int(channels)
        self.max_queued = max(1, int(ahead_seconds * self.samplerate))
        self.frames = 0          # frames pushed so far
        self.pos = 0             # frames output so far
        self.loop: tuple[int, int] | None = None  # never set: a stream does not loop
        self.wrapped = False
        self.starved = 0         # frames of silence played because the producer was late
        self.ended = False       # the producer said it is done
        self.closed = False      # stopped: nothing more is played or accepted
        self._blocks: "collections.deque[np.ndarray]" = collections.deque()  # (n, channels) float32
        self._head = 0           # frames of the first block already played
        self._queued = 0
        self._cond = threading.Condition()

    # -- producer -------------------------------------------------------------------------------
    def push(self, block: np.ndarray, timeout: float | None = None) -> bool:
        """Queue ``block`` ((n,) or (n, channels)); waits while the queue is full. False: stopped
        (or still full after ``timeout`` seconds), the block was not queued."""
        b = np.asarray(block, np.float32)
        b = np.ascontiguousarray(b[:, None] if b.ndim == 1 else b)
        t_end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued >= self.max_queued and not self.closed:
                left = 0.05 if t_end is None else min(0.05, t_end - time.monotonic())
                if left <= 0:
                    return False
                self._cond.wait(left)
            if self.closed:
                return False
            if len(b):
                self._blocks.append(b)
                self._queued += len(b)
                self.frames += len(b)
            return True

    def end(self) -> None:
        """No more blocks: playback ends when the queue is empty."""
        with self._cond:
            self.ended = True

    @property
    def queued_seconds(self) -> float:
        return self._queued / self.samplerate

    # -- control --------------------------------------------------------------------------------
    def seek(self, frame: int) -> None:
        pass  # what was played is gone; Playback.stop closes a stream instead

    def set_loop(self, loop) -> None:
        pass

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._blocks.clear()
            self._queued = 0
            self._cond.notify_all()

    # -- audio thread ---------------------------------------------------------------------------
    def fill(self, out: np.ndarray) -> tuple[int, bool]:
        n, frames = 0, len(out)
        with self._cond:
            if self.closed:
                return 0, True
            while n < frames and self._blocks:
                blk = self._blocks[0]
                take = min(frames - n, len(blk) - self._head)
                _copy_channels(out[n:n + take], blk[self._head:self._head + take])
                n += take
                self._head += take
                if self._head >= len(blk):
                    self._blocks.popleft()
                    self._head = 0
            self._queued -= n
            ended = self.ended and not self._blocks
            if n:
                self._cond.notify_all()
        started = self.pos > 0
        self.pos += n
        if n < frames and not ended:
            out[n:] = 0
            if started:  # silence before the first block is the start, not a gap
                self.starved += frames - n
            n = frames
        return n, ended


def _copy_channels(dst: np.ndarray, src: np.ndarray) -> None:
    """Copy ``src`` frames into ``dst``, mapping channel counts (mono to all; extra channels dropped)."""
    if src.shape[1] == dst.shape[1]:
        dst[:] = src
    elif src.shape[1] == 1:
        dst[:] = src  # broadcast mono to every output channel
    elif dst.shape[1] == 1:
        dst[:, 0] = src.mean(axis=1)
    else:
        k = min(src.shape[1], dst.shape[1])
        dst[:, :k] = src[:, :k]
        dst[:, k:] = 0


class Playback:
    """Plays an array or a file through an output device: play/pause/stop/seek and a loop range.

    ``position`` (seconds) is what the GUI polls for its playhead. Arrays are played from
    memory; files are decoded a couple of seconds ahead by a feeder thread (bounded memory
    for hour-long files). The callback only copies; the output stream is opened lazily and
    reused while the rate and channel count stay the same (opening one can take a second).
    """

    def __init__(self, device: str | int | None = None, latency: str | float = "high") -> None:
        # "high" (tens of ms): the callback is Python and shares the GIL with the file feeder;
        # a few-ms buffer underruns whenever another thread holds the GIL for one switch interval.
        self.device_name = device
        self.latency = latency
        self._src: _ArraySource | _FileSource = _ArraySource(np.zeros((0, 1), np.float32), 48000)
        self._playing = False
        self._drain = 0
        self._stream = None
        self._stream_key: tuple | None = None
        self.on_finished: Callable[[], None] | None = None  # called from the audio thread
        self.finished = threading.Event()
        self.underruns = 0  # PortAudio output-underflow flags seen by the callback since the last play()

    # -- source -----------------------------------------------------------------------------
    def load(self, audio: np.ndarray, samplerate: int) -> None:
        """Set the array to play: ``(samples,)`` or ``(channels, samples)``; stops playback."""
        self.stop()
        a = np.asarray(audio, np.float32)
        a = a[:, None] if a.ndim == 1 else a.T
        self._src.close()
        self._src = _ArraySource(np.ascontiguousarray(a), int(samplerate))

    def load_stream(self, source: StreamSource) -> None:
        """Play ``source`` as its producer fills it (playback starts before the producer is done)."""
        self.stop()
        self._src.close()
        self._src = source

    @property
    def streaming(self) -> bool:
        return isinstance(self._src, StreamSource)

    def load_file(self, path: str | os.PathLike) -> None:
        """Play a file streamed from disk (raises a typed AudioError if it cannot be read)."""
        self.stop()
        src = _FileSource(path)
        self._src.close()
        self._src = src

    @property
    def samplerate(self) -> int:
        return self._src.samplerate

    @property
    def audio(self) -> np.ndarray | None:
        return getattr(self._src, "audio", None)

    @property
    def duration(self) -> float:
        return self._src.frames / self._src.samplerate if self._src.samplerate else 0.0

    @property
    def position(self) -> float:
        """Seconds into the source of what is being heard now (the callback runs ahead by the latency)."""
        src = self._src
        pos = src.pos
        if self._playing and self._stream is not None:
            pos -= int(float(self._stream.latency) * src.samplerate)
            lo = src.loop[0] if src.loop is not None else 0
            if pos < lo:  # just after a loop jump (or the start): that is the loop's end
                pos = src.loop[1] - (lo - pos) if src.loop is not None and src.wrapped else lo
        return max(0, pos) / src.samplerate

    @property
    def playing(self) -> bool:
        return self._playing

    # -- stream -----------------------------------------------------------------------------
    def _ensure_stream(self) -> None:
        sd = sounddevice_module()
        device = find_device(self.device_name, "output")
        try:
            info = sd.query_devices(device, "output")
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(f"no usable output device: {e}") from None
        out_ch = max(1, min(int(info["max_output_channels"]), max(2, self._src.channels)))
        key = (device, self._src.samplerate, out_ch)
        if self._stream is not None and self._stream_key == key:
            return
        self._close_stream()
        try:
            self._stream = sd.OutputStream(device=device, samplerate=self._src.samplerate, channels=out_ch,
                                           dtype="float32", latency=self.latency,
                                           callback=self._callback, finished_callback=self._on_stream_end)
        except sd.PortAudioError as e:
            raise portaudio_error(e, "open the output device") from None
        self._stream_key = key

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:
                pass
            self._stream = None
            self._stream_key = None

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio thread
        if status is not None and status.output_underflow:  # (tests pull blocks without a status)
            self.underruns += 1
        if self._drain > 0:  # the end was reached: play silence until the device buffer is out
            outdata.fill(0)
            self._drain -= frames
            if self._drain <= 0:
                raise sounddevice_module().CallbackStop
            return
        if not self._playing:
            outdata.fill(0)
            raise sounddevice_module().CallbackStop
        n, ended = self._src.fill(outdata)
        if ended:
            outdata[n:] = 0
            self._playing = False
            self._ended = True
            # Stopping right away makes some hosts (ALSA) drop what is still buffered:
            # keep the stream running with silence for one latency more.
            self._drain = int(float(self._stream.latency) * self._src.samplerate) + frames

    def _on_stream_end(self) -> None:
        if getattr(self, "_ended", False):
            self.finished.set()
            if self.on_finished is not None:
                try:
                    self.on_finished()
                except Exception:  # the caller's bug: report it, but never let it kill the audio thread
                    log.exception("Playback.on_finished raised")

    # -- transport --------------------------------------------------------------------------
    def play(self, start: float | None = None) -> None:
        src = self._src
        if isinstance(src, StreamSource):
            if src.closed:
                raise AudioError("this stream was stopped: load a new one to play again")
        elif src.frames == 0:
            raise AudioError("nothing to play")
        if start is not None:
            self.seek(start)
        if src.pos >= src.frames:
            src.seek(src.loop[0] if src.loop else 0)
        self._ensure_stream()
        if not self._stream.stopped:  # also after a CallbackStop: PortAudio needs a stop first
            self._stream.abort()
        if isinstance(src, _FileSource):
            src.wait_ready(min(src.cap // 2, 4096))  # avoid starting on an empty ring
        self.finished.clear()
        self._ended = False
        self._drain = 0
        self.underruns = 0
        self._playing = True
        try:
            self._stream.start()
        except sounddevice_module().PortAudioError as e:
            self._playing = False
            raise portaudio_error(e, "start playback") from None

    def pause(self) -> None:
        self._playing = False
        if self._stream is not None and not self._stream.stopped:
            self._stream.abort()

    def toggle(self) -> None:
        self.pause() if self._playing else self.play()

    def stop(self) -> None:
        self.pause()
        if isinstance(self._src, StreamSource):  # what was played is gone: stop its producer too
            self._src.close()
        self._src.seek(self._src.loop[0] if self._src.loop else 0)

    def seek(self, seconds: float) -> None:
        src = self._src
        src.seek(int(min(max(0.0, seconds), self.duration) * src.samplerate))

    def set_loop(self, start: float | None, stop: float | None = None) -> None:
        """Loop between ``start`` and ``stop`` seconds; ``None`` turns looping off."""
        src = self._src
        if start is None or stop is None or stop <= start:
            if src.loop is not None:
                src.set_loop(None)
            return
        a = int(max(0.0, start) * src.samplerate)
        b = int(min(stop, self.duration) * src.samplerate)
        if b - a < 16:
            src.set_loop(None)
            return
        if src.loop == (a, b):
            return
        if not a <= src.pos < b:
            src.seek(a)
        src.set_loop((a, b))

    @property
    def loop(self) -> tuple[float, float] | None:
        src = self._src
        return None if src.loop is None else (src.loop[0] / src.samplerate, src.loop[1] / src.samplerate)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until playback reached the end (not for loops)."""
        return self.finished.wait(timeout)

    def close(self) -> None:
        self._playing = False
        self._close_stream()
        self._src.close()
