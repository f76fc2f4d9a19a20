"""Live capture: a preallocated ring buffer, the input stream that fills it, and a streaming recorder.

Real-time rule: the PortAudio callback only copies into :class:`RingBuffer` and bumps counters.
Anything slow (disk, FFTs, drawing) happens on other threads that pull from the ring with their
own cursor.

- :class:`InputStream`: capture into a ring; ``read(cursor)``, ``latest(n)``, ``level_db()``,
  ``windows(size, hop)`` for streaming workers.
- :class:`Recorder`: streams an InputStream to a WAV whose header is rewritten and fsynced
  about once a second (a kill loses at most about a second).
- :class:`ReplaySource`: a recording played into a ring in real time, standing in for a microphone.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import AudioError, DeviceError
from . import io as audio_io
from .devices import find_device, portaudio_error, sounddevice_module

# ---------------------------------------------------------------------------------------------
# ring buffer


class RingBuffer:
    """Preallocated single-writer / many-reader ring of float32 frames ``(capacity, channels)``.

    The writer (a PortAudio callback) only copies and then advances ``written``, the total
    number of frames ever written. A reader keeps its own absolute cursor and calls
    :meth:`read_from`; if it fell more than ``capacity`` behind, the oldest frames are lost
    and reported. No locks: a reader re-checks ``written`` after copying and discards
    anything the writer may have overwritten meanwhile.
    """

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = int(capacity)
        self.channels = int(channels)
        self.buf = np.zeros((self.capacity, self.channels), np.float32)
        self.written = 0  # total frames written (monotonic)
        self.last_write_time = 0.0  # time.monotonic() of the last write

    def write(self, block: np.ndarray) -> None:
        n = len(block)
        if n == 0:
            return
        if n > self.capacity:
            block = block[-self.capacity:]
            self.written += n - self.capacity
            n = self.capacity
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self.buf[start:start + first] = block[:first]
        if first < n:
            self.buf[:n - first] = block[first:]
        self.written += n  # publish after the copy
        self.last_write_time = time.monotonic()

    def _copy(self, start: int, stop: int) -> np.ndarray:
        n = stop - start
        out = np.empty((n, self.channels), np.float32)
        a = start % self.capacity
        first = min(n, self.capacity - a)
        out[:first] = self.buf[a:a + first]
        if first < n:
            out[first:] = self.buf[:n - first]
        return out

    def read_from(self, cursor: int, max_frames: int | None = None) -> tuple[np.ndarray, int, int]:
        """Frames from absolute position ``cursor`` to now: ``(frames (n, ch), new_cursor, lost)``."""
        end = self.written
        if max_frames is not None:
            end = min(end, cursor + max_frames)
        lost = 0
        oldest = max(0, self.written - self.capacity)
        if cursor < oldest:
            lost, cursor = oldest - cursor, oldest
            end = max(end, cursor)
        data = self._copy(cursor, end)
        # the writer may have lapped us during the copy: drop what it overwrote
        overwritten = self.written - self.capacity - cursor
        if overwritten > 0:
            k = min(overwritten, len(data))
            data, lost, cursor = data[k:], lost + k, cursor + k
        return data, cursor + len(data), lost

    def latest(self, n: int) -> np.ndarray:
        """The most recent ``n`` frames (zeros before the first write)."""
        n = min(int(n), self.capacity)
        end = self.written
        start = end - n
        if start < 0:
            out = np.zeros((n, self.channels), np.float32)
            if end:
                out[-end:] = self._copy(0, end)
            return out
        return self._copy(start, end)


# ---------------------------------------------------------------------------------------------
# capture


class InputStream:
    """A running input stream whose callback copies into a :class:`RingBuffer`.

    Consumers (level meter, live spectrogram, recorder, streaming models) pull with
    :meth:`cursor` / :meth:`read` or :meth:`latest`; nothing slow runs in the callback.
    """

    def __init__(self, device: str | int | None = None, samplerate: int | None = None,
                 channels: int = 1, blocksize: int = 0, buffer_seconds: float = 30.0,
                 latency: str | float = "low") -> None:
        sd = sounddevice_module()
        self.device = find_device(device, "input")
        if samplerate is None:
            try:
                info = sd.query_devices(self.device, "input")
            except (sd.PortAudioError, ValueError) as e:
                raise DeviceError(f"no usable input device: {e}") from None
            samplerate = int(info["default_samplerate"])
        self.samplerate = int(samplerate)
        self.channels = int(channels)
        self.ring = RingBuffer(int(buffer_seconds * self.samplerate), self.channels)
        self.overflows = 0
        self.callbacks = 0
        self._stream = None
        try:
            self._stream = sd.InputStream(device=self.device, samplerate=self.samplerate,
                                          channels=self.channels, dtype="float32",
                                          blocksize=blocksize, latency=latency,
                                          callback=self._callback)
        except sd.PortAudioError as e:
            raise portaudio_error(e, "open the input device") from None
        except ValueError as e:  # e.g. more channels than the device has
            raise DeviceError(f"could not open the input device: {e}") from None

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread
        if status.input_overflow:
            self.overflows += 1
        self.ring.write(indata)
        self.callbacks += 1

    @property
    def latency(self) -> float:
        """Input latency reported by PortAudio (seconds)."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.active

    @property
    def frames(self) -> int:
        return self.ring.written

    def start(self) -> "InputStream":
        try:
            self._stream.start()
        except sounddevice_module().PortAudioError as e:
            raise portaudio_error(e, "start recording") from None
        return self

    def stop(self) -> None:
        if self._stream is not None and self._stream.active:
            self._stream.stop()

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            finally:
                self._stream = None

    def __enter__(self) -> "InputStream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def cursor(self) -> int:
        """An absolute position to start reading from (now)."""
        return self.ring.written

    def read(self, cursor: int, max_frames: int | None = None) -> tuple[np.ndarray, int, int]:
        """``(frames (n, channels), new_cursor, lost_frames)`` since ``cursor``."""
        return self.ring.read_from(cursor, max_frames)

    def latest(self, n: int) -> np.ndarray:
        return self.ring.latest(n)

    def wait_frames(self, cursor: int, n: int, timeout: float = 5.0) -> bool:
        """Block until ``n`` frames past ``cursor`` arrived (for scripts/tests)."""
        t_end = time.monotonic() + timeout
        while self.ring.written < cursor + n:
            if time.monotonic() > t_end:
                return False
            time.sleep(0.005)
        return True

    def read_exactly(self, cursor: int, n: int, timeout: float = 5.0,
                     cancelled: Callable[[], bool] | None = None) -> tuple[np.ndarray, int, int]:
        """Block (on a worker thread, never the GUI) until ``n`` frames past ``cursor`` exist; return them.

        Raises DeviceError if nothing arrives within ``timeout`` (device unplugged, stream stopped).
        """
        t_end = time.monotonic() + timeout
        while self.ring.written < cursor + n:
            if cancelled is not None and cancelled():
                break
            if time.monotonic() > t_end:
                raise DeviceError("the input device stopped delivering audio")
            time.sleep(min(0.01, n / self.samplerate / 4))
        return self.ring.read_from(cursor, n)

    def windows(self, size: int, hop: int, cursor: int | None = None, timeout: float = 5.0,
                cancelled: Callable[[], bool] | None = None):
        """Yield overlapping windows ``(size, channels)`` every ``hop`` new frames, as they arrive.

        For streaming workers (live transcription, VAD): ``for w in stream.windows(16000, 8000): ...``.
        Stops when ``cancelled()`` returns True. If the worker falls more than the ring behind,
        the gap is skipped (frames are lost, never silently stretched).
        """
        cursor = self.cursor() if cursor is None else cursor
        window = np.zeros((size, self.channels), np.float32)
        filled = 0
        while not (cancelled is not None and cancelled()):
            need = size - filled if filled < size else hop
            data, cursor, lost = self.read_exactly(cursor, need, timeout, cancelled)
            if len(data) < need:
                return
            if lost:
                filled = 0  # a gap: restart the window rather than splice across it
                continue
            if filled < size:
                window[filled:filled + len(data)] = data
                filled += len(data)
            else:
                window[:-hop] = window[hop:]
                window[-hop:] = data
            if filled >= size:
                yield window.copy()

    def level_db(self, seconds: float = 0.05) -> tuple[float, float]:
        """(peak, rms) in dBFS over the last ``seconds``."""
        x = self.ring.latest(max(1, int(seconds * self.samplerate)))
        peak = float(np.abs(x).max()) if x.size else 0.0
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
        return 20 * np.log10(max(peak, 1e-9)), 20 * np.log10(max(rms, 1e-9))


