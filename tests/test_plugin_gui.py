"""The plugin in a real Phy GUI (TemplateController + create_gui, offscreen) on folders Bombcell labelled."""

import os
import shutil
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from phy.gui.qt import QApplication

from phy_bcreason import explain_folder
from phy_bcreason.cli import main as cli_main
from phy_bcreason.gui.dock import STATUS_COLUMN, BombcellWhyView
from phy_bcreason.gui.session import COLUMNS, NO_ROW_LABEL


def select(controller, cluster_ids, timeout=5.0):
    """Select through Phy's supervisor and let its debounced selection events arrive."""
    controller.supervisor.select(list(cluster_ids))
    controller.supervisor.block()
    deadline = time.monotonic() + timeout
    while controller.supervisor.selected != list(cluster_ids) and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    assert controller.supervisor.selected == list(cluster_ids)


def wait_for_plugin(controller, timeout: float = 120.0, worker=None) -> None:
    """The plugin runs Bombcell (its classifier, live metrics) on a worker thread and posts the results back
    to the GUI thread: let Qt deliver them until the worker (``worker``: another of the plugin's) has nothing
    left."""
    worker = worker or controller.phy_bcreason.worker
    deadline = time.monotonic() + timeout
    while not worker.idle():
        assert time.monotonic() < deadline, "the plugin's worker did not finish"
        QApplication.processEvents()
        time.sleep(0.01)
    controller.supervisor.block()


def rows(controller) -> dict[int, dict]:
    view = controller.supervisor.cluster_view
    return {c: view.get(c) for c in view.get_ids()}


def dock(gui) -> BombcellWhyView:
    (view,) = gui.list_views("BombcellWhyView")
    return view


def test_columns_equal_the_engine_for_every_cluster(ks_dataset_copy, open_phy):
    expected = explain_folder(ks_dataset_copy).table()
    controller, gui = open_phy(ks_dataset_copy)
    columns = controller.supervisor.columns
    assert all(columns.count(name) == 1 for name in COLUMNS)
    assert "bc_unitType" not in columns  # the static Bombcell label is replaced, not shown twice
    shown = rows(controller)
    assert sorted(shown) == sorted(expected.index)
    for cluster_id, row in shown.items():
        unit = expected.loc[cluster_id]
        assert row["bc_label"] == unit["label"]
        assert row["bc_classificationReason"] == unit["reason"]
        assert row["bc_nFailed"] == unit["n_decisive"]
        assert (np.isnan(row["bc_margin"]) and np.isnan(unit["margin"])) or row["bc_margin"] == pytest.approx(
            unit["margin"], abs=1e-3)
    assert "8 GOOD" in gui.status_message and "4 NON-SOMA" in gui.status_message


def test_sorting_and_filtering_by_the_new_columns(ks_dataset_copy, open_phy):
    expected = explain_folder(ks_dataset_copy).table()
    controller, _ = open_phy(ks_dataset_copy)
    view = controller.supervisor.cluster_view
    view.sort_by("bc_classificationReason", "asc")
    reasons = [view.get(c)["bc_classificationReason"] for c in view.get_ids()]
    assert reasons == sorted(reasons) and len(set(reasons)) > 5

    view.filter("bc_label == 'MUA' and bc_nFailed > 1")
    wanted = expected[(expected["label"] == "MUA") & (expected["n_decisive"] > 1)].index
    assert len(wanted) >= 2
    assert sorted(view.get_ids()) == sorted(wanted)


def test_selecting_a_cluster_shows_its_rules_in_the_dock(ks_dataset_copy, open_phy):
    explanation = explain_folder(ks_dataset_copy)
    controller, gui = open_phy(ks_dataset_copy)
    mua = int(explanation.cluster_ids[np.flatnonzero(explanation.labels == "MUA")[0]])
    select(controller, [mua])
    view = dock(gui)
    assert view.content.title == f"cluster {mua}: MUA"
    assert view.reason.text() == explanation.table().loc[mua, "reason"]
    blocks = [view.tree.topLevelItem(i) for i in range(view.tree.topLevelItemCount())]
    assert [b.text(0) for b in blocks] == ["NOISE", "NON-SOMATIC", "MUA"]
    status = STATUS_COLUMN
    assert blocks[2].text(status) == "decided the label" and blocks[0].text(status) == "passes"
    shown = {blocks[2].child(i).text(0): blocks[2].child(i).text(status) for i in range(blocks[2].childCount())}
    for c in explanation.unit(mua)["decisive"]:
        assert shown[c["metric"]] == "decided the label"
    # The peak1/peak2 test is one group of four under NON-SOMATIC.
    group = next(blocks[1].child(i) for i in range(blocks[1].childCount()) if blocks[1].child(i).childCount())
    assert group.childCount() == 4
    assert "maxRPVviolations" in view.text()

    select(controller, [mua, 0])
    assert view.chooser.isVisibleTo(view) and view.chooser.count() == 2
    view.chooser.setCurrentIndex(1)
    assert view.content.title == "cluster 0: GOOD"


