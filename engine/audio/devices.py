"""Audio devices through PortAudio (``sounddevice``): listing, lookup by name, and availability.

Qt-free. PortAudio is imported lazily: with no PortAudio library ``import sounddevice`` raises
``OSError``; with the library but no sound server or card, opening a stream raises
``sounddevice.PortAudioError``. Both become a :class:`~engine.errors.DeviceError` whose message
says what is missing, and :func:`availability` tells a GUI why recording or playback is disabled.
Capture is in :mod:`engine.audio.capture`, playback in :mod:`engine.audio.playback`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeviceError

_sd = None
_sd_error: str | None = None


def sounddevice_module():
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


def portaudio_error(e: Exception, what: str) -> DeviceError:
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
    sd = sounddevice_module()
    try:
        sd._terminate()
    except Exception:
        pass
    sd._initialize()


def list_devices(kind: str | None = None) -> list[AudioDevice]:
    """All audio devices (``kind`` = "input" / "output" filters). Raises DeviceError without PortAudio."""
    sd = sounddevice_module()
    try:
        raw = sd.query_devices()
        apis = sd.query_hostapis()
        d_in, d_out = sd.default.device
    except sd.PortAudioError as e:
        raise portaudio_error(e, "list audio devices") from None
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


@dataclass(frozen=True)
class Availability:
    input_ok: bool
    output_ok: bool
    input_reason: str = ""
    output_reason: str = ""

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
            sounddevice_module().check_input_settings()
        except Exception as e:  # no usable default input
            has_in, no_in = False, f"the default input device does not work: {e}"
    if has_out:
        try:
            sounddevice_module().check_output_settings()
        except Exception as e:
            has_out, no_out = False, f"the default output device does not work: {e}"
    return Availability(has_in, has_out, "" if has_in else no_in, "" if has_out else no_out)
