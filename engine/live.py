"""Live audio: device listing, capture into a ring buffer, streaming recorder, array playback.

Qt-free. PortAudio (through ``sounddevice``) is imported lazily: with no PortAudio
library ``import sounddevice`` raises ``OSError``; with the library but no sound server
or card, opening a stream raises ``sounddevice.PortAudioError``. Both become a
:class:`~engine.errors.DeviceError` whose message says what is missing, and
:func:`availability` tells a GUI why recording or playback is disabled.

Real-time rule: PortAudio callbacks only copy into (or out of) preallocated buffers and
bump counters. Anything slow (disk, FFTs, drawing) happens on other threads that pull
from :class:`RingBuffer` with their own cursor.

- :class:`InputStream`: capture into a ring; ``read(cursor)``, ``latest(n)``, ``level_db()``,
  ``windows(size, hop)`` for streaming workers.
- :class:`Recorder`: streams an InputStream to a WAV whose header is rewritten and fsynced
  about once a second (a kill loses at most about a second).
- :class:`Playback`: arrays from memory or files streamed from disk by a read-ahead feeder;
  play/pause/stop/seek/loop range; ``position`` for a playhead.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import AudioError, DeviceError

_sd = None
_sd_error: str | None = None


def _sounddevice():
    """Import sounddevice once; raise DeviceError with a readable reason if PortAudio is missing."""
    global _sd, _sd_error
    if _sd is not None:
        return _sd
    if _sd_error is not None:
        raise DeviceError(_sd_error)
    try:
        import sounddevice
    except OSError as e:  # no libportaudio
        _sd_error = (f"PortAudio is not installed, so audio devices cannot be used "
                     f"(install libportaudio2; {e})")
        raise DeviceError(_sd_error) from None
    except ImportError as e:
        _sd_error = f"the Python package 'sounddevice' is missing ({e})"
        raise DeviceError(_sd_error) from None
    _sd = sounddevice
    return _sd


def _pa_error(e: Exception, what: str) -> DeviceError:
    msg = str(e)
    hint = ""
    if "Invalid device" in msg or "Device unavailable" in msg or "-9996" in msg or "-9985" in msg:
        hint = " (the device is missing or busy; check that a sound server is running and the device is plugged in)"
    elif "Invalid sample rate" in msg or "-9997" in msg:
        hint = " (the device does not support this sample rate)"
    return DeviceError(f"could not {what}: {msg}{hint}")


# ---------------------------------------------------------------------------------------------
# devices


@dataclass(frozen=True)
class AudioDevice:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False

    @property
    def is_input(self) -> bool:
        return self.max_input_channels > 0

    @property
    def is_output(self) -> bool:
        return self.max_output_channels > 0


def refresh() -> None:
    """Re-scan devices (PortAudio only enumerates at initialisation: call after a server starts)."""
    sd = _sounddevice()
    try:
        sd._terminate()
    except Exception:
        pass
    sd._initialize()


def list_devices(kind: str | None = None) -> list[AudioDevice]:
    """All audio devices (``kind`` = "input" / "output" filters). Raises DeviceError without PortAudio."""
    sd = _sounddevice()
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        d_in, d_out = sd.default.device
    except sd.PortAudioError as e:
        raise _pa_error(e, "list audio devices") from None
    # PortAudio's "default" is an index or -1; resolve the host API default too
    try:
        d_in = sd.query_devices(kind="input")["index"] if d_in is None or d_in < 0 else d_in
    except (sd.PortAudioError, ValueError, KeyError):
        d_in = -1
    try:
        d_out = sd.query_devices(kind="output")["index"] if d_out is None or d_out < 0 else d_out
    except (sd.PortAudioError, ValueError, KeyError):
        d_out = -1
    devices = []
    for i, d in enumerate(raw):
        dev = AudioDevice(i, d["name"], apis[d["hostapi"]]["name"], int(d["max_input_channels"]),
                          int(d["max_output_channels"]), float(d["default_samplerate"]),
                          i == d_in, i == d_out)
        if kind == "input" and not dev.is_input or kind == "output" and not dev.is_output:
            continue
        devices.append(dev)
    return devices


def find_device(name: str | int | None, kind: str) -> int | None:
    """Resolve a device by index or (sub)string of its name; '' or None is the system default.

    Raises DeviceError if a named device is not present.
    """
    if name is None or name == "" or name == -1:
        return None
    devices = list_devices(kind)
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        for d in devices:
            if d.index == int(name):
                return d.index
    else:
        for d in devices:
            if d.name == name:
                return d.index
        for d in devices:
            if name.lower() in d.name.lower():
                return d.index
    raise DeviceError(f"the {kind} device {name!r} is not connected; choose another one in Settings")


def default_device(kind: str) -> AudioDevice | None:
    for d in list_devices(kind):
        if (d.is_default_input if kind == "input" else d.is_default_output):
            return d
    return None


@dataclass(frozen=True)
class Availability:
    input_ok: bool
    output_ok: bool
    input_reason: str = ""
    output_reason: str = ""

    @property
    def any_ok(self) -> bool:
        return self.input_ok or self.output_ok


def availability() -> Availability:
    """Whether recording and playback can work right now, and if not, why (for tooltips)."""
    try:
        devices = list_devices()
    except DeviceError as e:
        return Availability(False, False, str(e), str(e))
    has_in = any(d.is_input for d in devices)
    has_out = any(d.is_output for d in devices)
    no_in = ("no audio input device was found (no sound server such as PulseAudio/PipeWire is "
             "running, or no microphone is connected)")
    no_out = ("no audio output device was found (no sound server such as PulseAudio/PipeWire is "
              "running, or no sound card is present)")
    if has_in:
        try:
            _sounddevice().check_input_settings()
        except Exception as e:  # no usable default input
            has_in, no_in = False, f"the default input device does not work: {e}"
    if has_out:
        try:
            _sounddevice().check_output_settings()
        except Exception as e:
            has_out, no_out = False, f"the default output device does not work: {e}"
    return Availability(has_in, has_out, "" if has_in else no_in, "" if has_out else no_out)


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
        sd = _sounddevice()
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
            raise _pa_error(e, "open the input device") from None
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
        except _sounddevice().PortAudioError as e:
            raise _pa_error(e, "start recording") from None
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
        from . import audio

        info = audio.info(path)
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
        from . import audio

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
                blocks = audio.stream(self.path, block_frames=self.block, start=next_frame / self.samplerate,
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

    # -- source -----------------------------------------------------------------------------
    def load(self, audio: np.ndarray, samplerate: int) -> None:
        """Set the array to play: ``(samples,)`` or ``(channels, samples)``; stops playback."""
        self.stop()
        a = np.asarray(audio, np.float32)
        a = a[:, None] if a.ndim == 1 else a.T
        self._src.close()
        self._src = _ArraySource(np.ascontiguousarray(a), int(samplerate))

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
        sd = _sounddevice()
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
            raise _pa_error(e, "open the output device") from None
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
        if self._drain > 0:  # the end was reached: play silence until the device buffer is out
            outdata.fill(0)
            self._drain -= frames
            if self._drain <= 0:
                raise _sd.CallbackStop
            return
        if not self._playing:
            outdata.fill(0)
            raise _sd.CallbackStop
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
                except Exception:
                    pass

    # -- transport --------------------------------------------------------------------------
    def play(self, start: float | None = None) -> None:
        src = self._src
        if src.frames == 0:
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
        self._playing = True
        try:
            self._stream.start()
        except _sd.PortAudioError as e:
            self._playing = False
            raise _pa_error(e, "start playback") from None

    def pause(self) -> None:
        self._playing = False
        if self._stream is not None and not self._stream.stopped:
            self._stream.abort()

    def toggle(self) -> None:
        self.pause() if self._playing else self.play()

    def stop(self) -> None:
        self.pause()
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
