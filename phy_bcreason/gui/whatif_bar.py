"""The dock's what-if controls: Bombcell's switches, and a banner while edits are active (List, Save…, Reset)."""

from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QWidget

from .flow import FlowLayout
from .guard import guarded


class WhatIfBar:
    """``edit(name, value)`` turns a switch; ``list_changed()``, ``save()`` and ``reset()`` are the banner's
    buttons. ``switch_grid`` and ``banner`` are the two widgets the dock lays out."""

    def __init__(self, names, edit, list_changed, save, reset):
        self.switches = {}
        grid = FlowLayout()  # as many columns as the dock's width holds
        grid.setContentsMargins(0, 0, 0, 0)
        for name in names:
            box = QCheckBox(name)
            box.setToolTip(f"What-if: turn Bombcell's {name} on or off")
            box.toggled.connect(guarded(lambda checked, name=name: edit(name, checked), what=f"the {name} switch"))
            self.switches[name] = box
            grid.addWidget(box)
        self.switch_grid = QWidget()
        self.switch_grid.setLayout(grid)
        self.whatif = QLabel()
        self.whatif.setWordWrap(True)
        self.whatif.setStyleSheet("background-color: #b58900; color: #000000; padding: 3px;")
        self.list_button = QPushButton("List")
        self.list_button.setToolTip("Show only the clusters whose label these edits change")
        self.list_button.clicked.connect(guarded(list_changed, what="List"))
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the edited parameters next to the Bombcell results (new file)")
        self.save_button.clicked.connect(guarded(save, what="Save…"))
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the parameters Bombcell ran with")
        self.reset_button.clicked.connect(guarded(reset, what="Reset"))
        banner = QHBoxLayout()
        banner.addWidget(self.whatif, 1)
        for button in (self.list_button, self.save_button, self.reset_button):
            banner.addWidget(button)
        self.banner = QWidget()
        self.banner.setLayout(banner)
