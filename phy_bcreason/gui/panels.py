"""The dock's panels below its rule table: the evidence behind each rule (pictures drawn off Phy's GUI thread),
the population of each rule, and your labels against Bombcell's. Each gets what it needs in its constructor."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..tuning.whatif import population
from .guard import guarded
from .session import LiveReasons
from .status import NOT_AVAILABLE


class EvidencePanel(QWidget):
    """Below the rules: what Bombcell measured for the selected cluster, drawn (`evidence.py`), decisive rules
    first. The picture is made off Phy's GUI thread, in the live-metrics process: the plugin sets ``request``
    (cluster id, width in pixels) and calls `show_picture` when it is ready; the rules above never wait. Nothing
    is drawn while the panel is hidden (another tab shown, or the splitter above it dragged down)."""

    def __init__(self, live: LiveReasons):
        super().__init__()
        self.live = live
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
        # results of another classifier get no pictures: one line where they would be, the rules above get the room
        self.unavailable = NOT_AVAILABLE.get(live.results.classifier) if live.results is not None else None
        if self.unavailable:
            self.status.setText(self.unavailable)
            self.scroll.setVisible(False)

    def width_px(self) -> int:
        """The picture's width: the panel's, in steps of 40 px so that pictures can be reused, within 400-1000 px
        (wider only enlarges the drawing, and costs the process that draws it memory)."""
        bar = self.scroll.verticalScrollBar()  # the picture is taller than the panel: leave room for the bar
        width = self.scroll.viewport().width() - (0 if bar.isVisible() else bar.sizeHint().width())
        return min(1000, max(400, width // 40 * 40))

    def show_cluster(self, cluster_id: int | None, again: bool = False) -> None:
        live = self.live
        if cluster_id == self.cluster_id and not again and self.png is not None and self._width == self.width_px():
            return
        self.cluster_id, self.summary, self.png = cluster_id, None, None
        self.image.clear()
        self.image.resize(0, 0)
        if self.unavailable:
            return
        if live.explanation is None:
            self.status.setText("No pictures: there are no Bombcell results to draw them from (why: above).")
            return
        if cluster_id is None:
            self.status.setText("Select a cluster: pictures of what Bombcell measured for it are drawn here.")
            return
        if cluster_id in live.pending:
            self.status.setText("Pictures of what Bombcell measured are drawn here once this cluster's metrics "
                                "are recomputed.")
            return
        if not live.has_row(cluster_id):
            self.status.setText("No pictures: this cluster has no Bombcell row (why: above).")
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
        if self.unavailable:  # as high as its line, at this width
            self.setMaximumHeight(self.status.heightForWidth(self.width()) + 2)
            return
        if self.cluster_id is not None and self.request is not None and \
                (self.width_px() != self._width or self._waiting) and self.shown():
            self._resized.start()

    @guarded
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._waiting:
            self._resized.start()


POPULATION_HEADERS = ("rule", "decides", "also fails", "within 10%", "flips at ±10%")  # the rule first: never cut
POPULATION_HINT = ("Click a rule to see its metric over all clusters, with its threshold and the selected cluster; "
                   "click the plot or type a value to try another threshold.")


class PopulationPanel(QWidget):
    """For the current thresholds: per rule, how many units it decides and how many a small change would
    flip; a rule's metric over all clusters with its threshold (click the plot or type to move it)."""

    def __init__(self, live: LiveReasons, shown_cluster, edit):
        """``shown_cluster()``: the cluster the dock shows; ``edit(param, value)``: a what-if edit."""
        super().__init__()
        self.live, self.shown_cluster, self.edit = live, shown_cluster, edit
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
        self.hint = QLabel(POPULATION_HINT)  # until a rule is shown: what clicking one shows
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #9a9a9a;")
        self.plot_area = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addLayout(self.plot_area, 1)
        self.threshold_row = QWidget()  # shown with a rule: typing a threshold needs one
        row = QHBoxLayout(self.threshold_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("threshold:"))
        row.addWidget(self.threshold)
        self.threshold_row.setVisible(False)
        layout.addWidget(self.threshold_row)

    def refresh(self) -> None:
        live = self.live
        if live.explanation is None or live.results is None:
            self.table.setVisible(False)
            self.hint.setText("No Bombcell results: how many units each rule decides appears here once they load "
                              "(why: above).")
            return
        # the rows recomputed live too: the explanation has the clusters of now, merged and split ones included
        self.table_frame = population(live.all_results(), live.overrides, live.explanation)
        self.table.setRowCount(len(self.table_frame))
        for i, rule in enumerate(self.table_frame.itertuples()):
            cells = (rule.rule, rule.decides, rule.also_fails, rule.within, rule.flips)
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
        live, self.rule_index, shown = self.live, index, self.shown_cluster()
        explanation = live.explanation
        rule = explanation.rules[index]
        self.hint.setVisible(False)
        self.threshold_row.setVisible(True)
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
        if shown is not None and live.has_row(shown):
            value = explanation.values[live.row(shown), index]
            if np.isfinite(value):
                ax.axvline(value, color="#1f77b4", linestyle="--", label=f"cluster {shown}")
        ax.set_title(rule.name, fontsize=8)
        ax.legend(fontsize=7)
        self.canvas.draw_idle()

    def _edit(self, value) -> None:
        if self.rule_index is not None:
            param = self.live.explanation.rules[self.rule_index].param
            if param:
                self.edit(param, value)

    def _typed(self) -> None:
        self._edit(self.threshold.text())

    def _clicked(self, event) -> None:
        if event.inaxes is self.axes and event.xdata is not None:
            self._edit(f"{event.xdata:.6g}")


