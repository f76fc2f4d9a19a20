"""The speaker lane: who spoke when, as coloured bars on the file view's time axis.

One row and one colour per speaker (``S1`` on top, in the colour of :func:`speaker_color`), one bar
per :class:`engine.results.SpeakerTurn`, each bar labelled with the speaker's name (the label the
diarizer gave, or the name the user chose: ``set_names``). The time axis is linked to the waveform's
(``link_x``), as the tag lane's. A click on a bar emits ``turnClicked(turn)``; hovering shows the
speaker's name and the turn's times. While there is nothing to show, a button in the middle offers
the action that fills the lane (``set_placeholder``; a click emits ``actionClicked``).

Nothing here decodes audio or loads models: the lane only draws what it is given.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor

from .tag_lane import TagLane, _clock

# distinct, bright hues (dark text stays readable on them); speaker k gets PALETTE[k - 1], then it cycles
PALETTE = (QColor(240, 120, 110), QColor(100, 180, 250), QColor(130, 215, 120), QColor(245, 195, 80),
           QColor(195, 145, 245), QColor(90, 210, 200), QColor(245, 150, 210), QColor(190, 190, 110))


def speaker_index(label: str) -> int:
    """0 for "S1", 1 for "S2"...; other labels after them, in a stable order of their text."""
    m = re.fullmatch(r"S(\d+)", label or "")
    return int(m.group(1)) - 1 if m else 1000 + sum(label.encode("utf-8"))


def speaker_color(label: str) -> QColor:
    return QColor(PALETTE[speaker_index(label) % len(PALETTE)])


def describe(turn, name: str) -> str:
    return f"{name}\n{_clock(turn.start)} – {_clock(turn.end)}  ({turn.end - turn.start:.2f} s)"


class SpeakerLane(TagLane):
    """Rows of speaker turns; reuses the tag lane's axis, playhead, placeholder and hit testing."""

    turnClicked = Signal(object)   # SpeakerTurn

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Speaker lane")
        self.button.setAccessibleName("Fill the speaker lane")
        self.getPlotItem().setLabel("left", "speakers")
        self.turns: list = []
        self.names: dict[str, str] = {}
        self.speakers: list[str] = []   # the speakers' labels, one row each (row = index)
        self.eventClicked.connect(self.turnClicked)

    # -- content ----------------------------------------------------------------------------
    def set_turns(self, turns, names: dict[str, str] | None = None) -> None:
        """Show these turns (None or []: nothing, the placeholder shows) with these names."""
        self.turns = list(turns or [])
        if names is not None:
            self.names = dict(names)
        self._layout()

    def set_names(self, names: dict[str, str]) -> None:
        """{"S1": "Alice", ...}: the names drawn on the bars and shown on hover."""
        self.names = dict(names)
        self._layout()

    def set_tagging(self, tagging) -> None:  # the tag lane's entry point: not used here
        self.set_turns([])

    def name_of(self, speaker: str) -> str:
        return self.names.get(speaker) or speaker

    def row_of(self, speaker: str) -> int:
        return self.speakers.index(speaker)

    def _layout(self) -> None:
        turns = getattr(self, "turns", [])  # the tag lane's constructor lays out before ours runs
        self.speakers = sorted({t.speaker for t in turns}, key=lambda s: (speaker_index(s), s))
        rows = {s: i for i, s in enumerate(self.speakers)}
        self.rows = [(t, rows[t.speaker]) for t in turns]
        self.bars.set_bars([(t.start, t.end, r, speaker_color(t.speaker), self.name_of(t.speaker))
                            for t, r in self.rows])
        self.getPlotItem().setYRange(0, max(1, len(self.speakers)), padding=0)
        self._update_button()

    def labels_drawn(self) -> list[str]:
        """The text drawn on each bar (in the order of :attr:`turns`)."""
        return [b[4] for b in self.bars.bars]

    # -- hover ----------------------------------------------------------------------------------
    def mouseMoveEvent(self, ev) -> None:
        super(TagLane, self).mouseMoveEvent(ev)
        turn = self.event_at(ev.position()) if self.rows else None
        self.show_hover(ev, describe(turn, self.name_of(turn.speaker)) if turn is not None else "", turn is not None)
