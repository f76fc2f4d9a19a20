"""The one typed registry of persisted settings, stored with QSettings.

Every key lives in :data:`KEYS` with its type, default and a one-line description;
code reads and writes settings only through :class:`Settings` with these ``Key``
objects, never with raw strings. A panel that needs its own setting defines it once
at module level::

    from app.settings import define
    MODEL = define("transcribe/model", str, "whisper-base", "Transcription model id")
    ...
    ctx.settings.get(MODEL); ctx.settings.set(MODEL, "whisper-tiny.en")

``Settings.changed`` is emitted with ``(key_name, value)`` after each ``set``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QSettings, Signal

from engine import defaults as D

T = TypeVar("T")


@dataclass(frozen=True)
class Key(Generic[T]):
    name: str
    type: type
    default: Any
    doc: str = ""
    choices: tuple = field(default=())

    def coerce(self, value: Any) -> Any:
        """Convert a raw QSettings value (often a string in INI files) to this key's type."""
        if value is None:
            return self.default
        try:
            if self.type is bool:
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                else:
                    value = bool(value)
            elif self.type is list:
                if isinstance(value, str):
                    value = [value] if value else []
                value = [str(v) for v in value]
            elif self.type is bytes:
                value = bytes(value)
            else:
                value = self.type(value)
        except (TypeError, ValueError):
            return self.default
        if self.choices and value not in self.choices:
            return self.default
        return value


KEYS: dict[str, Key] = {}


def define(name: str, type_: type, default: Any, doc: str = "", choices: tuple = ()) -> Key:
    """Register a key (idempotent for an identical definition) and return it."""
    key = Key(name, type_, default, doc, tuple(choices))
    old = KEYS.get(name)
    if old is not None and (old.type is not key.type or old.default != key.default):
        raise ValueError(f"setting {name!r} is already defined as {old}")
    KEYS[name] = old or key
    return KEYS[name]


def _default_output_dir() -> str:
    music = Path.home() / "Music"
    return str((music if music.is_dir() else Path.home()) / "Sonoscope")


# -- the application's keys -------------------------------------------------------------------
COMPUTE_DEVICE = define("compute/device", str, "auto", "Where models run: auto, cpu or cuda",
                        ("auto", "cpu", "cuda"))
THREADS = define("compute/threads", int, 0, "CPU threads for models (0 = automatic)")
INPUT_DEVICE = define("audio/input_device", str, "", "Recording device name ('' = system default)")
OUTPUT_DEVICE = define("audio/output_device", str, "", "Playback device name ('' = system default)")
RECORD_RATE = define("audio/record_rate", int, 48000, "Recording sample rate in Hz")
RECORD_CHANNELS = define("audio/record_channels", int, 1, "Recording channels", (1, 2))
OUTPUT_DIR = define("files/output_dir", str, _default_output_dir(),
                    "Session folder: recordings and generated files go here")
EXPORT_FORMAT = define("files/export_format", str, D.EXPORT_FORMAT, "Format of exported audio",
                       ("wav", "flac", "ogg", "mp3", "aiff"))
LAST_OPEN_DIR = define("files/last_open_dir", str, "", "Folder last used in File → Open")
LAST_EXPORT_DIR = define("files/last_export_dir", str, "",
                         "Folder the last export was saved to ('' = the session folder)")
RECENT_FILES = define("files/recent", list, [], "Files and folders opened lately (File → Open Recent)")
LOG_FREQUENCY = define("view/log_frequency", bool, True, "Spectrograms use a logarithmic frequency axis")
DB_RANGE = define("view/db_range", int, 80, "Spectrogram colour range in dB below the peak")
WINDOW_GEOMETRY = define("window/geometry", bytes, b"", "Main window geometry")
WINDOW_STATE = define("window/state", bytes, b"", "Main window dock layout")


class Settings(QObject):
    """Typed access to QSettings through registered :class:`Key` objects."""

    changed = Signal(str, object)

    def __init__(self, qsettings: QSettings | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if qsettings is None:
            ini = os.environ.get("SONOSCOPE_SETTINGS")  # tests and portable installs
            qsettings = (QSettings(ini, QSettings.Format.IniFormat) if ini
                         else QSettings("Sonoscope", "Sonoscope"))
        self.qs = qsettings

    def get(self, key: Key[T]) -> T:
        if key.name not in KEYS:
            raise KeyError(f"unregistered setting {key.name!r}: use app.settings.define")
        return key.coerce(self.qs.value(key.name, key.default))

    def set(self, key: Key[T], value: T) -> None:
        if key.name not in KEYS:
            raise KeyError(f"unregistered setting {key.name!r}: use app.settings.define")
        value = key.coerce(value)
        self.qs.setValue(key.name, value)
        self.changed.emit(key.name, value)

    def reset(self, key: Key) -> None:
        self.qs.remove(key.name)
        self.changed.emit(key.name, key.default)

    def sync(self) -> None:
        self.qs.sync()

    def output_dir(self) -> Path:
        """The session folder (created on demand)."""
        path = Path(self.get(OUTPUT_DIR)).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
