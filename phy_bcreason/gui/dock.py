"""The "why?" dock: every Bombcell threshold for the selected cluster, grouped by block."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QBrush, QColor, QFont, QImage, QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.engine import RUN_SPELLING, STATUS_NAMES, STATUS_TEXT
from ..core.rules import (
    BLOCK_TITLES,
    BLOCKS,
    GROUP_PHRASES,
    GROUP_TESTS,
    LABEL_COLOURS,
    PYTHON,
    SPIKEINTERFACE,
    SWITCHES,
    switches_for,
)
from ..live.evidence import no_pictures
from ..tuning.whatif import WhatIfError, editable, parse_value, population, same_value
from .guard import guarded
from .session import LiveReasons

HEADERS = ("metric", "value", "test", "threshold", "margin", "status", "parameter")
STATUS_COLUMN = HEADERS.index("status")
THRESHOLD_COLUMN = HEADERS.index("threshold")
STATUS_COLOURS = {  # foreground, background
    "decisive": ("#ffffff", "#a32020"),
    "also_failed": ("#ffffff", "#8a5a00"),
    "pass": ("#7fd17f", None),
    "exempt": ("#7fb2ff", None),
    "inactive": ("#8c8c8c", None),
    "missing": ("#c8a0ff", None),
    "threshold_missing": ("#ffffff", "#5a3d8a"),
}


def _fmt(x) -> str:
    return "NaN" if x is None else f"{x:.4g}"


@dataclass
class Line:
    """One row of the dock: depth 0 = block, 1 = rule or group, 2 = group member."""

    depth: int
    cells: tuple[str, ...]
    status: str | None = None
    children: list[Line] = field(default_factory=list)
    param: str | None = None  # the threshold in this row can be edited (what-if)


@dataclass
class DockContent:
    title: str
    reason: str
    label: str | None = None
    lines: list[Line] = field(default_factory=list)
    source: str = ""  # for clusters recomputed live: what was computed and what was not
    flag: str = ""    # the label shown is a judge's, not the rules'


def _rule_line(c: dict, depth: int) -> Line:
    status_text = STATUS_TEXT[STATUS_NAMES.index(c["status"])]
    if c["note"]:
        status_text = f"{status_text}: {c['note']}"
    test, threshold = ("is NaN", "") if c["op"] == "isnan" else (c["op"], _fmt(c["threshold"]))
    if c["status"] == "threshold_missing":
        threshold = "missing"
    margin = "" if c["margin"] is None else f"{c['margin']:+.3g}"
    metric = f"|{c['metric']}|" if c["abs"] else c["metric"]
    cells = (metric, _fmt(c["value"]), test, threshold, margin, status_text, c["param"] or "")
    return Line(depth, cells, c["status"], param=c["param"])


def _block_status(statuses: list[str]) -> str:
    for status in ("decisive", "also_failed"):
        if status in statuses:
            return status
    return "inactive" if all(s == "inactive" for s in statuses) else "pass"


def dock_content(live: LiveReasons, cluster_id: int) -> DockContent:
    """What the dock shows for one cluster (pure data, so it can be tested and copied as text)."""
    if live.explanation is None:
        return DockContent(f"cluster {cluster_id}", f"No Bombcell explanation: {live.error}")
    if not live.has_row(cluster_id):
        state = "computing…" if cluster_id in live.pending else "no Bombcell row"
        return DockContent(f"cluster {cluster_id}: {state}", live.why_no_row(cluster_id))
    explanation = live.explanation
    row = live.row(cluster_id)
    label = str(explanation.labels[row])
    source = live.source_line(cluster_id)
    run_label = RUN_SPELLING.get(label) if explanation.classifier == SPIKEINTERFACE else None
    title = (f"cluster {cluster_id}: {label or '(empty)'}" + (f" ({run_label})" if run_label else "")
             + (" (recomputed live)" if source else ""))
    flag = ""
    if explanation.flagged[row]:
        flag = (f"Flagged: Bombcell gave {label or '(empty)'}, the {explanation.classifier} rules below give "
                f"{explanation.rule_labels[row] or '(empty)'}.")
    content = DockContent(title, str(explanation.reasons[row]), label, source=source or "", flag=flag)
    comparisons = explanation.comparisons(cluster_id)
    if source:
        for c in comparisons:
            if c["metric"] in live.live_info.not_live and c["status"] in ("missing", "inactive"):
                c["note"] = live.live_info.not_live[c["metric"]]
    for block in BLOCKS:
        in_block = [c for c in comparisons if c["block"] == block]
        status = _block_status([c["status"] for c in in_block])
        verdict = STATUS_TEXT[STATUS_NAMES.index(status)]
        block_line = Line(0, (BLOCK_TITLES[block], "", "", "", "", verdict, ""), status)
        groups: dict[str, Line] = {}
        for c in in_block:
            if not c["group"]:
                block_line.children.append(_rule_line(c, 1))
                continue
            if c["group"] not in groups:
                groups[c["group"]] = Line(1, (GROUP_PHRASES.get(c["group"], c["group"]), "",
                                              GROUP_TESTS.get(c["group"], "all hold"), "", "", "", ""))
                block_line.children.append(groups[c["group"]])
            groups[c["group"]].children.append(_rule_line(c, 2))
        for name, group in groups.items():
            members = [child.status for child in group.children]
            held = sum(c["holds"] for c in in_block if c["group"] == name)
            group.status = _block_status(members)
            group.cells = group.cells[:5] + (
                f"{STATUS_TEXT[STATUS_NAMES.index(group.status)]} ({held} of {len(members)} hold)", "")
        content.lines.append(block_line)
    return content


def content_text(content: DockContent) -> str:
    """Plain text of the dock, for the clipboard."""
    out = [content.title, content.reason] + [line for line in (content.flag, content.source) if line]

    def walk(lines):
        for line in lines:
            cells = [cell for cell in line.cells if cell]
            out.append("    " * line.depth + "  ".join(cells))
            walk(line.children)

    walk(content.lines)
    return "\n".join(out)


class BombcellWhyView(QWidget):
    """Dock listing why Bombcell labelled the selected cluster as it did."""

    def __init__(self, live: LiveReasons, parent=None):
        super().__init__(parent)
        self.live = live
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

        # What-if: switches, and a banner while edited thresholds are active.
        self.on_overrides = self._apply_overrides  # the plugin replaces these to update Phy as well
        self.on_list = None
        self.switches = {}
        switches = QGridLayout()
        for i, name in enumerate(switches_for(live.results.classifier, live.results.rules) if live.results
                                 else SWITCHES):
            box = QCheckBox(name)
            box.setToolTip(f"What-if: turn Bombcell's {name} on or off")
            box.toggled.connect(guarded(lambda checked, name=name: self._edit(name, checked),
                                        what=f"the {name} switch"))
            self.switches[name] = box
            switches.addWidget(box, i // 3, i % 3)
        self.whatif = QLabel()
        self.whatif.setWordWrap(True)
        self.whatif.setStyleSheet("background-color: #b58900; color: #000000; padding: 3px;")
        self.list_button = QPushButton("List")
        self.list_button.setToolTip("Show only the clusters whose label these edits change")
        self.list_button.clicked.connect(guarded(lambda: self.on_list and self.on_list(self.live.changed_clusters()),
                                                 what="List"))
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the edited parameters next to the Bombcell results (new file)")
        self.save_button.clicked.connect(guarded(self._save, what="Save…"))
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the parameters Bombcell ran with")
        self.reset_button.clicked.connect(guarded(lambda: self.on_overrides({}), what="Reset"))
        banner = QHBoxLayout()
        banner.addWidget(self.whatif, 1)
        for button in (self.list_button, self.save_button, self.reset_button):
            banner.addWidget(button)
        self.banner = QWidget()
        self.banner.setLayout(banner)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.chooser)
        top.addWidget(load)
        top.addWidget(copy)
        self.setStyleSheet("QWidget { background-color: #151515; color: #dddddd; }"
                           "QHeaderView::section { background-color: #262626; color: #dddddd; }")
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.evidence = EvidencePanel(self)
        selected = QSplitter(Qt.Vertical)
        selected.addWidget(self.tree)
        selected.addWidget(self.evidence)
        selected.setStretchFactor(0, 1)
        selected.setStretchFactor(1, 2)
        self.tabs.addTab(selected, "Selected cluster")
        self.population = PopulationPanel(self)
        self.tabs.addTab(self.population, "Population")
        self.concordance = ConcordancePanel(self)
        self.tabs.addTab(self.concordance, "Your labels")
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
        layout.addWidget(self.tabs, 1)
        layout.addLayout(switches)
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
        from ..batch.audit import CompareError

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
        self._fill_tree(self.content.lines)
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

    def _fill_tree(self, lines: list[Line]) -> None:
        self._filling = True
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
            for child in line.children:
                add(item, child)

        for line in lines:
            add(self.tree, line)
        self.tree.expandAll()
        for column in range(1, len(HEADERS) - 1):
            self.tree.resizeColumnToContents(column)
        self.tree.setColumnWidth(0, 200)  # long names are elided (full text in the tooltip)
        self.tree.setUpdatesEnabled(True)
        self._filling = False

    def text(self) -> str:
        return content_text(self.content) if self.content else ""


class EvidencePanel(QWidget):
    """Below the rules: what Bombcell measured for the selected cluster, drawn (`evidence.py`), decisive rules
    first. The picture is made off Phy's GUI thread, in the live-metrics process: the plugin sets ``request``
    (cluster id, width in pixels) and calls `show_picture` when it is ready; the rules above never wait. Nothing
    is drawn while the panel is hidden (another tab shown, or the splitter above it dragged down)."""

    def __init__(self, why: BombcellWhyView):
        super().__init__()
        self.why = why
        self.request = None          # set by the plugin: request(cluster_id, width_px)
        self.cluster_id: int | None = None
        self.summary: dict | None = None  # what the picture shown was drawn from (panel -> values, note, features)
        self.png: bytes | None = None
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #9a9a9a;")
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.image)
        self.scroll.setWidgetResizable(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addWidget(self.scroll, 1)
        self._resized = QTimer(self)  # a wider or narrower dock: drawn again at its new width, once it settles
        self._resized.setSingleShot(True)
        self._resized.setInterval(300)
        self._resized.timeout.connect(guarded(lambda: self.show_cluster(self.cluster_id, again=True),
                                              what="the picture"))
        self._width = 0
        self._waiting = False

    def width_px(self) -> int:
        """The picture's width: the panel's, in steps of 40 px so that pictures can be reused, within 400-1000 px
        (wider only enlarges the drawing, and costs the process that draws it memory)."""
        return min(1000, max(400, self.scroll.viewport().width() // 40 * 40))

    def show_cluster(self, cluster_id: int | None, again: bool = False) -> None:
        live = self.why.live
        if cluster_id == self.cluster_id and not again and self.png is not None and self._width == self.width_px():
            return
        self.cluster_id, self.summary, self.png = cluster_id, None, None
        self.image.clear()
        self.image.resize(0, 0)
        if cluster_id is None or live.explanation is None:
            self.status.setText("")
            return
        if live.results is None or live.results.classifier != PYTHON:
            self.status.setText(no_pictures(live.results.classifier if live.results is not None else None))
            return
        if not live.has_row(cluster_id):
            self.status.setText("")  # computing: drawn once its metrics are in
            return
        if self.request is None:
            self.status.setText("Pictures of what Bombcell measured are drawn when the dock runs in Phy.")
            return
        if not self.shown():
            self._waiting = True  # drawn when the panel is shown (another tab, or dragged closed)
            return
        self._waiting = False
        self._width = self.width_px()
        self.status.setText("drawing what Bombcell measured…")
        self.request(cluster_id, self._width)

    def show_picture(self, cluster_id: int, summary: dict | None, png: bytes | None, error: str = "",
                     image: QImage | None = None) -> None:
        """``image``: the PNG already decoded (by the plugin's worker thread); decoded here otherwise (a picture
        from the cache)."""
        if cluster_id != self.cluster_id:
            return  # the user moved on
        if error or png is None:
            self.status.setText(f"No picture: {error or 'it could not be drawn'}")
            return
        self.summary, self.png = summary, png
        pixmap = QPixmap.fromImage(image) if image is not None else QPixmap()
        if image is None:
            pixmap.loadFromData(png, "PNG")
        self.image.setPixmap(pixmap)
        self.image.resize(pixmap.size())
        withheld = [name for name, panel in summary.items() if panel.get("withheld")]
        self.status.setText("Computed with Bombcell's own functions from the Kilosort files and the run's "
                            "parameters; each picture is drawn from the values in the table above"
                            + (f" (not drawn where they differ: {', '.join(withheld)})" if withheld else "") + ".")

    def shown(self) -> bool:
        """Visible and not dragged closed: pictures are drawn only then."""
        return self.isVisible() and self.scroll.height() > 30

    @guarded
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.cluster_id is not None and self.request is not None and \
                (self.width_px() != self._width or self._waiting) and self.shown():
            self._resized.start()

    @guarded
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._waiting:
            self._resized.start()


POPULATION_HEADERS = ("decides", "also fails", "within 10%", "flips at ±10%", "rule")


class PopulationPanel(QWidget):
    """For the current thresholds: per rule, how many units it decides and how many a small change would
    flip; a rule's metric over all clusters with its threshold (click the plot or type to move it)."""

    def __init__(self, why: BombcellWhyView):
        super().__init__()
        self.why = why
        self.table_frame: object | None = None
        self.rule_index: int | None = None
        self.canvas = self.axes = None
        self.table = QTableWidget(0, len(POPULATION_HEADERS))
        self.table.setHorizontalHeaderLabels(list(POPULATION_HEADERS))
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.cellClicked.connect(guarded(lambda row, column: self.show_rule(row), what="the Population tab"))
        self.threshold = QLineEdit()
        self.threshold.setPlaceholderText("threshold")
        self.threshold.returnPressed.connect(guarded(self._typed, what="the Population threshold"))
        self.plot_area = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(self.plot_area, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("threshold:"))
        row.addWidget(self.threshold)
        layout.addLayout(row)

    def refresh(self) -> None:
        live = self.why.live
        if live.explanation is None or live.results is None:
            return
        # the rows recomputed live too: the explanation has the clusters of now, merged and split ones included
        self.table_frame = population(live.all_results(), live.overrides, live.explanation)
        self.table.setRowCount(len(self.table_frame))
        for i, rule in enumerate(self.table_frame.itertuples()):
            cells = (rule.decides, rule.also_fails, rule.within, rule.flips, rule.rule)
            for column, value in enumerate(cells):
                self.table.setItem(i, column, QTableWidgetItem(str(value)))
        self.table.resizeColumnsToContents()
        if self.rule_index is not None:
            self.show_rule(self.rule_index)

    def _ensure_canvas(self) -> None:
        if self.canvas is None:  # matplotlib only when asked for: it is slow to import
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            figure = Figure(figsize=(4, 2.2), tight_layout=True)
            self.canvas = FigureCanvasQTAgg(figure)
            self.axes = figure.add_subplot(111)
            self.canvas.mpl_connect("button_release_event", guarded(self._clicked, what="the Population plot"))
            self.plot_area.addWidget(self.canvas)

    def show_rule(self, index: int) -> None:
        """The rule's metric over all clusters, its threshold, and the selected cluster."""
        live, self.rule_index = self.why.live, index
        explanation = live.explanation
        rule = explanation.rules[index]
        self._ensure_canvas()
        ax = self.axes
        ax.clear()
        values = explanation.values[:, index]
        finite = values[np.isfinite(values)]
        if len(finite):
            ax.hist(finite, bins=min(50, max(5, len(finite) // 3)), color="#888888")
        threshold = explanation.thresholds[index]
        if np.isfinite(threshold):
            ax.axvline(threshold, color="#d62728", linewidth=2, label=f"{rule.param} = {threshold:.4g}")
            self.threshold.setText(f"{threshold:.6g}")
        if self.why.shown_id is not None and live.has_row(self.why.shown_id):
            value = explanation.values[live.row(self.why.shown_id), index]
            if np.isfinite(value):
                ax.axvline(value, color="#1f77b4", linestyle="--", label=f"cluster {self.why.shown_id}")
        ax.set_title(rule.name, fontsize=8)
        ax.legend(fontsize=7)
        self.canvas.draw_idle()

    def _edit(self, value) -> None:
        if self.rule_index is not None:
            param = self.why.live.explanation.rules[self.rule_index].param
            if param:
                self.why._edit(param, value)

    def _typed(self) -> None:
        self._edit(self.threshold.text())

    def _clicked(self, event) -> None:
        if event.inaxes is self.axes and event.xdata is not None:
            self._edit(f"{event.xdata:.6g}")


AGREEMENT_NOTE = ("A Bombcell label agrees with the Phy group it names; a non-somatic unit with good or mua by its MUA "
                  "tests (as Bombcell's split labels say). Suggestions are checked by the same rules; double-click "
                  "one to try it as a what-if.")


class ConcordancePanel(QWidget):
    """Your Phy labels against Bombcell's: counts, the rules behind each disagreement, and thresholds that would
    agree better (double-click to apply as a what-if)."""

    def __init__(self, why: BombcellWhyView):
        super().__init__()
        self.why = why
        self.get_groups = self._groups_on_disk  # the plugin replaces it with Phy's live groups
        self.result = None
        self.suggestions: list = []
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        note = QLabel(AGREEMENT_NOTE)
        note.setWordWrap(True)
        note.setStyleSheet("color: #9a9a9a;")
        self.counts = QTableWidget(3, 3)
        self.disagreements = QTableWidget(0, 4)
        self.disagreements.setHorizontalHeaderLabels(["cluster", "you", "Bombcell", "rules"])
        self.suggested = QTableWidget(0, 3)
        self.suggested.setHorizontalHeaderLabels(["threshold", "agree", "flips (all units)"])
        self.suggested.cellDoubleClicked.connect(guarded(lambda row, column: self.apply(row), what="a suggestion"))
        together = QPushButton("Suggest together (with a held-out estimate)")
        together.clicked.connect(guarded(self.suggest_together, what="Suggest together"))
        for table in (self.counts, self.disagreements, self.suggested):
            table.setEditTriggers(QTableWidget.NoEditTriggers)
            table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        for widget in (self.summary, note, self.counts, self.disagreements, self.suggested, together):
            layout.addWidget(widget)

    def _groups_on_disk(self) -> dict[int, str]:
        from ..tuning.concordance import read_groups

        path = self.why.live.ks_dir / "cluster_group.tsv" if self.why.live.ks_dir else None
        return read_groups(path) if path is not None and path.is_file() else {}

    def refresh(self) -> None:
        from ..tuning.concordance import PHY_GROUPS, concordance, suggest

        live = self.why.live
        groups = self.get_groups() if live.explanation is not None else {}
        if not groups:
            self.summary.setText("Label clusters good, mua or noise in Phy to compare them with Bombcell's labels.")
            return
        self.result = result = concordance(live.explanation, groups)
        self.summary.setText(f"<b>{result.agree} of {len(result.user)}</b> labelled clusters agree with Bombcell")
        self.counts.setHorizontalHeaderLabels([f"you: {g}" for g in PHY_GROUPS])
        self.counts.setVerticalHeaderLabels([f"Bombcell: {g}" for g in PHY_GROUPS])
        for i, ours in enumerate(PHY_GROUPS):
            for k, theirs in enumerate(PHY_GROUPS):
                self.counts.setItem(i, k, QTableWidgetItem(str(int(result.table.loc[ours, theirs]))))
        self.disagreements.setRowCount(len(result.disagreements))
        for i, d in enumerate(result.disagreements):
            cells = (str(d["cluster_id"]), d["user"], d["label"], ", ".join(d["rules"]))
            for k, cell in enumerate(cells):
                item = QTableWidgetItem(cell)
                item.setToolTip(cell)
                self.disagreements.setItem(i, k, item)
        self.disagreements.resizeColumnsToContents()
        self.suggestions = [(s.param, s.suggested, f"{s.param} {s.current:.4g} -> {s.suggested:.4g}",
                             f"{s.agree_before} -> {s.agree_after}", s.flips)
                            for s in suggest(live.explanation, groups)]
        self._fill_suggestions()

    def _fill_suggestions(self) -> None:
        self.suggested.setRowCount(len(self.suggestions))
        for i, (_, _, name, agree, flips) in enumerate(self.suggestions):
            moves = ", ".join(f"{n} {move}" for move, n in flips.items())
            for k, cell in enumerate((name, agree, moves)):
                self.suggested.setItem(i, k, QTableWidgetItem(cell))
        self.suggested.resizeColumnsToContents()

    def suggest_together(self) -> None:
        from ..tuning.concordance import suggest_jointly

        live = self.why.live
        groups = self.get_groups()
        if live.results is None or not groups:
            return
        joint = suggest_jointly(live.all_results(), groups)
        name = ", ".join(f"{k} -> {v:.4g}" for k, v in joint.overrides.items()) or "no change agrees better"
        agree = (f"{joint.agree_before} -> {joint.agree_after} (held out: {joint.held_out_before:.0%} -> "
                 f"{joint.held_out_after:.0%})")
        self.suggestions.insert(0, (dict(joint.overrides), None, name, agree, joint.flips))
        self._fill_suggestions()

    def apply(self, row: int) -> None:
        """A suggestion as a what-if (the dock's banner, List, Reset and Save… follow)."""
        param, value = self.suggestions[row][:2]
        edits = param if isinstance(param, dict) else {param: value}
        self.why.on_overrides({**self.why.live.overrides, **edits})
