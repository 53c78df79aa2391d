"""What a new user met in their first hour in Phy (issue #22), in a real Phy GUI on folders Bombcell labelled: the
rule table shows the rows that decided, the status bar counts the clusters that exist, and every empty part of the
dock says what will appear there and when."""

from __future__ import annotations

import os
import re
from collections import Counter

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from phy.gui.qt import QApplication
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QStyle, QStyleOptionButton, QTreeWidgetItemIterator

from phy_bcreason import explain_folder
from phy_bcreason.gui.dock import STATUS_COLUMN, dock_content
from phy_bcreason.gui.session import LiveReasons
from tests.test_live_metrics import merge_and_wait
from tests.test_matlab import matlab_demo_folder
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

DECIDED = "decided the label"


def shown(gui, width=1400, height=900):
    gui.show()
    gui.resize(width, height)
    for _ in range(5):
        QApplication.processEvents()


# -- the rule table shows the rows that decided ------------------------------------------------------------


def first_decisive_rule(tree):
    """The first rule (or group) row that decided the label, under its block row."""
    iterator = QTreeWidgetItemIterator(tree)
    while iterator.value():
        item = iterator.value()
        if item.parent() is not None and item.text(STATUS_COLUMN).startswith(DECIDED):
            return item
        iterator += 1
    return None


def in_view(tree, item) -> bool:
    rect = tree.visualItemRect(item)
    return rect.isValid() and rect.top() >= 0 and rect.bottom() <= tree.viewport().height()


def test_each_selection_shows_the_rows_that_decided(ks_dataset_copy, open_phy):
    explanation = explain_folder(ks_dataset_copy)
    labels = dict(zip(explanation.cluster_ids.tolist(), explanation.labels.tolist()))
    good, noise, mua = (next(c for c, label in labels.items() if label == wanted)
                        for wanted in ("GOOD", "NOISE", "MUA"))
    controller, gui = open_phy(ks_dataset_copy)
    shown(gui)
    wait_for_plugin(controller)
    shown(gui)  # again, after the first look sized the window to the (offscreen, 800x600) screen
    view = dock(gui)
    tree, scroll = view.tree, view.tree.verticalScrollBar()

    select(controller, [good])
    tree.scrollToBottom()  # the user read a GOOD unit down to its last block
    QApplication.processEvents()
    assert scroll.maximum() > 0 and scroll.value() == scroll.maximum(), "the rules must not fit the dock here"
    select(controller, [noise])
    QApplication.processEvents()
    item = first_decisive_rule(tree)
    assert item is not None and in_view(tree, item), (item and item.text(0), tree.visualItemRect(item))

    tree.scrollToTop()  # MUA decides in the last block
    QApplication.processEvents()
    select(controller, [mua])
    QApplication.processEvents()
    item = first_decisive_rule(tree)
    assert item is not None and in_view(tree, item), (item.text(0), tree.visualItemRect(item))


# -- the status bar counts the clusters that exist ------------------------------------------------------------

COUNTS = re.compile(r"(?:labels from .*?: |; now )(\d+ [^,;]+(?:, \d+ [^,;]+)*)")


def counts_in(message: str) -> tuple[dict[str, int], int]:
    """The label counts and the number recomputed live that the status bar says."""
    found = COUNTS.search(message)
    assert found, message
    counts = {}
    for part in found.group(1).split(", "):
        n, label = part.split(" ", 1)
        counts[label] = int(n)
    live = re.search(r"; (\d+) recomputed live", message)
    return counts, int(live.group(1)) if live else 0


def counts_of_existing_clusters(controller) -> tuple[dict[str, int], int]:
    view = controller.supervisor.cluster_view
    existing = [view.get(c) for c in controller.supervisor.clustering.cluster_ids.tolist()]
    return (dict(Counter(row["bc_label"] or "(empty)" for row in existing)),
            sum(row["bc_source"] == "live" for row in existing))


def test_status_bar_counts_follow_merge_undo_and_redo(ks_dataset_copy, open_phy):
    controller, gui = open_phy(ks_dataset_copy)
    wait_for_plugin(controller)
    supervisor = controller.supervisor
    assert counts_in(gui.status_message) == counts_of_existing_clusters(controller)

    merged = merge_and_wait(controller, [9, 10])  # two MUA units: one cluster, recomputed live
    assert supervisor.cluster_view.get(merged)["bc_source"] == "live"
    said = counts_in(gui.status_message)
    assert said == counts_of_existing_clusters(controller) and said[1] == 1, gui.status_message
    assert f"cluster {merged}" in gui.status_message  # and which cluster was recomputed

    supervisor.undo()
    supervisor.block()
    wait_for_plugin(controller)
    said = counts_in(gui.status_message)
    assert said == counts_of_existing_clusters(controller) and said[1] == 0, gui.status_message
    assert "Undo" in gui.status_message  # Phy's own sentence about what it did is kept

    supervisor.redo()
    supervisor.block()
    wait_for_plugin(controller)
    said = counts_in(gui.status_message)
    assert said == counts_of_existing_clusters(controller) and said[1] == 1, gui.status_message


