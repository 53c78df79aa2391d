"""Clusters made in Phy get Bombcell's metrics, labels and reasons live.

The oracle: curate through Phy's supervisor, save, run Bombcell itself on the saved folder, and compare each
new cluster's live metrics and label with Bombcell's.
"""

import os
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.api import bombcell_labels
from phy_bcreason.gui.session import COMPUTING_LABEL, FROM_LIVE, FROM_RUN, NO_ROW_LABEL
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from tests import dataset_builder as dsb
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

# Bombcell-computed columns that are not metrics of the unit (ids, bookkeeping).
NOT_COMPARED = {"phy_clusterID", "clusterID", "bc_unitType"}


def merge_and_wait(controller, cluster_ids) -> int:
    """Merge through Phy's supervisor, wait for the plugin; the merged cluster's id."""
    controller.supervisor.merge(cluster_ids)
    controller.supervisor.block()
    wait_for_plugin(controller)
    return int(max(controller.supervisor.clustering.cluster_ids))


def curate(supervisor) -> dict[str, list[int]]:
    """Merges and splits a user would do: two GOOD units, a split MUA unit, a three-way merge across labels,
    a merge of a merged cluster, and a split leaving fewer than 50 spikes on one side."""
    made = {}

    def new_ids(before):
        supervisor.block()
        return sorted(set(supervisor.clustering.cluster_ids.tolist()) - before)

    def action(name, do):
        before = set(supervisor.clustering.cluster_ids.tolist())
        do()
        made[name] = new_ids(before)

    action("merge GOOD 0+1", lambda: supervisor.merge([0, 1]))
    spikes = supervisor.clustering.spikes_per_cluster[9]
    action("split MUA 9", lambda: supervisor.split(spikes[: len(spikes) // 2]))
    action("merge 3+15+24", lambda: supervisor.merge([3, 15, 24]))
    action("merge merged+2", lambda: supervisor.merge([made["merge GOOD 0+1"][0], 2]))
    spikes = supervisor.clustering.spikes_per_cluster[11]
    action("split 40 spikes off 11", lambda: supervisor.split(spikes[:40]))
    return made


def rerun_after_save(ks, controller, gui, overrides) -> pd.DataFrame:
    controller.supervisor.save()
    gui.close()
    folder = dsb.rerun_bombcell(ks, overrides, "bombcell_after_curation")
    return pd.read_parquet(folder / METRICS_FILE).set_index("phy_clusterID")


def assert_same_metrics(live_table: pd.DataFrame, rerun: pd.DataFrame, not_live: dict) -> None:
    compared = [c for c in rerun.columns if c not in NOT_COMPARED and c not in not_live]
    assert set(compared) <= set(live_table.columns), set(compared) - set(live_table.columns)
    for cluster_id, live_row in live_table.iterrows():
        for metric in compared:
            ours, bombcell = float(live_row[metric]), float(rerun.loc[cluster_id, metric])
            assert ours == pytest.approx(bombcell, rel=1e-9, abs=1e-12, nan_ok=True), (cluster_id, metric)
        for metric in not_live:  # not recomputed: NaN, never a stale or guessed value
            assert np.isnan(live_row[metric]), (cluster_id, metric)


def written_elsewhere(ks, tmp_path, variant) -> str:
    """Make ``ks`` a folder whose Bombcell run was written on another machine: its raw_data_file names a path
    that is not on this one. "raw-from-windows": ``D:\\...\\recording.bin``, the file in the Kilosort folder;
    "raw-moved-folder": the POSIX path of a server, the recording in a folder beside the Kilosort folder that
    params.py's dat_path names relatively. The raw_data_file written."""
    raw = ks / "recording.bin"
    if variant == "raw-from-windows":
        written = r"D:\sorting\mouse1\recording.bin"
    else:
        written = "/mnt/server/sorting/mouse1/recording.bin"
        elsewhere = tmp_path / "raw" / "recording.bin"
        elsewhere.parent.mkdir()
        elsewhere.symlink_to(raw.resolve())
        raw.unlink()
        params = (ks / "params.py").read_text(encoding="utf-8")
        (ks / "params.py").write_text(params.replace("dat_path = 'recording.bin'",
                                                     "dat_path = '../raw/recording.bin'"), encoding="utf-8")
    table = pd.read_parquet(ks / "bombcell" / PARAMS_FILE)
    assert not Path(table["raw_data_file"].iloc[0]).parent.samefile(ks)  # the session's dataset, not this copy
    table["raw_data_file"] = written
    table.to_parquet(ks / "bombcell" / PARAMS_FILE)
    return written


@pytest.mark.parametrize("variant", ["defaults", "drift-distance-hill", "raw", "raw-from-windows",
                                     "raw-moved-folder"])
def test_live_metrics_and_labels_equal_bombcell_rerun_on_the_saved_folder(variant, request, tmp_path, open_phy):
    # raw: Bombcell ran with extractRaw on; rawAmplitude and signalToNoiseRatio come from the raw recording.
    # raw-from-windows, raw-moved-folder: the same, with the run's raw_data_file written on another machine.
    raw = variant.startswith("raw")
    ks = dsb.copy_dataset(request.getfixturevalue("ks_dataset_raw" if raw else "ks_dataset"), tmp_path / "ks")
    written = written_elsewhere(ks, tmp_path, variant) if variant.startswith("raw-") else None
    overrides = {}
    if variant == "drift-distance-hill":
        # drift is recomputed live; distance metrics are not (they compare with every other cluster); the
        # single tauR value of the 'hill' method is told from the run's estimatedTauR
        overrides = {"computeDrift": True, "computeDistanceMetrics": True, "rpv_method": "hill",
                     "tauR_values": np.array([0.002])}
        dsb.rerun_bombcell(ks, overrides, "bombcell")
    controller, gui = open_phy(ks)
    supervisor = controller.supervisor
    wait_for_plugin(controller)
    hold = threading.Event()  # keep the worker busy: what the user sees while the metrics are computed
    controller.phy_bcreason.worker.submit(hold.wait, lambda result: None)
    made = curate(supervisor)
    alive = supervisor.clustering.cluster_ids.tolist()
    new = sorted(c for ids in made.values() for c in ids if c in alive)
    assert len(new) == 6  # 0+1 was merged again
    shown = rows(controller)
    assert {shown[c]["bc_label"] for c in new} == {COMPUTING_LABEL}
    assert "computing Bombcell's metrics from" in shown[new[0]]["bc_classificationReason"]
    select(controller, [new[0]])
    assert dock(gui).content.title == f"cluster {new[0]}: computing…"

    hold.set()
    wait_for_plugin(controller)
    plugin = controller.phy_bcreason
    live, recording = plugin.live, plugin.live.live_info
    shown = rows(controller)
    assert {shown[c]["bc_source"] for c in new} == {FROM_LIVE}
    assert {shown[c]["bc_source"] for c in alive if c not in new} == {FROM_RUN}
    assert "recomputed live from Bombcell's metrics: cluster" in gui.status_message
    live_table = live.live_metrics.set_index("phy_clusterID").loc[new]

    select(controller, [new[0]])
    content = dock(gui).content
    assert content.title.endswith("(recomputed live)")
    assert "Rebuilt parameter tauR_values" in content.source
    for metric in recording.not_live:
        assert metric in content.source
    if variant != "drift-distance-hill":
        assert recording.not_live == {}
    else:
        assert set(recording.not_live) == {"isolationDistance", "Lratio", "silhouetteScore"}
        assert np.array_equal(recording.rebuilt_values["tauR_values"], [0.002])
        assert "the one estimatedTauR" in recording.rebuilt["tauR_values"]

    rerun = rerun_after_save(ks, controller, gui, overrides)
    assert_same_metrics(live_table, rerun, recording.not_live)
    # Labels: Bombcell's own, on the re-run's metrics without those the live path does not compute.
    without_not_live = rerun.loc[new].reset_index().assign(**dict.fromkeys(recording.not_live, np.nan))
    expected = bombcell_labels(without_not_live, live.results.params)
    assert [shown[c]["bc_label"] for c in new] == list(expected)
    if not recording.not_live:
        assert [shown[c]["bc_label"] for c in new] == rerun.loc[new, "bc_unitType"].tolist()
        # Reasons come from the same engine as Bombcell's own rows.
        reasons = explain_folder(ks, ks / "bombcell_after_curation", check=False).table()
        assert [shown[c]["bc_classificationReason"] for c in new] == reasons.loc[new, "reason"].tolist()
    if raw:
        assert live_table[["rawAmplitude", "signalToNoiseRatio"]].notna().sum().tolist() == [5, 5]  # not the 40
    if written:  # the dock says which file was read instead
        read = ks / "recording.bin" if variant == "raw-from-windows" else tmp_path / "raw" / "recording.bin"
        assert any(written in note and str(read) in note for note in recording.notes), recording.notes
    small = made["split 40 spikes off 11"]
    assert shown[small[0]]["bc_label"] == "NOISE"  # 40 spikes: every metric NaN, nPeaks too


def test_undo_redo_restore_the_right_values_without_recomputing(ks_dataset_copy, open_phy):
    expected = explain_folder(ks_dataset_copy).table()
    controller, gui = open_phy(ks_dataset_copy)
    supervisor = controller.supervisor
    merged = merge_and_wait(controller, [9, 10])
    live = controller.phy_bcreason.live
    merged_row = rows(controller)[merged]
    assert merged_row["bc_source"] == FROM_LIVE and merged_row["bc_label"] not in (NO_ROW_LABEL, COMPUTING_LABEL)

    # a what-if edit re-explains live rows too, and Reset brings them back
    controller.phy_bcreason._set_overrides({"maxNPeaks": -1})
    edited = rows(controller)[merged]
    assert edited["bc_label"] == "NOISE" and "nPeaks" in edited["bc_classificationReason"], edited
    controller.phy_bcreason._set_overrides({})
    assert rows(controller)[merged] == merged_row

    for _ in range(2):
        supervisor.undo()
        supervisor.block()
        shown = rows(controller)
        assert merged not in shown
        for cluster_id in (9, 10):
            assert shown[cluster_id]["bc_classificationReason"] == expected.loc[cluster_id, "reason"]
            assert shown[cluster_id]["bc_source"] == FROM_RUN
        supervisor.redo()
        supervisor.block()
        assert not live.pending  # known from before: shown at once, not recomputed
        assert rows(controller)[merged] == merged_row
        select(controller, [merged])
        assert dock(gui).content.title == f"cluster {merged}: {merged_row['bc_label']} (recomputed live)"

    spikes = supervisor.clustering.spikes_per_cluster[merged]
    supervisor.split(spikes[: len(spikes) // 3])
    supervisor.block()
    halves = [c for c in supervisor.clustering.cluster_ids if c > merged]
    wait_for_plugin(controller)
    assert {rows(controller)[c]["bc_source"] for c in halves} == {FROM_LIVE}
    supervisor.undo()
    supervisor.block()
    assert rows(controller)[merged] == merged_row
    assert len(live.live_metrics) == 3  # the merge and the two halves, each computed once


def test_a_folder_curated_in_an_earlier_session_opens_with_live_values(ks_dataset_copy, open_phy):
    ks = ks_dataset_copy
    controller, gui = open_phy(ks)
    made = curate(controller.supervisor)
    wait_for_plugin(controller)
    before = {c: r for c, r in rows(controller).items() if r["bc_source"] == FROM_LIVE}
    controller.supervisor.save()
    gui.close()
    controller.close()
    from phylib.utils import reset

    reset()

    controller, gui = open_phy(ks)  # Bombcell's results still describe the folder before curation
    # queued behind the child process's start-up (seconds): shown as computing first
    assert {rows(controller)[c]["bc_label"] for c in before} == {COMPUTING_LABEL}
    assert any("no Bombcell row" in note for note in explain_folder(ks).notes)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert sorted(before) == sorted(c for c, r in shown.items() if r["bc_source"] == FROM_LIVE)
    assert len(before) == 6, made
    for cluster_id, row in before.items():
        for column in ("bc_label", "bc_classificationReason", "bc_nFailed", "bc_source"):
            assert shown[cluster_id][column] == row[column], (cluster_id, column)
    assert "6 recomputed live" in gui.status_message


def test_when_live_metrics_cannot_be_computed_phy_keeps_working_and_says_why(ks_dataset_copy, open_phy):
    """A parameter file without ephys_sample_rate: labels need no sample rate, Bombcell's metrics do."""
    ks = ks_dataset_copy
    params = pd.read_parquet(ks / "bombcell" / PARAMS_FILE)
    params.drop(columns=["ephys_sample_rate"]).to_parquet(ks / "bombcell" / PARAMS_FILE)
    controller, gui = open_phy(ks)
    supervisor = controller.supervisor
    merged = merge_and_wait(controller, [9, 10])
    row = rows(controller)[merged]
    assert row["bc_label"] == NO_ROW_LABEL
    message = "Bombcell's parameter file has no usable ephys_sample_rate"
    assert row["bc_classificationReason"] == (
        f"no Bombcell row (new in this session, from cluster(s) 9, 10); could not recompute live: {message}")
    assert gui.status_message == f"phy-bcreason: could not recompute cluster {merged} live: {message}"
    select(controller, [merged])
    assert dock(gui).content.title == f"cluster {merged}: no Bombcell row"
    # the rest of Phy, and the other clusters' explanations, are untouched
    assert rows(controller)[0]["bc_source"] == FROM_RUN and rows(controller)[0]["bc_label"] == "GOOD"
    supervisor.undo()
    supervisor.block()
    assert rows(controller)[9]["bc_source"] == FROM_RUN


def test_cli_live_explains_a_curated_folder_as_a_bombcell_rerun_does(ks_dataset_copy, capsys):
    """`phy-bcreason explain --live` on a folder curated after Bombcell ran (5+6 merged, 12 split)."""
    import json

    from phy_bcreason.cli import main as cli_main

    ks = ks_dataset_copy
    spike_clusters = np.load(ks / "spike_clusters.npy")
    flat = spike_clusters.ravel().copy()
    flat[np.isin(flat, [5, 6])] = 27
    twelve = np.flatnonzero(flat == 12)
    flat[twelve[: len(twelve) // 3]], flat[twelve[len(twelve) // 3:]] = 28, 29
    np.save(ks / "spike_clusters.npy", flat.reshape(spike_clusters.shape))

    assert cli_main(["explain", str(ks), "--cluster", "27", "28", "29"]) == 2  # without --live: no rows
    assert cli_main(["explain", str(ks), "--live", "--json", "--cluster", "27", "28", "29"]) == 0
    captured = capsys.readouterr()
    units = json.loads(captured.out)
    assert "note: 3 cluster(s) without a Bombcell row recomputed live with Bombcell's metric functions (27, 28, 29)" \
        in captured.err

    expected = explain_folder(ks, dsb.rerun_bombcell(ks, {}, "bombcell_after_curation"), check=False)
    for unit in units:
        bombcell = expected.unit(unit["cluster_id"])
        assert (unit["label"], unit["reason"]) == (bombcell["label"], bombcell["reason"])
        assert (len(unit["decisive"]), len(unit["also_failed"])) == (len(bombcell["decisive"]),
                                                                      len(bombcell["also_failed"]))
        for ours, theirs in zip(unit["decisive"] + unit["also_failed"], bombcell["decisive"] + bombcell["also_failed"]):
            assert ours["metric"] == theirs["metric"]
            assert ours["value"] == pytest.approx(theirs["value"], rel=1e-9, nan_ok=True)
