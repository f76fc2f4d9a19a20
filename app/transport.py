"""Transport logic between the shared player and the file view (what Space, Stop, Loop and a click do).

Kept out of the main window so that the window stays wiring only.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot


class TransportController(QObject):
    def __init__(self, ctx, file_view, loop_action, transport_bar, parent=None) -> None:
        super().__init__(parent)
        self.ctx, self.view, self.loop_action, self.bar = ctx, file_view, loop_action, transport_bar
        self.pending_seek = 0.0
        p = ctx.player
        p.positionChanged.connect(self._position)
        p.sourceChanged.connect(transport_bar.set_duration)
        p.stateChanged.connect(self._state)
        file_view.seekRequested.connect(self.seek)
        file_view.selectionChanged.connect(lambda *_: self.apply_loop())
        loop_action.toggled.connect(lambda _: self.apply_loop())
        ctx.selectionChanged.connect(self._selected)
        ctx.probe.probed.connect(self._probed)

    def _viewing_source(self) -> bool:
        return self.view.path is not None and self.ctx.player.source_label == str(self.view.path)

    @Slot()
    def play_pause(self) -> None:
        """Space: toggle the file on screen; a new file starts at the selection or the clicked point."""
        p, path = self.ctx.player, self.ctx.current_path
        if path is None or p.source_label == str(path):
            p.toggle()
            self.apply_loop()
            return
        sel = self.view.selection()
        p.play_file(path, start=sel[0] if sel else self.pending_seek)
        self.pending_seek = 0.0

    def apply_loop(self) -> None:
        sel = self.view.selection()
        if self.loop_action.isChecked() and sel and self._viewing_source():
            self.ctx.player.set_loop(*sel)
        else:
            self.ctx.player.set_loop(None)

    @Slot(float)
    def seek(self, t: float) -> None:
        if self._viewing_source():
            self.ctx.player.seek(t)
        else:
            self.pending_seek = t
            self.view.set_playhead(t)
            self.bar.set_position(t)  # the readout says where Space will start

    @Slot(list)
    def _selected(self, paths: list) -> None:
        """Show the selected file's length in the readout unless something else is playing."""
        p = self.ctx.player
        if not paths:
            if p.state != "playing":
                self.bar.set_duration("", 0.0)
                self.bar.set_position(0.0)
            return
        if p.state == "playing" or p.source_label == paths[0]:
            return
        self.pending_seek = 0.0
        info = self.ctx.probe.request(paths[0])  # cached, or probed off the GUI thread (see _probed)
        self.bar.set_duration(paths[0], info.duration if info is not None else 0.0)
        self.bar.set_position(0.0)

    @Slot(str, object, str)
    def _probed(self, path: str, info, error: str) -> None:
        p, current = self.ctx.player, self.ctx.current_path
        if current is None or path != str(current) or p.state == "playing" or p.source_label == path:
            return
        self.bar.set_duration(path, info.duration if info is not None else 0.0)

    @Slot(float)
    def _position(self, t: float) -> None:
        self.bar.set_position(t)
        if self._viewing_source():
            self.view.set_playhead(t)

    @Slot(str)
    def _state(self, state: str) -> None:
        self.bar.set_playing(state == "playing")
        if state == "playing":
            self.apply_loop()