def test_merge_and_split_name_their_origins(ks_dataset_copy, open_phy):
    """Phy copies a parent's static metadata onto a merged cluster; ours is recomputed and says from what."""
    controller, gui = open_phy(ks_dataset_copy)
    supervisor = controller.supervisor
    supervisor.merge([9, 10])
    supervisor.block()
    merged = max(supervisor.clustering.cluster_ids)
    spikes = supervisor.clustering.spikes_per_cluster[0]
    supervisor.split(spikes[: len(spikes) // 2])
    supervisor.block()
    halves = [c for c in supervisor.clustering.cluster_ids if c > merged]
    assert len(halves) == 2
    wait_for_plugin(controller)
    for cluster_id, parents in [(merged, "9, 10"), *[(c, "0") for c in halves]]:
        row = supervisor.cluster_view.get(cluster_id)
        assert row["bc_source"] == "live" and row["bc_label"] in ("GOOD", "MUA", "NOISE", "NON-SOMA"), row
        select(controller, [cluster_id])
        assert dock(gui).content.source.startswith(f"Recomputed live: made in Phy from cluster(s) {parents};")
        assert dock(gui).source.text() == dock(gui).content.source


def test_without_bombcell_results_phy_opens_and_says_why(ks_dataset_copy, open_phy):
    shutil.rmtree(ks_dataset_copy / "bombcell")
    controller, gui = open_phy(ks_dataset_copy)
    assert "no Bombcell results" in gui.status_message and "bombcell/, qMetrics/" in gui.status_message
    assert {r["bc_label"] for r in rows(controller).values()} == {NO_ROW_LABEL}
    select(controller, [0])
    assert "no Bombcell results" in dock(gui).content.reason


def test_exported_static_column_does_not_duplicate_or_contradict(ks_dataset_copy, open_phy, capsys):
    assert cli_main(["export", str(ks_dataset_copy)]) == 0
    tsv = ks_dataset_copy / "cluster_bc_classificationReason.tsv"
    tsv.write_text(tsv.read_text().replace("GOOD: passed all thresholds", "stale text"))
    expected = explain_folder(ks_dataset_copy).table()
    controller, _ = open_phy(ks_dataset_copy)
    assert controller.supervisor.columns.count("bc_classificationReason") == 1
    shown = rows(controller)
    assert all(shown[c]["bc_classificationReason"] == expected.loc[c, "reason"] for c in shown)
    assert "stale text" in tsv.read_text()  # the user's file is left as it was


def test_unreadable_results_leave_phy_working(ks_dataset_copy, open_phy):
    metrics = ks_dataset_copy / "bombcell" / "templates._bc_qMetrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:300])
    before = sorted(p.name for p in ks_dataset_copy.iterdir())
    controller, gui = open_phy(ks_dataset_copy)
    assert "cannot read as parquet" in gui.status_message and "templates._bc_qMetrics.parquet" in gui.status_message
    select(controller, [3])
    assert "cannot read as parquet" in dock(gui).content.reason
    assert len(metrics.read_bytes()) == 300  # the user's file is not touched
    assert {p.name for p in ks_dataset_copy.iterdir()} - set(before) <= {".phy", "phy.log"}


def test_demo_opens_phy_and_saves_a_screenshot(tmp_path):
    """`phy-bcreason demo --screenshot` on the bundled dataset, as a user on a machine without a screen."""
    import subprocess
    import sys

    png = tmp_path / "demo.png"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    result = subprocess.run([sys.executable, "-m", "phy_bcreason", "demo", "--screenshot", str(png)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