NO_LABELS = ("Label clusters good, mua or noise in Phy (Alt+G, Alt+M, Alt+N) to compare them with Bombcell's labels: "
             "how many agree, the clusters you disagree on and thresholds that would agree better appear here as you "
             "label.")
AGREEMENT_NOTE = ("A Bombcell label agrees with the Phy group it names; a non-somatic unit with good or mua by its MUA "
                  "tests (as Bombcell's split labels say). Suggestions are checked by the same rules; double-click "
                  "one to try it as a what-if.")


class ConcordancePanel(QWidget):
    """Your Phy labels against Bombcell's: counts, the rules behind each disagreement, and thresholds that would
    agree better (double-click to apply as a what-if)."""

    def __init__(self, live: LiveReasons, apply_overrides, three_way=None):
        """``apply_overrides(overrides)``: what-if edits, applied as the dock applies them; ``three_way``: the
        model's part (`model_panel.ThreeWay`), when UnitRefine has labelled this sorting."""
        super().__init__()
        self.live, self.apply_overrides, self.three_way = live, apply_overrides, three_way
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
        self.together = QPushButton("Suggest together (with a held-out estimate)")
        self.together.clicked.connect(guarded(self.suggest_together, what="Suggest together"))
        # an empty table says why it is empty instead
        self.disagreements_note = QLabel()
        self.suggested_note = QLabel()
        for table in (self.counts, self.disagreements, self.suggested):
            table.setEditTriggers(QTableWidget.NoEditTriggers)
            table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        for widget in (self.summary, note, self.counts, self.disagreements, self.disagreements_note, self.suggested,
                       self.suggested_note, self.together):
            if isinstance(widget, QLabel):
                widget.setWordWrap(True)
            layout.addWidget(widget)
        if three_way is not None:
            layout.addWidget(three_way, 1)  # the model's table takes the room the others leave
        layout.addStretch(1)  # while the tables are hidden, the sentences stay at the top
        self._show_parts(labelled=False)

    def _show_parts(self, labelled: bool) -> None:
        """Before any label: only the sentence saying what will appear; then each table, or why it is empty."""
        self.counts.setVisible(labelled)
        self.together.setVisible(labelled)
        layout = self.layout()
        # the tables take the room when shown (the model's table, when there is one, always)
        layout.setStretch(layout.count() - 1, 0 if labelled or self.three_way is not None else 1)
        has = {self.disagreements: labelled and self.disagreements.rowCount() > 0,
               self.suggested: labelled and self.suggested.rowCount() > 0}
        for table, note in ((self.disagreements, self.disagreements_note), (self.suggested, self.suggested_note)):
            table.setVisible(has[table])
            note.setVisible(labelled and not has[table])

    def _groups_on_disk(self) -> dict[int, str]:
        from ..tuning.concordance import read_groups

        path = self.live.ks_dir / "cluster_group.tsv" if self.live.ks_dir else None
        return read_groups(path) if path is not None and path.is_file() else {}

    def refresh(self) -> None:
        from ..tuning.concordance import PHY_GROUPS, concordance, suggest

        live = self.live
        if live.explanation is None:
            self.summary.setText("No Bombcell results to compare your labels with (why: above).")
            self._show_parts(labelled=False)
            return
        groups = self.get_groups()
        if self.three_way is not None:
            self.three_way.refresh(groups)
        self.result = result = concordance(live.explanation, groups) if groups else None
        if result is None or not len(result.user):
            self.summary.setText(NO_LABELS if not groups else
                                 f"None of the {len(groups)} clusters you labelled has a Bombcell label to compare "
                                 "with yet.")
            self._show_parts(labelled=False)
            return
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
        self.disagreements_note.setText(f"You agree with Bombcell on all {len(result.user)} labelled clusters: "
                                        "those you disagree on will be listed here.")
        self.suggestions = [(s.param, s.suggested, f"{s.param} {s.current:.4g} -> {s.suggested:.4g}",
                             f"{s.agree_before} -> {s.agree_after}", s.flips)
                            for s in suggest(live.explanation, groups)]
        self.suggested_note.setText("No suggestion: no single threshold agrees better with your labels than the "
                                    "current one. Suggest together tries several thresholds at once.")
        self._fill_suggestions()
        self._show_parts(labelled=True)

    def _fill_suggestions(self) -> None:
        self.suggested.setRowCount(len(self.suggestions))
        for i, (_, _, name, agree, flips) in enumerate(self.suggestions):
            moves = ", ".join(f"{n} {move}" for move, n in flips.items())
            for k, cell in enumerate((name, agree, moves)):
                self.suggested.setItem(i, k, QTableWidgetItem(cell))
        self.suggested.resizeColumnsToContents()

    def suggest_together(self) -> None:
        from ..tuning.concordance import suggest_jointly

        live = self.live
        groups = self.get_groups()
        if live.results is None or not groups:
            return
        joint = suggest_jointly(live.all_results(), groups)
        name = ", ".join(f"{k} -> {v:.4g}" for k, v in joint.overrides.items()) or "no change agrees better"
        agree = (f"{joint.agree_before} -> {joint.agree_after} (held out: {joint.held_out_before:.0%} -> "
                 f"{joint.held_out_after:.0%})")
        self.suggestions.insert(0, (dict(joint.overrides), None, name, agree, joint.flips))
        self._fill_suggestions()
        self._show_parts(labelled=True)

    def apply(self, row: int) -> None:
        """A suggestion as a what-if (the dock's banner, List, Reset and Save… follow)."""
        param, value = self.suggestions[row][:2]
        edits = param if isinstance(param, dict) else {param: value}
        self.apply_overrides({**self.live.overrides, **edits})
