"""The "why?" dock: every Bombcell threshold for the selected cluster, grouped by block (what it shows is
`dock_content.py`'s plain data), with its panels (`panels.py`) and the what-if bar (`whatif_bar.py`)."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.engine import STATUS_TEXT
from ..core.rules import LABEL_COLOURS, SWITCHES, switches_for
from ..tuning.whatif import WhatIfError, editable, parse_value, same_value
from .dock_content import (  # noqa: F401  (the dock's names, as tests and scripts import them)
    HEADERS,
    STATUS_COLUMN,
    THRESHOLD_COLUMN,
    DockContent,
    Line,
    content_text,
    dock_content,
)
from .guard import guarded
from .model_panel import ModelPanel, ThreeWay
from .panels import POPULATION_HEADERS, ConcordancePanel, EvidencePanel, PopulationPanel  # noqa: F401
from .session import LiveReasons
from .tables import RuleColumns
from .whatif_bar import WhatIfBar

STATUS_COLOURS = {  # foreground, background
    "decisive": ("#ffffff", "#a32020"),
    "also_failed": ("#ffffff", "#8a5a00"),
    "pass": ("#7fd17f", None),
    "exempt": ("#7fb2ff", None),
    "inactive": ("#8c8c8c", None),
    "missing": ("#c8a0ff", None),
    "threshold_missing": ("#ffffff", "#5a3d8a"),
}


class BombcellWhyView(QWidget):
    """Dock listing why Bombcell labelled the selected cluster as it did."""

    def __init__(self, live: LiveReasons, judge=None, parent=None):
        """``judge``: UnitRefine's model (`second_judge.SecondJudge`), when this sorting has one: a Model tab."""
        super().__init__(parent)
        self.live, self.judge = live, judge
        self.cluster_ids: list[int] = []
        self.shown_id: int | None = None
        self.content: DockContent | None = None
        self._filling = False

        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.source = QLabel()  # clusters recomputed live say so
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.source.setStyleSheet("color: #7fd7e8;")
        self.flag = QLabel()  # the label shown is Bombcell's saved one, not the rules'
        self.flag.setWordWrap(True)
        self.flag.setStyleSheet("background-color: #a35a00; color: #ffffff; padding: 3px;")
        self.classifier = QLabel(live.explanation.classified_by if live.explanation is not None else "")
        self.classifier.setWordWrap(True)
        self.classifier.setStyleSheet("color: #9a9a9a;")
        self.chooser = QComboBox()
        self.chooser.currentIndexChanged.connect(guarded(self._show_chosen, what="choosing a cluster"))
        copy = QPushButton("Copy")
        copy.setToolTip("Copy this explanation as text")
        copy.clicked.connect(guarded(lambda: QApplication.clipboard().setText(self.text()), what="Copy"))
        load = QPushButton("Load…")
        load.setToolTip("Try another run's parameters (a parameter file, a saved what-if, thresholds JSON) as a "
                        "what-if")
        load.clicked.connect(guarded(self._choose_parameters, what="Load…"))
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(HEADERS))
        self.tree.setAlternatingRowColors(False)
        self.tree.headerItem().setToolTip(THRESHOLD_COLUMN, "Double-click a threshold to try another value")
        self.tree.itemChanged.connect(guarded(self._threshold_edited, what="the threshold edit"))
        # long metric names and statuses elided when the table is narrow (full text in the tooltip)
        self.rule_columns = RuleColumns(self.tree, metric=0, status=STATUS_COLUMN, status_floor=STATUS_TEXT[0])

        # What-if: switches, and a banner while edited thresholds are active.
        self.on_overrides = self._apply_overrides  # the plugin replaces these to update Phy as well
        self.on_list = None
        names = switches_for(live.results.classifier, live.results.rules) if live.results else SWITCHES
        self.whatif_bar = bar = WhatIfBar(
            names, edit=self._edit, list_changed=lambda: self.on_list and self.on_list(self.live.changed_clusters()),
            save=self._save, reset=lambda: self.on_overrides({}))
        self.switches, self.whatif, self.banner = bar.switches, bar.whatif, bar.banner
        self.list_button, self.save_button, self.reset_button = bar.list_button, bar.save_button, bar.reset_button

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.chooser)
        top.addWidget(load)
        top.addWidget(copy)
        # A dark background hides the unchecked box Qt draws: the switches' boxes are drawn here, off and on.
        self.setStyleSheet("QWidget { background-color: #151515; color: #dddddd; }"
                           "QHeaderView::section { background-color: #262626; color: #dddddd; }"
                           "QCheckBox::indicator { width: 12px; height: 12px; border: 1px solid #9a9a9a;"
                           " border-radius: 2px; background-color: #262626; }"
                           "QCheckBox::indicator:checked { background-color: #4a90d9; border-color: #cfe3f7; }"
                           "QCheckBox::indicator:disabled { border-color: #5a5a5a; }")
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.evidence = EvidencePanel(live)
        self.splitter = selected = QSplitter(Qt.Vertical)  # sizes: the first look, then Phy's GUI state
        selected.addWidget(self.tree)
        selected.addWidget(self.evidence)
        selected.setStretchFactor(0, 1)
        selected.setStretchFactor(1, 2)
        self.tabs.addTab(selected, "Selected cluster")
        self.population = PopulationPanel(live, shown_cluster=lambda: self.shown_id, edit=self._edit)
        self.tabs.addTab(self.population, "Population")
        self.three_way = ThreeWay(judge, live) if judge is not None else None
        self.concordance = ConcordancePanel(live, apply_overrides=lambda overrides: self.on_overrides(overrides),
                                            three_way=self.three_way)
        self.tabs.addTab(self.concordance, "Your labels")
        self.model = ModelPanel(judge) if judge is not None else None
        if self.model is not None:
            self.tabs.addTab(self.model, "Model")
        self.model_line = QLabel()  # UnitRefine's label of the shown cluster, beside Bombcell's
        self.model_line.setWordWrap(True)
        self.model_line.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.model_line.setStyleSheet("color: #e8a33d;")
        self.model_line.setVisible(False)
        self.tabs.currentChanged.connect(guarded(lambda index: self._refresh_tab(), what="the dock's tab"))
        self.notes = QLabel("\n".join(f"note: {note}" for note in live.notes()))
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.notes.setStyleSheet("color: #c8a0ff;")
        self.notes.setVisible(bool(live.notes()))
        layout.addLayout(top)
        layout.addWidget(self.classifier)
        layout.addWidget(self.banner)
        layout.addWidget(self.notes)
        layout.addWidget(self.reason)
        layout.addWidget(self.flag)
        layout.addWidget(self.source)
        layout.addWidget(self.model_line)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(bar.switch_grid)
        self.show_clusters([])

    def sizeHint(self) -> QSize:
        return QSize(560, 700)

    def show_clusters(self, cluster_ids) -> None:
        """Show the first of the selected clusters; the chooser switches between them."""
        self.cluster_ids = [int(c) for c in cluster_ids]
        self.chooser.blockSignals(True)
        self.chooser.clear()
        self.chooser.addItems([f"cluster {c}" for c in self.cluster_ids])
        self.chooser.setVisible(len(self.cluster_ids) > 1)
        self.chooser.blockSignals(False)
        self._show(self.cluster_ids[0] if self.cluster_ids else None)

    def _show_chosen(self, index: int) -> None:
        if 0 <= index < len(self.cluster_ids):
            self._show(self.cluster_ids[index])

    def _edit(self, name: str, value) -> None:
        if self.live.results is None or self._filling:
            return
        try:
            value = parse_value(name, value, editable(self.live.results))
        except WhatIfError as exc:
            self.whatif.setText(str(exc))
            self.banner.setVisible(True)
            return
        saved = self.live.saved.params.get(name)
        overrides = {k: v for k, v in self.live.overrides.items() if k != name}
        if not same_value(saved, value):
            overrides[name] = value
        self.on_overrides(overrides)

    def _threshold_edited(self, item: QTreeWidgetItem, column: int) -> None:
        param = item.data(THRESHOLD_COLUMN, Qt.UserRole)
        if column == THRESHOLD_COLUMN and param and not self._filling:
            self._edit(param, item.text(THRESHOLD_COLUMN))

    def _apply_overrides(self, overrides: dict) -> None:
        """Without Phy around (the plugin replaces this): re-explain and redraw."""
        self.live.set_overrides(overrides)
        self.refresh()

    def _choose_parameters(self) -> None:
        if self.live.results is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, "Parameters of another Bombcell run", str(self.live.results.folder),
                                              "Parameter files (*.parquet *.csv *.json)")
        if path:
            self.load_parameters(path)

    def load_parameters(self, path) -> None:
        """Another run's parameters as a what-if (the banner, List, Reset and Save… follow)."""
        from ..io.params import CompareError

        try:
            overrides = self.live.overrides_from(path)
        except CompareError as exc:
            self.whatif.setText(str(exc))
            self.banner.setVisible(True)
            return
        if not overrides:
            self.whatif.setText(f"{Path(path).name}: no threshold or switch the rules read differs from this run")
            self.banner.setVisible(True)
            return
        self.on_overrides(overrides)

    def _save(self) -> None:
        path = self.live.save_overrides()
        self.whatif.setText(f"{self.live.whatif_line()}  (saved to {path})")

    def refresh(self) -> None:
        """Redraw after the explanation changed (what-if edits, reset)."""
        self._show(self.shown_id)
        self._refresh_tab()

    def _refresh_tab(self) -> None:
        """The Population and concordance tabs are computed only while shown."""
        if self.tabs.currentWidget() is self.population:
            self.population.refresh()
        elif self.tabs.currentWidget() is self.concordance:
            self.concordance.refresh()

    def _show(self, cluster_id: int | None) -> None:
        # the same rules redrawn (a what-if edit) keep their scroll; a cluster newly shown, or whose rules just
        # arrived (recomputed live), shows the rows that decided it
        again = cluster_id is not None and cluster_id == self.shown_id and bool(self.content and self.content.lines)
        self.shown_id = cluster_id
        if cluster_id is None:
            message = "Select a cluster to see why Bombcell labelled it."
            self.content = DockContent("no cluster selected", self.live.error or message)
        else:
            self.content = dock_content(self.live, cluster_id)
        colour = LABEL_COLOURS.get(self.content.label or "", "#dddddd")
        shown = ""
        if len(self.cluster_ids) > 1:
            shown = f" &nbsp;<small>({len(self.cluster_ids)} selected: pick one on the right)</small>"
        self.title.setText(f"<b style='color:{colour}'>{self.content.title}</b>{shown}")
        self.reason.setText(self.content.reason)
        self.source.setText(self.content.source)
        self.source.setVisible(bool(self.content.source))
        self.flag.setText(self.content.flag)
        self.flag.setVisible(bool(self.content.flag))
        notes = self.live.notes()
        self.notes.setText("\n".join(f"note: {note}" for note in notes))
        self.notes.setVisible(bool(notes))
        self._fill_tree(self.content.lines, again)
        self._filling = True
        params = self.live.explanation.params if self.live.explanation is not None else {}
        for name, box in self.switches.items():
            box.setChecked(bool(params.get(name, False)))
            box.setEnabled(self.live.results is not None)
            box.setStyleSheet("color: #b58900;" if name in self.live.overrides else "")
        self._filling = False
        line = self.live.whatif_line() if self.live.explanation is not None else None
        self.banner.setVisible(bool(line))
        if line:
            self.whatif.setText(line)
        self.evidence.show_cluster(cluster_id)
        self._show_model(cluster_id)

    def _show_model(self, cluster_id: int | None) -> None:
        if self.judge is None:
            return
        label = self.live.column_values(cluster_id)["bc_label"] if cluster_id is not None else None
        line = self.judge.summary(cluster_id, label)
        self.model_line.setText(line)
        self.model_line.setVisible(bool(line))
        self.model.show_cluster(cluster_id, label)

    def _fill_tree(self, lines: list[Line], keep_scroll: bool = False) -> None:
        self._filling = True
        scrolled = self.tree.verticalScrollBar().value()
        self.tree.setUpdatesEnabled(False)
        self.tree.clear()

        def add(parent, line: Line):
            item = QTreeWidgetItem(list(line.cells))
            for column, cell in enumerate(line.cells):
                item.setToolTip(column, cell)
            if line.param and self.live.results is not None:
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                item.setData(THRESHOLD_COLUMN, Qt.UserRole, line.param)
                if line.param in self.live.overrides:
                    item.setForeground(THRESHOLD_COLUMN, QBrush(QColor("#b58900")))
            foreground, background = STATUS_COLOURS.get(line.status, (None, None))
            for column in range(len(HEADERS)):
                if foreground:
                    item.setForeground(column, QBrush(QColor(foreground)))
                if background:
                    item.setBackground(column, QBrush(QColor(background)))
            if line.depth == 0 or line.status == "decisive":
                font = QFont()
                font.setBold(True)
                for column in range(len(HEADERS)):
                    item.setFont(column, font)
            parent.addChild(item) if isinstance(parent, QTreeWidgetItem) else parent.addTopLevelItem(item)
            if decisive[0] is None and line.depth > 0 and line.status == "decisive":
                decisive[0] = item
            for child in line.children:
                add(item, child)

        decisive = [None]  # the first rule (or group) row that decided the label
        for line in lines:
            add(self.tree, line)
        self.tree.expandAll()
        self.rule_columns.fit()
        self.tree.setUpdatesEnabled(True)
        if keep_scroll:
            self.tree.verticalScrollBar().setValue(scrolled)
        else:
            self._scroll_to(decisive[0])
        self._filling = False

    def _scroll_to(self, decisive: QTreeWidgetItem | None) -> None:
        """Qt keeps the previous cluster's scroll position: show the first row that decided this cluster, under
        its block's row if both fit (the top, for a cluster nothing decided against)."""
        tree = self.tree
        if decisive is None:
            tree.scrollToTop()
            return
        block = decisive
        while block.parent() is not None:
            block = block.parent()
        tree.scrollToItem(block, QTreeWidget.PositionAtTop)
        if tree.visualItemRect(decisive).bottom() > tree.viewport().height():
            tree.scrollToItem(decisive, QTreeWidget.PositionAtTop)

    def text(self) -> str:
        text = content_text(self.content) if self.content else ""
        if self.model is not None and self.model.cluster_id is not None and self.model_line.text():
            text += "\n" + self.model.text()
        return text
