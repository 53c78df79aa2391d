"""The first hour in Phy, walked as a user walks it (issue #22), on the bundled demo and on a folder Bombcell
labelled here: select, sort, filter, merge, split, undo, redo, and after each every tab of the dock and its
panels; nothing of ours reaches Qt (sys.excepthook, Qt's message handler and the guard all watched), and what
the dock shows follows the clusters of now."""

import os
import shutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from phy.gui.qt import QApplication

from phy_bcreason.demo import DEMO_DATA
from tests.test_guard import settle, watched  # noqa: F401  (the fixture)
from tests.test_plugin_gui import dock, select, wait_for_plugin


@pytest.fixture(params=["demo", "bombcell_run"])
def folder(request, tmp_path, ks_dataset):
    source = DEMO_DATA if request.param == "demo" else ks_dataset
    return shutil.copytree(source, tmp_path / "ks")


def every_tab(view, cluster_id) -> None:
    """Each tab shown in turn with ``cluster_id`` selected; the Population tab's first rule plotted."""
    for index in range(view.tabs.count()):
        view.tabs.setCurrentIndex(index)
        QApplication.processEvents()
    view.population.show_rule(0)
    view.tabs.setCurrentIndex(0)
    settle(0.1)
    assert view.shown_id == cluster_id and view.content.title.startswith(f"cluster {cluster_id}:")


def test_the_first_hour(folder, open_phy, watched):  # noqa: F811
    controller, gui = open_phy(folder)
    gui.show()
    wait_for_plugin(controller)
    supervisor, view, live = controller.supervisor, dock(gui), controller.phy_bcreason.live
    ids = [int(c) for c in supervisor.clustering.cluster_ids]

    def step(action, check_id=None):
        action()
        supervisor.block()
        wait_for_plugin(controller)
        alive = [int(c) for c in supervisor.clustering.cluster_ids]
        cluster_id = check_id if check_id is not None else max(alive)
        select(controller, [cluster_id])
        every_tab(view, cluster_id)
        # the dock and the status bar speak of the clusters of now
        assert all(c in live.explanation.rows or c in live.pending or c in live.failed for c in alive)
        assert "failed" not in (gui.status_message or "")
        return alive

    for cluster_id in ids[:3]:
        select(controller, [cluster_id])
        every_tab(view, cluster_id)
    supervisor.cluster_view.sort_by("bc_label", "desc")
    supervisor.cluster_view.filter("bc_nFailed > 0")
    settle(0.2)
    supervisor.cluster_view.filter("")
    merged_from = ids[-2:]
    after_merge = step(lambda: supervisor.merge(merged_from))
    merged = max(after_merge)
    assert not set(merged_from) & set(after_merge)
    assert controller.phy_bcreason.live.column_values(merged)["bc_source"] == "live"
    spikes = supervisor.clustering.spikes_per_cluster[ids[0]]
    step(lambda: supervisor.split(spikes[: len(spikes) // 2]))
    step(supervisor.undo)
    step(supervisor.undo)
    assert sorted(int(c) for c in supervisor.clustering.cluster_ids) == sorted(ids)
    step(supervisor.redo)
    supervisor.label("group", "good", cluster_ids=[merged])
    supervisor.block()
    view.tabs.setCurrentWidget(view.concordance)
    settle(0.2)
    assert watched["excepthook"] == [] and watched["qt"] == [] and watched["guarded"] == []