# -- empty states say what will appear and when -----------------------------------------------------------


def test_your_labels_say_what_appears_before_and_after_labelling(ks_dataset_copy, open_phy):
    explanation = explain_folder(ks_dataset_copy)
    controller, gui = open_phy(ks_dataset_copy)
    shown(gui)
    wait_for_plugin(controller)
    view = dock(gui)
    view.tabs.setCurrentWidget(view.concordance)
    QApplication.processEvents()
    panel = view.concordance
    # before any labelling: no blank 1/2/3 grid, no empty tables; a sentence says what appears, and when
    for table in (panel.counts, panel.disagreements, panel.suggested):
        assert not table.isVisibleTo(panel)
    assert "Alt+G" in panel.summary.text() and "appear here" in panel.summary.text()
    assert panel.summary.isVisibleTo(panel)

    # labels that agree with Bombcell everywhere: the counts appear, the empty tables say why they are empty
    groups = {"good": [], "noise": []}
    for cluster_id, label in zip(explanation.cluster_ids.tolist(), explanation.labels.tolist()):
        if label in ("GOOD", "NOISE"):
            groups[label.lower()].append(cluster_id)
    for group, ids in groups.items():
        controller.supervisor.move(group, ids)
        controller.supervisor.block()
    QApplication.processEvents()
    view.refresh()
    assert panel.counts.isVisibleTo(panel)
    assert panel.counts.horizontalHeaderItem(0).text() == "you: good"
    assert not panel.disagreements.isVisibleTo(panel) and not panel.suggested.isVisibleTo(panel)
    assert panel.disagreements_note.isVisibleTo(panel) and "agree" in panel.disagreements_note.text()
    assert panel.suggested_note.isVisibleTo(panel)
    assert "no single threshold agrees better" in panel.suggested_note.text()


def test_bc_agrees_is_an_empty_cell_where_unlabelled_and_sorts(ks_dataset_copy, open_phy):
    """README: "empty where unlabelled". Phy's table shows None as an empty cell (and "nan" for NaN, which
    compares false with everything, so a column with NaN sorts in no order)."""
    explanation = explain_folder(ks_dataset_copy)
    labelled = [c for c, label in zip(explanation.cluster_ids.tolist(), explanation.labels) if label == "GOOD"][:3]
    labelled += [c for c, label in zip(explanation.cluster_ids.tolist(), explanation.labels) if label == "MUA"][:2]
    controller, gui = open_phy(ks_dataset_copy)
    wait_for_plugin(controller)
    assert all(row["bc_agrees"] is None for row in rows(controller).values())  # nothing labelled yet
    controller.supervisor.move("good", labelled)  # 3 agree, 2 do not
    controller.supervisor.block()
    table = rows(controller)
    assert all(table[c]["bc_agrees"] is None for c in table if c not in labelled)
    assert sorted(table[c]["bc_agrees"] for c in labelled) == [0, 0, 1, 1, 1]
    view = controller.supervisor.cluster_view
    for direction in ("desc", "asc"):
        view.sort_by("bc_agrees", direction)
        controller.supervisor.block()
        order = [view.get(c)["bc_agrees"] for c in view.get_ids()]
        known = [value for value in order if value is not None]
        assert known == sorted(known, reverse=direction == "desc") and len(known) == len(labelled)
        blanks = [None] * (len(order) - len(known))
        assert order in (known + blanks, blanks + known)  # the empty cells together, at one end
    model = view._model
    column = view.columns.index("bc_agrees")
    cells = [model.data(model.index(i, column), Qt.DisplayRole) for i in range(model.rowCount())]
    assert cells.count("") == len(table) - len(labelled) and "nan" not in map(str, cells)


def test_population_names_its_rule_first(ks_dataset_copy, open_phy):
    controller, gui = open_phy(ks_dataset_copy)
    shown(gui)
    wait_for_plugin(controller)
    view = dock(gui)
    view.tabs.setCurrentWidget(view.population)
    QApplication.processEvents()
    table = view.population.table
    assert table.horizontalHeaderItem(0).text() == "rule"
    rules = [rule.name for rule in controller.phy_bcreason.live.explanation.rules]
    assert [table.item(i, 0).text() for i in range(table.rowCount())] == list(view.population.table_frame["rule"])
    assert set(rules) >= {table.item(i, 0).text() for i in range(table.rowCount())}
    assert "Click a rule" in view.population.hint.text()


