"""No exception of ours reaches Qt or Phy: every slot, timer and callback the plugin connects goes through
`guard.guarded` (read from the source, so a new connection without it fails here), and in a real Phy GUI a
failing slot leaves one sentence in the status bar while Phy keeps working and saves the curation."""

import ast
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from phy.gui.qt import QApplication
from qtpy.QtCore import qInstallMessageHandler

from tests.test_plugin_gui import dock, select, wait_for_plugin

PACKAGE = Path(__file__).resolve().parents[1] / "phy_bcreason"
QT_VIRTUALS = ("Event", "eventFilter")  # resizeEvent, showEvent, ...: Qt calls them as it calls slots


def _is_guarded(node) -> bool:
    """``guarded(...)``, or ``guarded(what=...)`` applied to something."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "guarded":
            return True
        if isinstance(func, ast.Call):
            return _is_guarded(func)
    return isinstance(node, ast.Name) and node.id == "guarded"


def unguarded_connections(source: str) -> list[str]:
    """Where ``source`` hands Qt or Phy a callable that `guarded` does not wrap, as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, args = node.func.attr, node.args
            slot = {"connect": 0, "mpl_connect": 1, "singleShot": 1}.get(name)
            if slot is not None and len(args) > slot and not _is_guarded(args[slot]):
                found.append(f"{node.lineno}: {name}({ast.unparse(args[slot])})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "connect" and \
                node.args and not _is_guarded(node.args[0]):  # Phy's connect(f, event=..., sender=...)
            found.append(f"{node.lineno}: connect({ast.unparse(node.args[0])})")
        if isinstance(node, ast.FunctionDef):
            decorators = node.decorator_list
            phy_event = any(isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "connect"
                            for d in decorators)
            qt_virtual = node.name.endswith(QT_VIRTUALS) and node.name != "Event"
            if (phy_event or qt_virtual) and not any(_is_guarded(d) for d in decorators):
                found.append(f"{node.lineno}: def {node.name}")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda | ast.Name | ast.Attribute):
            for target in node.targets:  # controller.cluster_metrics[...] = f, controller.view_creator[...] = f
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute) and \
                        target.value.attr in ("cluster_metrics", "view_creator"):
                    found.append(f"{node.lineno}: {ast.unparse(target)} = {ast.unparse(node.value)}")
    return found


