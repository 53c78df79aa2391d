"""The "why?" dock: every Bombcell threshold for the selected cluster, grouped by block."""

from __future__ import annotations

from dataclasses import dataclass, field

from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QBrush, QColor, QFont
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .engine import STATUS_NAMES, STATUS_TEXT
from .live import LiveReasons
from .rules import BLOCK_TITLES, BLOCKS, GROUP_PHRASES

HEADERS = ("metric", "value", "test", "margin", "status", "parameter")
STATUS_COLUMN = HEADERS.index("status")
STATUS_COLOURS = {  # foreground, background
    "decisive": ("#ffffff", "#a32020"),
    "also_failed": ("#ffffff", "#8a5a00"),
    "pass": ("#7fd17f", None),
    "exempt": ("#7fb2ff", None),
    "inactive": ("#8c8c8c", None),
    "missing": ("#c8a0ff", None),
}
LABEL_COLOURS = {"GOOD": "#2ca02c", "MUA": "#ff7f0e", "NOISE": "#d62728", "NON-SOMA": "#9467bd",
                 "NON-SOMA GOOD": "#9467bd", "NON-SOMA MUA": "#9467bd"}


def _fmt(x) -> str:
    return "NaN" if x is None else f"{x:.4g}"


@dataclass
class Line:
    """One row of the dock: depth 0 = block, 1 = rule or group, 2 = group member."""

    depth: int
    cells: tuple[str, ...]
    status: str | None = None
    children: list[Line] = field(default_factory=list)


@dataclass
class DockContent:
    title: str
    reason: str
    label: str | None = None
    lines: list[Line] = field(default_factory=list)


def _rule_line(c: dict, depth: int) -> Line:
    status_text = STATUS_TEXT[STATUS_NAMES.index(c["status"])]
    if c["note"]:
        status_text = f"{status_text}: {c['note']}"
    test = "is NaN" if c["op"] == "isnan" else f"{c['op']} {_fmt(c['threshold'])}"
    margin = "" if c["margin"] is None else f"{c['margin']:+.3g}"
    return Line(depth, (c["metric"], _fmt(c["value"]), test, margin, status_text, c["param"] or ""), c["status"])


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
        return DockContent(f"cluster {cluster_id}: no Bombcell row", live.why_no_row(cluster_id))
    explanation = live.explanation
    row = live.row(cluster_id)
    label = str(explanation.labels[row])
    content = DockContent(f"cluster {cluster_id}: {label or '(empty)'}", str(explanation.reasons[row]), label)
    comparisons = explanation.comparisons(cluster_id)
    for block in BLOCKS:
        in_block = [c for c in comparisons if c["block"] == block]
        status = _block_status([c["status"] for c in in_block])
        verdict = STATUS_TEXT[STATUS_NAMES.index(status)]
        block_line = Line(0, (BLOCK_TITLES[block], "", "", "", verdict, ""), status)
        groups: dict[str, Line] = {}
        for c in in_block:
            if not c["group"]:
                block_line.children.append(_rule_line(c, 1))
                continue
            if c["group"] not in groups:
                groups[c["group"]] = Line(1, (GROUP_PHRASES.get(c["group"], c["group"]), "", "all hold",
                                              "", "", ""))
                block_line.children.append(groups[c["group"]])
            groups[c["group"]].children.append(_rule_line(c, 2))
        for group in groups.values():
            members = [child.status for child in group.children]
            held = sum(c["holds"] for c in in_block if c["group"])
            group.status = _block_status(members)
            group.cells = group.cells[:4] + (
                f"{STATUS_TEXT[STATUS_NAMES.index(group.status)]} ({held} of {len(members)} hold)", "")
        content.lines.append(block_line)
    return content


def content_text(content: DockContent) -> str:
    """Plain text of the dock, for the clipboard."""
    out = [content.title, content.reason]

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
        self.content: DockContent | None = None

        self.title = QLabel()
        self.title.setTextFormat(Qt.RichText)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.chooser = QComboBox()
        self.chooser.currentIndexChanged.connect(self._show_chosen)
        copy = QPushButton("Copy")
        copy.setToolTip("Copy this explanation as text")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.text()))
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(HEADERS))
        self.tree.setAlternatingRowColors(False)

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.chooser)
        top.addWidget(copy)
        self.setStyleSheet("QWidget { background-color: #151515; color: #dddddd; }"
                           "QHeaderView::section { background-color: #262626; color: #dddddd; }")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.reason)
        layout.addWidget(self.tree, 1)
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

    def _show(self, cluster_id: int | None) -> None:
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
        self._fill_tree(self.content.lines)

    def _fill_tree(self, lines: list[Line]) -> None:
        self.tree.setUpdatesEnabled(False)
        self.tree.clear()

        def add(parent, line: Line):
            item = QTreeWidgetItem(list(line.cells))
            for column, cell in enumerate(line.cells):
                item.setToolTip(column, cell)
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

    def text(self) -> str:
        return content_text(self.content) if self.content else ""
