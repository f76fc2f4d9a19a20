"""The engine's typed errors. Every message is written for a person, not a traceback."""

from __future__ import annotations


class SonoscopeError(Exception):
    """Base class of every error the engine raises on purpose."""


class Cancelled(SonoscopeError):
    """A job was cancelled by its user; nothing half-written is left behind."""

    def __init__(self, message: str = "Cancelled") -> None:
        super().__init__(message)


class AudioError(SonoscopeError):
    """An audio file could not be read or written."""


class AudioFileNotFound(AudioError):
    pass


class NotAnAudioFile(AudioError):
    """The file exists but is not audio we can decode (random bytes, truncated header, a folder...)."""


class EmptyAudio(AudioError):
    """The file decodes but holds no samples."""


class InvalidAudio(AudioError):
    """The samples or the format parameters are not usable (NaN/Inf, absurd rate, too many channels)."""


class UnsupportedFormat(AudioError):
    """An export format we cannot write."""


class ModelError(SonoscopeError):
    """A model could not be found, fetched, verified or loaded."""


class ModelNotAvailable(ModelError):
    """The model is neither installed nor downloadable right now; the message says what to do."""


class ChecksumMismatch(ModelError):
    pass


class CheckpointError(ModelError):
    """A checkpoint is malformed or does not match the architecture."""


class DeviceError(SonoscopeError):
    """No usable audio or compute device."""