# ---------------------------------------------------------------------------------------------
# recording to disk


class WavStreamWriter:
    """Appends frames to a WAV file whose header sizes are rewritten (and fsynced) periodically.

    The file is valid after every :meth:`sync`: a crash loses at most what was written since.
    Subtypes: PCM_16 (default), PCM_24, FLOAT. Limited to 4 GiB of data (RIFF).
    """

    _FORMATS = {"PCM_16": (1, 2), "PCM_24": (1, 3), "FLOAT": (3, 4)}
    MAX_DATA = 0xFFFFFFFF - 64

    def __init__(self, path: str | os.PathLike, samplerate: int, channels: int,
                 subtype: str = "PCM_16") -> None:
        if subtype not in self._FORMATS:
            raise AudioError(f"unsupported recording format {subtype}; use one of {', '.join(self._FORMATS)}")
        self.path = Path(path)
        self.samplerate, self.channels, self.subtype = int(samplerate), int(channels), subtype
        self.fmt_tag, self.width = self._FORMATS[subtype]
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._f = open(self.path, "xb")  # never overwrite a take
        except FileExistsError:
            raise AudioError(f"{self.path.name} already exists; not overwriting it") from None
        except OSError as e:
            raise AudioError(f"cannot create {self.path}: {e.strerror or e}") from None
        self._f.write(self._header(0))
        self.sync()

    def _header(self, data_bytes: int) -> bytes:
        block_align = self.channels * self.width
        fmt = struct.pack("<HHIIHH", self.fmt_tag, self.channels, self.samplerate,
                          self.samplerate * block_align, block_align, self.width * 8)
        return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt "
                + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_bytes))

    def _encode(self, frames: np.ndarray) -> bytes:
        x = np.asarray(frames, np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if self.subtype == "FLOAT":
            return np.ascontiguousarray(x, "<f4").tobytes()
        x = np.clip(x, -1.0, 1.0)
        if self.subtype == "PCM_16":
            return np.round(x * 32767.0).astype("<i2").tobytes()
        v = np.round(x * 8388607.0).astype("<i4").reshape(-1)  # PCM_24: low three bytes
        return v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()

    @property
    def data_bytes(self) -> int:
        return self.frames * self.channels * self.width

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate

    def write(self, frames: np.ndarray) -> None:
        """Append ``(n, channels)`` (or ``(n,)`` for mono) float frames."""
        if len(frames) == 0:
            return
        data = self._encode(frames)
        if self.data_bytes + len(data) > self.MAX_DATA:
            raise AudioError(f"{self.path.name}: a WAV recording cannot exceed 4 GiB; start a new take")
        try:
            self._f.write(data)
        except OSError as e:
            raise AudioError(f"{self.path.name}: writing the recording failed ({e.strerror or e})") from None
        self.frames += len(frames)

    def sync(self) -> None:
        """Rewrite the header sizes for what is written so far and flush to the disk."""
        f = self._f
        pos = f.tell()
        f.seek(4)
        f.write(struct.pack("<I", 36 + self.data_bytes))
        f.seek(40)
        f.write(struct.pack("<I", self.data_bytes))
        f.seek(pos)
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self.sync()
        finally:
            self._f.close()


class Recorder:
    """Streams an :class:`InputStream` to a WAV file on a background thread while recording.

    The header is rewritten and the file fsynced every ``sync_interval`` seconds, so a
    kill or power loss mid-take leaves a readable file up to about the last second.
    ``stop()`` writes the rest and returns the path. ``error`` holds a disk error if one
    stopped the take.
    """

    def __init__(self, source: InputStream, path: str | os.PathLike, subtype: str = "PCM_16",
                 sync_interval: float = 1.0, poll_interval: float = 0.05) -> None:
        self.source = source
        self.path = Path(path)
        self.subtype = subtype
        self.sync_interval = sync_interval
        self.poll_interval = poll_interval
        self.writer: WavStreamWriter | None = None
        self.lost_frames = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = 0

    @property
    def frames(self) -> int:
        return self.writer.frames if self.writer else 0

    @property
    def duration(self) -> float:
        return self.frames / self.source.samplerate

    @property
    def recording(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Recorder":
        self.writer = WavStreamWriter(self.path, self.source.samplerate, self.source.channels, self.subtype)
        if not self.source.active:
            self.source.start()
        self._cursor = self.source.cursor()
        self._thread = threading.Thread(target=self._loop, name="sonoscope-recorder", daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        data, self._cursor, lost = self.source.read(self._cursor)
        self.lost_frames += lost
        if lost:
            self.writer.write(np.zeros((lost, self.source.channels), np.float32))
        self.writer.write(data)

    def _loop(self) -> None:
        last_sync = time.monotonic()
        try:
            while not self._stop.wait(self.poll_interval):
                self._drain()
                if time.monotonic() - last_sync >= self.sync_interval:
                    self.writer.sync()
                    last_sync = time.monotonic()
            self._drain()
        except AudioError as e:
            self.error = str(e)
        finally:
            try:
                self.writer.close()
            except OSError as e:
                self.error = self.error or f"{self.path.name}: could not finish the file ({e})"

    def stop(self) -> Path:
        """Finish the take (everything captured so far is written) and return the file path."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.error:
            raise AudioError(self.error)
        return self.path


class ReplaySource:
    """An :class:`InputStream` look-alike that plays a recording into a ring buffer at ``speed``
    times real time (a recording standing in for the microphone).

    ``audio`` is an array at ``samplerate``, or a file path: the file is then decoded (to mono at
    ``samplerate``) by :meth:`start`, on the thread of the job that reads it, not the caller's."""

    def __init__(self, audio: np.ndarray | str | os.PathLike, samplerate: int = 16000, speed: float = 1.0,
                 block: float = 0.02) -> None:
        if isinstance(audio, np.ndarray):
            a = np.asarray(audio, np.float32)
            self.audio = a.reshape(-1) if a.ndim == 1 else a.mean(axis=0 if a.shape[0] < a.shape[1] else 1)
            self.path = None
        else:
            self.audio, self.path = None, Path(audio)
        self.samplerate, self.channels = int(samplerate), 1
        self.speed, self.block = float(speed), max(1, int(block * samplerate))
        self.ring = RingBuffer(int(samplerate * 60), 1)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    autostart = True  # live_transcribe starts it after taking its read cursor

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def start(self) -> "ReplaySource":
        if self.audio is None:
            self.audio = audio_io.load(self.path, sr=self.samplerate, mono=True)[0]
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        for i in range(0, len(self.audio), self.block):
            if self._stop.is_set():
                break
            wait = i / self.samplerate / self.speed - (time.monotonic() - t0)
            if wait > 0:
                time.sleep(wait)
            self.ring.write(self.audio[i:i + self.block, None])
        self._done.set()

    def cursor(self) -> int:
        return self.ring.written

    def read(self, cursor: int, max_frames: int | None = None):
        return self.ring.read_from(cursor, max_frames)

    def latest(self, n: int) -> np.ndarray:
        return self.ring.latest(n)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._done.set()

    stop = close
