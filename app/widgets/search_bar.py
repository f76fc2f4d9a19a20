"""A find bar: a text field, previous / next buttons and "3 of 7".

Emits ``searched(text)`` as the text changes, ``stepped(+1 | -1)`` on Enter (next) or the
buttons; the owner finds the hits and calls ``set_count(position, total)``.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget


class SearchBar(QWidget):
    searched = Signal(str)
    stepped = Signal(int)

    def __init__(self, parent=None, placeholder: str = "Find a word…") -> None:
        super().__init__(parent)
        self.field = QLineEdit(self)
        self.field.setPlaceholderText(placeholder)
        self.field.setClearButtonEnabled(True)
        self.field.setAccessibleName("Search the transcript")
        self.prev_button = QToolButton(self)
        self.prev_button.setText("◀")
        self.prev_button.setToolTip("Previous occurrence")
        self.prev_button.setAccessibleName("Previous occurrence")
        self.next_button = QToolButton(self)
        self.next_button.setText("▶")
        self.next_button.setToolTip("Next occurrence (Enter)")
        self.next_button.setAccessibleName("Next occurrence")
        self.count = QLabel("", self)
        self.count.setAccessibleName("Occurrences")
        self.count.setMinimumWidth(60)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.field, 1)
        lay.addWidget(self.prev_button)
        lay.addWidget(self.next_button)
        lay.addWidget(self.count)
        self.field.textChanged.connect(self.searched)
        self.field.returnPressed.connect(lambda: self.stepped.emit(1))
        self.prev_button.clicked.connect(lambda: self.stepped.emit(-1))
        self.next_button.clicked.connect(lambda: self.stepped.emit(1))

    def set_count(self, position: int | None, total: int) -> None:
        """``position`` (0-based, None: none chosen yet) of ``total`` hits."""
        text = self.field.text().strip()
        if not text:
            self.count.setText("")
        elif total == 0:
            self.count.setText("no match")
        else:
            self.count.setText(f"{position + 1} of {total}" if position is not None else f"{total} found")
        self.prev_button.setEnabled(total > 0)
        self.next_button.setEnabled(total > 0)

    def text(self) -> str:
        return self.field.text()

    def set_text(self, text: str) -> None:
        self.field.setText(text)