def test_matlab_results_say_in_one_line_what_is_not_available(tmp_path, open_phy):
    ks = matlab_demo_folder(tmp_path)
    controller, gui = open_phy(ks)
    shown(gui)
    wait_for_plugin(controller)
    view = dock(gui)
    select(controller, [0])
    QApplication.processEvents()
    evidence = view.evidence
    assert not evidence.scroll.isVisibleTo(view)  # no empty picture area
    text = evidence.status.text()
    assert text.startswith("Not available for MATLAB Bombcell results:")
    assert "pictures" in text and "merged or split" in text and "MATLAB" in text.split(":", 1)[1]
    # one sentence where the pictures would be, no higher than its wrapped text: the rule table gets the rest
    assert evidence.height() <= evidence.status.heightForWidth(evidence.width()) + 4
    assert view.tree.height() > 2 * evidence.height()


def test_switches_that_are_off_show_their_box(ks_dataset_copy, open_phy):
    controller, gui = open_phy(ks_dataset_copy)
    shown(gui)
    view = dock(gui)
    indicators = {}
    for name, box in view.switches.items():
        image = box.grab().toImage()
        option = QStyleOptionButton()
        box.initStyleOption(option)
        rect = box.style().subElementRect(QStyle.SE_CheckBoxIndicator, option, box)
        background = image.pixelColor(image.width() - 1, 0)
        contrast = [max(abs(image.pixelColor(x, y).red() - background.red()),
                        abs(image.pixelColor(x, y).green() - background.green()),
                        abs(image.pixelColor(x, y).blue() - background.blue()))
                    for x in range(rect.left(), rect.right() + 1) for y in range(rect.top(), rect.bottom() + 1)]
        assert sum(c > 60 for c in contrast) >= 20, f"{name} (checked: {box.isChecked()}): no visible box"
        indicators[box.isChecked()] = [image.pixelColor(x, y).name() for x in range(rect.left(), rect.right() + 1)
                                       for y in range(rect.top(), rect.bottom() + 1)]
    assert set(indicators) == {True, False} and indicators[True] != indicators[False]  # on and off look different


# -- numbers that read as nothing ---------------------------------------------------------------------------


def tiny_margin_edit(explanation, cluster_id: int, margin: float) -> dict:
    """A threshold edit after which ``cluster_id`` fails its one decisive rule by ``margin`` (relative, < 0)."""
    (c,) = explanation.unit(cluster_id)["decisive"]
    # margin = (threshold - value) / threshold for ">" (fails above), (value - threshold) / threshold for "<"
    threshold = c["value"] / (1 - margin) if c["op"] == ">" else c["value"] / (1 + margin)
    return {c["param"]: threshold}


def rule_lines(lines):
    """The dock's rows of single comparisons, in order (groups' members, not the groups)."""
    for line in lines:
        if line.depth > 0 and not line.children:
            yield line
        yield from rule_lines(line.children)


def margin_cells(live) -> Counter:
    """Checks every margin the dock and the bc_margin column show; counts the zero, tiny and other ones."""
    explanation, seen = live.explanation, Counter()
    for cluster_id in explanation.cluster_ids.tolist():
        margins = [c["margin"] for c in explanation.comparisons(cluster_id)]
        cells = [line.cells[4] for line in rule_lines(dock_content(live, cluster_id).lines)]
        assert len(cells) == len(margins)
        for margin, cell in zip(margins, cells):
            if margin is None:
                assert cell == ""
            elif margin == 0:
                assert cell == "0", (cluster_id, cell)
                seen["zero"] += 1
            else:
                assert cell.startswith("+" if margin > 0 else "-") and float(cell) != 0, (cluster_id, margin, cell)
                assert float(cell) == pytest.approx(margin, rel=0.01)
                seen["tiny" if abs(margin) < 0.001 else "other"] += 1
        flip = explanation.flip_margins[explanation.row_of(cluster_id)]
        column = live.column_values(cluster_id)["bc_margin"]
        if np.isfinite(flip) and flip != 0:
            assert column != 0 and np.sign(column) == np.sign(flip), (cluster_id, flip, column)
            assert column == pytest.approx(flip, rel=0.01)
    return seen


def test_margins_never_read_zero_unless_zero(ks_dataset_copy, tmp_path):
    live = LiveReasons.load(ks_dataset_copy)
    saved = live.explanation
    mua = next(c for c, label, n in zip(saved.cluster_ids.tolist(), saved.labels, saved.n_decisive)
               if label == "MUA" and n == 1 and saved.unit(c)["decisive"][0]["value"] > 0)
    live.set_overrides(tiny_margin_edit(saved, mua, -0.0004))
    row = live.explanation.row_of(mua)
    assert live.explanation.labels[row] == "MUA" and -0.0005 < live.explanation.flip_margins[row] < 0
    seen = margin_cells(live)
    assert seen["tiny"] and seen["other"]
    # MATLAB's demo has counts exactly at their threshold (nTroughs 1, maxNTroughs 1): those read 0
    assert margin_cells(LiveReasons.load(matlab_demo_folder(tmp_path / "matlab")))["zero"]