def test_every_connection_of_the_package_is_guarded():
    offenders = {path.relative_to(PACKAGE).as_posix(): found for path in sorted(PACKAGE.rglob("*.py"))
                 if (found := unguarded_connections(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_the_source_check_finds_an_unguarded_slot():
    """The check above can fail: each way of handing Qt or Phy a callable, unguarded, is found."""
    source = (
        "button.clicked.connect(lambda: 1)\n"
        "QTimer.singleShot(0, close)\n"
        "canvas.mpl_connect('button_release_event', self._clicked)\n"
        "controller.cluster_metrics['x'] = column\n"
        "@connect(sender=supervisor)\n"
        "def on_select(sender, ids): pass\n"
        "class View:\n"
        "    def resizeEvent(self, event): pass\n"
        "ok.clicked.connect(guarded(lambda: 1, what='ok'))\n"
        "@connect(sender=gui)\n"
        "@guarded\n"
        "def on_close(sender): pass\n"
        "connect(self.on_select, event='select')\n"
        "connect(guarded(self.on_cluster), event='cluster')\n"
    )
    assert sorted(int(line.split(":")[0]) for line in unguarded_connections(source)) == [1, 2, 3, 4, 6, 8, 13]


@pytest.fixture
def watched(monkeypatch):
    """Everything that reaches ``sys.excepthook`` (PyQt's route for a slot's exception; Phy's dialog, or an
    abort under `phy-bcreason demo`), every error Qt logs, and every failure the guard caught."""
    from phy_bcreason.gui import guard

    seen = {"excepthook": [], "qt": [], "guarded": []}
    monkeypatch.setattr(sys, "excepthook", lambda *info: seen["excepthook"].append(info[1]))
    report = guard._report
    monkeypatch.setattr(guard, "_report", lambda name, exc: (seen["guarded"].append(f"{name}: {exc!r}"),
                                                             report(name, exc)))
    previous = qInstallMessageHandler(lambda mode, context, message: seen["qt"].append(message)
                                      if "critical" in str(mode).lower() or "fatal" in str(mode).lower() else None)
    yield seen
    qInstallMessageHandler(previous)


def settle(seconds: float = 0.3) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def test_population_tab_after_merge_split_undo_redo(ks_dataset_copy, open_phy, watched):
    """Issue #22: the Population tab after a merge raised a broadcast ValueError into Qt (Phy aborted under
    `phy-bcreason demo`). Its table follows merges, splits, undo and redo: the clusters of now."""
    controller, gui = open_phy(ks_dataset_copy)
    wait_for_plugin(controller)
    supervisor, view = controller.supervisor, dock(gui)
    view.tabs.setCurrentWidget(view.population)
    first = len(view.population.table_frame)
    supervisor.merge([9, 10])
    supervisor.block()
    wait_for_plugin(controller)
    view.tabs.setCurrentWidget(view.concordance)
    view.tabs.setCurrentWidget(view.population)
    settle()
    live, merged = controller.phy_bcreason.live, int(max(supervisor.clustering.cluster_ids))
    assert merged in live.explanation.rows  # the explanation the tab was computed on has the merged cluster
    assert view.population.table.rowCount() == len(view.population.table_frame) == first == len(live.explanation.rules)
    spikes = supervisor.clustering.spikes_per_cluster[0]
    supervisor.split(spikes[: len(spikes) // 2])
    supervisor.block()
    wait_for_plugin(controller)
    for step in (supervisor.undo, supervisor.undo, supervisor.redo):
        step()
        supervisor.block()
        wait_for_plugin(controller)
        view.tabs.setCurrentIndex(0)  # the selected cluster's tab, then the Population tab again
        view.tabs.setCurrentWidget(view.population)
        settle(0.1)
        select(controller, [int(max(supervisor.clustering.cluster_ids))])
        view.population.show_rule(0)
    assert "failed" not in (gui.status_message or "")
    assert watched == {"excepthook": [], "qt": [], "guarded": []}


def test_a_failing_slot_leaves_phy_working_and_saving(ks_dataset_copy, open_phy, watched, monkeypatch):
    """A slot of ours that raises: one sentence in the status bar, nothing reaches Qt, Phy merges and saves."""
    controller, gui = open_phy(ks_dataset_copy)
    wait_for_plugin(controller)
    view = dock(gui)

    def broken(self):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(type(view.population), "refresh", broken)
    view.tabs.setCurrentWidget(view.population)  # Qt calls the dock's tab slot, which now raises
    settle()
    assert gui.status_message.startswith("phy-bcreason: the dock's tab failed (ZeroDivisionError: a bug of ours)")
    assert watched["excepthook"] == [] and watched["guarded"][0].startswith("the dock's tab: ZeroDivisionError")
    supervisor = controller.supervisor
    supervisor.merge([9, 10])  # the plugin's cluster handler refreshes the dock, which raises again: still fine
    supervisor.block()
    wait_for_plugin(controller)
    merged = int(max(supervisor.clustering.cluster_ids))
    supervisor.label("group", "good", cluster_ids=[merged])
    supervisor.block()
    supervisor.save()
    settle()
    spike_clusters = np.load(ks_dataset_copy / "spike_clusters.npy")
    assert merged in set(spike_clusters.tolist())
    groups = (ks_dataset_copy / "cluster_group.tsv").read_text(encoding="utf-8").splitlines()
    assert f"{merged}\tgood" in groups
    assert watched["excepthook"] == watched["qt"] == []


def test_a_guarded_slot_gets_only_the_arguments_it_takes(qapp):
    """Qt's clicked(bool) passes ``checked``; PyQt drops what a slot does not take, and so must the guard (else
    every `lambda:` slot would fail: the dock's Copy, Reset and List buttons did)."""
    from qtpy.QtWidgets import QPushButton

    from phy_bcreason.gui.guard import guarded

    seen = []
    button = QPushButton()
    button.clicked.connect(guarded(lambda: seen.append("no argument"), what="a button"))
    button.clicked.connect(guarded(lambda checked: seen.append(checked), what="a button"))
    button.click()
    assert seen == ["no argument", False]
