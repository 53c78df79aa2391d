"""Phy's Merge View (Phy's feature/merge-view-workflow branch, 2.2.0.dev0) reuses the cluster view's columns: the
clusters of a merge proposition from curation.json show the plugin's columns as the cluster view does, through a
what-if edit made while the Merge View is open, and a cluster merged in Phy gets its live label there too."""

import json
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import phy
import pytest
from phy.cluster import supervisor as phy_supervisor

from phy_bcreason import explain_folder
from phy_bcreason.gui.session import COMPUTING_LABEL, FROM_LIVE, FROM_RUN
from tests.test_plugin_gui import wait_for_plugin

HAS_MERGE_VIEW = hasattr(phy_supervisor, "MergeView")
# .ci/phy_next.sh sets this for the snapshot of Phy's merge-view branch: there, a Merge View gone is a failure
EXPECTED = os.environ.get("PHY_BCREASON_EXPECT_MERGE_VIEW") == "1"
pytestmark = pytest.mark.skipif(not HAS_MERGE_VIEW and not EXPECTED,
                                reason=f"Phy {phy.__version__} has no Merge View (Phy's merge-view branch adds it)")


def same_row(shown: dict, expected: dict, names) -> bool:
    """Equal values in these columns, NaN equal to NaN."""
    def equal(a, b):
        if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
            return True
        return a == b

    return all(equal(shown[name], expected[name]) for name in names)


def test_merge_view_shows_the_bc_columns_of_a_merge_proposition(ks_dataset_copy, open_phy):
    assert HAS_MERGE_VIEW, f"Phy {phy.__version__} ({phy.__file__}) has no phy.cluster.supervisor.MergeView"
    ks = ks_dataset_copy
    expected = explain_folder(ks).table()
    mua = int(expected[(expected["label"] == "MUA") & (expected["n_decisive"] > 1)].index[0])
    noise = int(expected[expected["label"] == "NOISE"].index[0])
    # a SpikeInterface/AIND merge proposition, as Phy reads it from the Kilosort folder
    proposal = {"format_version": "2", "unit_ids": [int(c) for c in expected.index],
                "merges": [{"unit_ids": [mua, noise]}]}
    (ks / "curation.json").write_text(json.dumps(proposal), encoding="utf8")
    controller, gui = open_phy(ks)
    supervisor, plugin = controller.supervisor, controller.phy_bcreason
    wait_for_plugin(controller)

    supervisor.next_merge_proposition()  # Alt+Down: review the first pending proposition
    supervisor.block()
    merge_view, cluster_view = supervisor.merge_view, supervisor.cluster_view
    assert not merge_view.dock.isHidden()
    assert merge_view.get_ids() == [mua, noise]
    ours = [name for name in cluster_view.columns if name in plugin.ours]
    assert [name for name in merge_view.columns if name in plugin.ours] == ours
    assert "bc_label" in ours and "percentageSpikesMissing_gaussian" in ours
    for cluster_id in (mua, noise):
        row, unit = merge_view.get(cluster_id), expected.loc[cluster_id]
        assert (row["bc_label"], row["bc_classificationReason"], row["bc_nFailed"], row["bc_source"]) == (
            unit["label"], unit["reason"], unit["n_decisive"], FROM_RUN)
        assert row["bc_margin"] == pytest.approx(unit["margin"], abs=1e-3, nan_ok=True)
        assert same_row(row, cluster_view.get(cluster_id), ours)

    # a what-if edit while the Merge View is open: it follows, as the cluster view does
    plugin._set_overrides({"maxNPeaks": -1})
    for cluster_id in (mua, noise):
        row = merge_view.get(cluster_id)
        assert row["bc_label"] == "NOISE" and "nPeaks" in row["bc_classificationReason"], row
        assert same_row(row, cluster_view.get(cluster_id), ours)
    plugin._set_overrides({})
    assert merge_view.get(mua)["bc_classificationReason"] == expected.loc[mua, "reason"]

    # accept the proposition (G); the merged cluster, staged in the Merge View, gets its live label there
    hold = threading.Event()  # the worker busy: the merged cluster is still being computed
    plugin.worker.submit(hold.wait, lambda result: None)
    try:
        supervisor.merge()
        supervisor.block()
        merged = int(max(supervisor.clustering.cluster_ids))
        assert supervisor.selected == [merged]
        supervisor.toggle_merge_mode()  # V, with the merged cluster selected
        supervisor.block()
        assert merge_view.get_ids() == [merged]
        assert merge_view.get(merged)["bc_label"] == COMPUTING_LABEL
    finally:
        hold.set()
    wait_for_plugin(controller)
    row = merge_view.get(merged)
    assert row["bc_source"] == FROM_LIVE and row["bc_label"] in ("GOOD", "MUA", "NOISE", "NON-SOMA"), row
    assert same_row(row, cluster_view.get(merged), ours)
