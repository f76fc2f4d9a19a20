"""Who spoke when, per file, shared by the panels: the turns found and the names the user gave.

The Speakers panel fills it (Find speakers, rename); the Transcribe panel reads it to label its lines
and fills it when it finds the speakers itself, so a name given in one panel shows in the other.
The Timeline panel hears ``renamed`` and saves the name in the file's sidecar (FILE.sonoscope.json).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class SpeakerBook(QObject):
    changed = Signal(str)  # the path whose turns or names changed
    renamed = Signal(str, str, str)  # (path, speaker label, name: "" for the label again), after changed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.turns: dict[str, list] = {}            # path -> engine.results.SpeakerTurn list of the last run
        self.names: dict[str, dict[str, str]] = {}  # path -> {"S1": "Alice"}

    def set_turns(self, path: str, turns: list) -> None:
        self.turns[str(path)] = list(turns)
        self.changed.emit(str(path))

    def rename(self, path: str, speaker: str, name: str) -> None:
        """Call ``speaker`` ("S1") ``name`` in ``path`` (an empty name: back to "S1")."""
        names = self.names.setdefault(str(path), {})
        name = name.strip()
        if name and name != speaker:
            names[speaker] = name
        else:
            names.pop(speaker, None)
        self.changed.emit(str(path))
        self.renamed.emit(str(path), str(speaker), names.get(speaker, ""))

    def names_of(self, path: str) -> dict[str, str]:
        return dict(self.names.get(str(path), {}))
