"""Bombcell's own per-metric columns (cluster_<metric>.tsv, shown by Phy) stay true through merges and splits,
and the plugin's columns are sized without Qt measuring every cell."""

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pandas as pd
import pytest

from phy_bcreason.gui.session import FROM_LIVE
from tests.test_plugin_gui import rows, wait_for_plugin

METRICS = ("percentageSpikesMissing_gaussian", "fractionRPVs_estimatedTauR", "presenceRatio", "nPeaks",
           "waveformDuration_peakTrough", "spatialDecaySlope")


def tsv_values(ks, name) -> dict:
    table = pd.read_csv(ks / f"cluster_{name}.tsv", sep="\t")
    return dict(zip(table["cluster_id"].astype(int), table[name]))


def same(shown, expected) -> bool:
    if expected is None or (isinstance(expected, float) and np.isnan(expected)):
        return shown is None
    return shown == pytest.approx(float(expected), rel=1e-12)


def test_merged_cluster_shows_its_live_metric_values_never_a_parents(ks_dataset_copy, open_phy):
    ks = ks_dataset_copy
    before = {p.name: p.read_bytes() for p in ks.glob("cluster_*.tsv") if p.stem not in ("cluster_group",)}
    controller, gui = open_phy(ks)
    supervisor = controller.supervisor
    for name in METRICS:
        assert supervisor.columns.count(name) == 1, name
    shown = rows(controller)
    for name in METRICS:  # Bombcell's own rows: the run's values, as Phy showed them from the files
        for cluster_id, value in tsv_values(ks, name).items():
            assert same(shown[cluster_id][name], value), (cluster_id, name)

    wait_for_plugin(controller)
    hold = threading.Event()  # what the user sees while the metrics are computed
    controller.phy_bcreason.worker.submit(hold.wait, lambda result: None)
    supervisor.merge([9, 10])
    supervisor.block()
    merged = int(max(supervisor.clustering.cluster_ids))
    computing = rows(controller)[merged]
    assert all(computing[name] is None for name in METRICS), computing  # blank, not the largest parent's
    hold.set()
    wait_for_plugin(controller)

    live = controller.phy_bcreason.live
    row = rows(controller)[merged]
    assert row["bc_source"] == FROM_LIVE
    live_row = live.live_metrics.set_index("phy_clusterID").loc[merged]
    for name in METRICS:
        assert same(row[name], live_row[name]), (name, row[name], live_row[name])
    parent = tsv_values(ks, "percentageSpikesMissing_gaussian")
    assert row["percentageSpikesMissing_gaussian"] not in (parent[9], parent[10])
    # the similarity view shows the same values
    similar = supervisor.similarity_view._model._rows_by_id.get(merged)
    if similar is not None:
        assert same(similar["fractionRPVs_estimatedTauR"], live_row["fractionRPVs_estimatedTauR"])

    # undo shows the parents' run values again; the files on disk are never written, even on save
    supervisor.undo()
    supervisor.block()
    shown = rows(controller)
    assert same(shown[9]["presenceRatio"], tsv_values(ks, "presenceRatio")[9])
    supervisor.redo()
    supervisor.block()
    assert same(rows(controller)[merged]["presenceRatio"], live_row["presenceRatio"])
    supervisor.save()  # Phy writes cluster_group.tsv and cluster_info.tsv; Bombcell's files stay as they were
    assert {name: (ks / name).read_bytes() for name in before} == before


def test_split_halves_show_live_values_and_matlab_named_columns_follow(ks_dataset_copy, open_phy):
    ks = ks_dataset_copy
    # MATLAB Bombcell names its files otherwise: cluster_frac_RPVs.tsv for fractionRPVs_estimatedTauR
    fractions = tsv_values(ks, "fractionRPVs_estimatedTauR")
    pd.DataFrame({"cluster_id": list(fractions), "frac_RPVs": list(fractions.values())}).to_csv(
        ks / "cluster_frac_RPVs.tsv", sep="\t", index=False)
    controller, gui = open_phy(ks)
    supervisor = controller.supervisor
    assert "frac_RPVs" in supervisor.columns
    assert same(rows(controller)[3]["frac_RPVs"], fractions[3])
    wait_for_plugin(controller)
    spikes = supervisor.clustering.spikes_per_cluster[11]
    supervisor.split(spikes[: len(spikes) // 2])
    supervisor.block()
    wait_for_plugin(controller)
    halves = [c for c in supervisor.clustering.cluster_ids if c not in fractions]
    assert len(halves) == 2
    table = controller.phy_bcreason.live.live_metrics.set_index("phy_clusterID")
    for half in halves:
        row = rows(controller)[half]
        assert row["bc_source"] == FROM_LIVE
        assert same(row["frac_RPVs"], table.loc[half, "fractionRPVs_estimatedTauR"])
        assert same(row["nPeaks"], table.loc[half, "nPeaks"])


def test_columns_are_sized_without_measuring_every_cell(ks_dataset_copy, open_phy):
    from qtpy.QtWidgets import QHeaderView

    from phy_bcreason.gui.tables import REASON_CHARS

    controller, gui = open_phy(ks_dataset_copy)
    for table in (controller.supervisor.cluster_view, controller.supervisor.similarity_view):
        sizing = table._bcreason_sizing
        assert table._fit_columns == sizing.fit
        header, view = table.table_view.horizontalHeader(), table.table_view
        assert all(header.sectionResizeMode(i) == QHeaderView.Interactive for i in range(header.count()))
        assert view.verticalHeader().sectionResizeMode(0) == QHeaderView.Fixed
    view = controller.supervisor.cluster_view
    table_view = view.table_view
    metrics = table_view.fontMetrics()
    reason = view.columns.index("bc_classificationReason")
    assert table_view.columnWidth(reason) <= REASON_CHARS * metrics.averageCharWidth() + view._bcreason_sizing.padding
    # every label and every short column fits its text
    for name in ("bc_label", "bc_source", "bc_nFailed", "percentageSpikesMissing_gaussian"):
        index = view.columns.index(name)
        widest = max(metrics.horizontalAdvance(table_view.model().index(r, index).data() and
                                               str(table_view.model().index(r, index).data()) or "")
                     for r in range(table_view.model().rowCount()))
        assert table_view.columnWidth(index) >= widest, name
    # rows have the height Qt gives a row of this table
    assert table_view.rowHeight(0) == table_view.sizeHintForRow(0)


def test_a_reason_too_long_for_its_column_is_elided_and_in_the_tooltip(ks_dataset_copy, open_phy):
    from qtpy.QtCore import QEvent
    from qtpy.QtGui import QHelpEvent
    from qtpy.QtWidgets import QToolTip

    from phy_bcreason.gui.tables import update_rows

    controller, gui = open_phy(ks_dataset_copy)
    view = controller.supervisor.cluster_view
    table_view, column = view.table_view, view.columns.index("bc_classificationReason")
    reason = "MUA: " + ", ".join(["fractionRPVs_estimatedTauR>maxRPVviolations"] * 4)
    cluster_id = view.get_ids()[0]
    width = table_view.columnWidth(column)
    update_rows(view, [{"id": cluster_id, "bc_classificationReason": reason}])
    assert table_view.columnWidth(column) == width  # capped: the text is elided, the column keeps its width
    rect = table_view.visualRect(view._proxy_index_for_id(cluster_id, column))
    event = QHelpEvent(QEvent.ToolTip, rect.center(), table_view.viewport().mapToGlobal(rect.center()))
    assert view._bcreason_sizing.eventFilter(table_view.viewport(), event)
    assert QToolTip.text() == reason
