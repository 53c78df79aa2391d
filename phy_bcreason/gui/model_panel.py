"""The dock's Model tab: UnitRefine's label for the selected cluster and the features that pushed it there, with
their values, largest first, the way the Bombcell rules are listed."""

from __future__ import annotations

import math

from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .second_judge import SecondJudge

MODEL_HEADERS = ("feature", "value", "contribution", "pushes")
TOWARDS, AWAY = "#e8a33d", "#7fb2ff"  # towards the model's label, away from it


def _number(x: float) -> str:
    return "NaN" if x is None or not math.isfinite(x) else f"{x:.4g}"


class ModelPanel(QWidget):
    def __init__(self, judge: SecondJudge):
        super().__init__()
        self.judge = judge
        self.cluster_id: int | None = None
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.sum = QLabel()
        self.sum.setWordWrap(True)
        self.sum.setStyleSheet("color: #9a9a9a;")
        self.table = QTableWidget(0, len(MODEL_HEADERS))
        self.table.setHorizontalHeaderLabels(list(MODEL_HEADERS))
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        layout = QVBoxLayout(self)
        for widget in (self.heading, self.sum, self.table):
            layout.addWidget(widget)

    def show_cluster(self, cluster_id: int | None, bombcell_label: str | None = None) -> None:
        self.cluster_id = cluster_id
        judge, opinion = self.judge, self.judge.opinion
        unit = judge.unit(cluster_id) if cluster_id is not None else None
        self.heading.setText(judge.summary(cluster_id, bombcell_label) or "Select a cluster to see the model's label.")
        lines = []
        if opinion is not None:
            lines.append(f"model: {opinion.model_folder or opinion.model_name}; predictions: {opinion.source}")
        contributions = unit.contributions if unit is not None else None
        if unit is not None and contributions is None:
            lines.append(self._why_no_contributions())
        elif unit is not None:
            total = sum(c.contribution for c in contributions)
            lines.append(f"{opinion.method_note}: base value {unit.base_value:.4g} + contributions {total:+.4g} "
                         f"= {unit.output:.4g}")
        if opinion is not None:
            lines += [f"note: {note}" for note in opinion.notes]
        self.sum.setText("\n".join(lines))
        self.table.setVisible(bool(contributions))
        self.table.setRowCount(len(contributions or ()))
        for row, c in enumerate(contributions or ()):
            towards = c.contribution >= 0
            cells = (c.feature, _number(c.value), f"{c.contribution:+.4g}",
                     f"towards {unit.label}" if towards else f"away from {unit.label}")
            for column, cell in enumerate(cells):
                item = QTableWidgetItem(cell)
                item.setToolTip(cell)
                if column >= 2:
                    item.setForeground(QBrush(QColor(TOWARDS if towards else AWAY)))
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()

    def _why_no_contributions(self) -> str:
        judge, opinion = self.judge, self.judge.opinion
        if judge.computing:
            return "contributions: the model is running…"
        if judge.model_dir is None:
            return ("contributions: name the model folder in phy_config.py (c.BombcellReasonPlugin.unitrefine_model"
                    " = r\"…\") to see which features decided this label")
        return f"contributions: {opinion.method_note}"

    def text(self) -> str:
        rows = [" | ".join(self.table.item(r, c).text() for c in range(self.table.columnCount()))
                for r in range(self.table.rowCount())]
        return "\n".join([self.heading.text(), self.sum.text(), *rows])


class ThreeWay(QWidget):
    """The Your labels tab's part for the model: your label, Bombcell's and the model's for every cluster, those
    where the two automatic curators disagree first."""

    HEADERS = ("cluster", "you", "Bombcell", "model", "confidence")

    def __init__(self, judge: SecondJudge, live, existing=None):
        """``existing()``: the clusters that exist in Phy now (the plugin's; every explained cluster without it)."""
        super().__init__()
        self.judge, self.live, self.existing = judge, live, existing
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heading)
        layout.addWidget(self.table)

    def refresh(self, groups: dict[int, str]) -> None:
        from ..tuning.concordance import three_way

        opinion, explanation = self.judge.opinion, self.live.explanation
        if opinion is None or explanation is None:
            self.heading.setText(self.judge.summary(None, None) or "UnitRefine: no predictions for this sorting")
            self.table.setVisible(False)
            return
        table = three_way(explanation, groups, opinion)
        if self.existing is not None:
            table = table[table["cluster_id"].isin(set(self.existing()))]
        compared = table["model_agrees"].map(lambda a: a is not None)
        disagree = int((table["model_agrees"] == False).sum())  # noqa: E712 (True, False or None)
        self.heading.setText(f"<b>Bombcell and UnitRefine's model ({opinion.model_name})</b> disagree on {disagree} "
                             f"of the {int(compared.sum())} clusters both labelled (listed first); clusters the "
                             "model was not asked about or has not seen follow, then those they agree on")
        self.table.setVisible(True)
        self.table.setRowCount(len(table))
        for row, unit in enumerate(table.itertuples(index=False)):
            confidence = "" if not math.isfinite(unit.confidence) else f"{unit.confidence:.2f}"
            cells = (str(unit.cluster_id), unit.user or "-", unit.bombcell, unit.model or "(not seen)", confidence)
            for column, cell in enumerate(cells):
                item = QTableWidgetItem(cell)
                if unit.model_agrees is False:
                    item.setForeground(QBrush(QColor(TOWARDS)))
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
