"""The refractory periods of an older Python Bombcell run (issue #22). A parameter file without rpv_method
(Python Bombcell before 0.84) means Bombcell's legacy refractory test, which sweeps
np.arange(tauR_valuesMin, tauR_valuesMax + tauR_valuesStep, tauR_valuesStep) and never reads tauR_values. A
cluster merged in Phy gets its refractory metrics on the run's grid, as Bombcell computes them on that grid for
those spikes, and the dock says which grid; when the run's files do not tell it, those metrics are withheld.

The oracle: Bombcell itself, with the same older parameter set, on the folder with the same merges.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pandas as pd
import pytest

from phy_bcreason.api import bombcell_labels
from phy_bcreason.gui.session import FROM_LIVE
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE, PER_TAUR_FILE
from phy_bcreason.io.find import load_results
from phy_bcreason.live.metrics import import_bombcell_functions, metrics_table, with_live_rows
from phy_bcreason.live.recording import KEPT_TIME_METRICS, RPV_METRICS, Recording
from tests import dataset_builder as dsb
from tests.test_live_metrics import assert_same_metrics, merge_and_wait
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

# an older Python Bombcell's parameter set: no rpv_method, no tauR_values, a 0.5-5 ms sweep
LEGACY = {"rpv_method": dsb.DROP, "tauR_values": dsb.DROP,
          "tauR_valuesMin": 0.0005, "tauR_valuesMax": 0.005, "tauR_valuesStep": 0.0005}
GRID = "0.5-5 ms in 0.5 ms steps, 10 values"
FROM_PARAMS = f"{GRID}: the run's tauR_valuesMin/Max/Step, the same as the columns of its per-tauR table"
UNKNOWN = "the refractory periods the run tested are unknown"
MERGES = ((13, 14), (0, 1))  # two MUA units, two GOOD ones; ids 27 and 28 once merged
MERGED = [27, 28]


@pytest.fixture(scope="session")
def legacy_run(tmp_path_factory, ks_dataset):
    """(the default dataset labelled by Bombcell with ``LEGACY``, the same with ``MERGES`` merged as Phy saves
    them, Bombcell's table for the merged folder with ``LEGACY``)."""
    base = tmp_path_factory.mktemp("legacy")
    ks = dsb.copy_dataset(ks_dataset, base / "ks")
    dsb.rerun_bombcell(ks, LEGACY, "bombcell")
    merged = dsb.copy_dataset(ks, base / "merged")
    spike_clusters = np.load(merged / "spike_clusters.npy")
    flat = spike_clusters.ravel().copy()
    for new_id, pair in zip(MERGED, MERGES):
        flat[np.isin(flat, pair)] = new_id
    np.save(merged / "spike_clusters.npy", flat.reshape(spike_clusters.shape))
    oracle = pd.read_parquet(dsb.rerun_bombcell(merged, LEGACY, "bombcell_after_merge") / METRICS_FILE)
    return ks, merged, oracle.set_index("phy_clusterID")


def edit_run(ks, variant) -> None:
    """Make the run's files tell its grid less well. "no-scalars": a parameter file without
    tauR_valuesMin/Max/Step (the per-tauR table's columns still tell the grid); "unknown": nor a per-tauR table;
    "disagree": a tauR_valuesMax that does not give the per-tauR table's columns; "unknown-chunks": "unknown",
    the run said to have chosen time chunks."""
    folder = ks / "bombcell"
    params = pd.read_parquet(folder / PARAMS_FILE)
    assert "rpv_method" not in params.columns and "tauR_values" not in params.columns  # an older parameter set
    if variant == "disagree":
        params["tauR_valuesMax"] = 0.004
    elif variant != "legacy":
        params = params.drop(columns=["tauR_valuesMin", "tauR_valuesMax", "tauR_valuesStep"])
    if variant in ("unknown", "unknown-chunks"):
        (folder / PER_TAUR_FILE).unlink()
    if variant == "unknown-chunks":
        params["computeTimeChunks"] = True
    params.to_parquet(folder / PARAMS_FILE)


def rpv_line(content) -> tuple[str, ...]:
    """The dock's row of the refractory rule: (metric, value, test, threshold, margin, status, parameter)."""
    def walk(lines):
        for line in lines:
            yield line
            yield from walk(line.children)

    (line,) = [line for line in walk(content.lines) if line.cells[0] == "fractionRPVs_estimatedTauR"]
    return line.cells


def test_the_run_saves_its_grid_and_the_merged_clusters_depend_on_it(legacy_run):
    """What an older run saves: the three scalars in its parameter file, a column per tauR in its per-tauR
    table; and on Bombcell's legacy default (2 ms) the merged clusters' refractory values are others."""
    ks, merged, oracle = legacy_run
    results = load_results(ks / "bombcell", ks_dir=ks)
    assert [float(c) for c in results.tauR_columns] == pytest.approx(np.arange(1, 11) * 0.0005, rel=1e-12)
    assert (results.params["tauR_valuesMin"], results.params["tauR_valuesMax"]) == (0.0005, 0.005)
    # its parameter RPV_tauR_estimate (None) is the legacy test's, not MATLAB's old name of a metric
    assert "RPV_tauR_estimate" in results.params and not any("RPV_tauR_estimate" in n for n in results.notes)
    assert set(results.metrics["estimatedTauR"].dropna()) <= {float(c) for c in results.tauR_columns}
    import_bombcell_functions()
    default = Recording.load(merged, {**results.params, "tauR_valuesMin": 0.002, "tauR_valuesMax": 0.002})
    spike_clusters = np.load(merged / "spike_clusters.npy").ravel()
    on_default = metrics_table(default, {c: np.flatnonzero(spike_clusters == c) for c in MERGED})
    for cluster_id, row in zip(MERGED, on_default.itertuples()):
        assert row.fractionRPVs_estimatedTauR != pytest.approx(oracle.loc[cluster_id, "fractionRPVs_estimatedTauR"])


@pytest.mark.parametrize("variant", ["legacy", "unknown"])
def test_a_merge_in_phy_is_measured_on_the_run_grid_or_withheld(variant, legacy_run, tmp_path, open_phy):
    ks, _, oracle = legacy_run
    ks = dsb.copy_dataset(ks, tmp_path / "ks")
    edit_run(ks, variant)
    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    assert [merge_and_wait(controller, list(pair)) for pair in MERGES] == MERGED
    live = controller.phy_bcreason.live
    info = live.live_info
    table = live.live_metrics.set_index("phy_clusterID").loc[MERGED]
    shown = rows(controller)
    assert {shown[c]["bc_source"] for c in MERGED} == {FROM_LIVE}
    # every metric as Bombcell computes it for these spikes on the run's 0.5-5 ms grid; withheld ones NaN
    assert_same_metrics(table, oracle.loc[MERGED], info.not_live)
    select(controller, [MERGED[0]])
    content = dock(gui).content
    assert "parameter tauR_values" not in content.source and "1-10 ms" not in content.source  # not a grid it never used
    if variant == "legacy":
        assert info.not_live == {}
        assert f"Refractory periods tested: {FROM_PARAMS} (Bombcell's legacy refractory test" in content.source
        assert [shown[c]["bc_label"] for c in MERGED] == oracle.loc[MERGED, "bc_unitType"].tolist()
        assert rpv_line(content)[1] == f"{oracle.loc[MERGED[0], 'fractionRPVs_estimatedTauR']:.4g}"
    else:
        assert set(info.not_live) == set(RPV_METRICS)
        assert table[list(RPV_METRICS)].isna().all().all()
        assert (f"Not recomputed: fractionRPVs_estimatedTauR, estimatedTauR, RPV_window_index ({UNKNOWN}: its "
                "parameter file has no usable tauR_valuesMin/Max/Step and it has no per-tauR table with a column "
                "per tauR; not recomputed on a grid the run may not have used)") in content.source
        assert "Refractory periods tested" not in content.source
        assert UNKNOWN in rpv_line(content)[5]  # on the rule's own row
        # the labels are Bombcell's on the metrics there are
        without = oracle.loc[MERGED].reset_index().assign(**dict.fromkeys(RPV_METRICS, np.nan))
        assert [shown[c]["bc_label"] for c in MERGED] == list(bombcell_labels(without, live.results.params))


@pytest.mark.parametrize("variant", ["no-scalars", "unknown", "disagree", "unknown-chunks"])
def test_live_rows_tell_the_grid_from_the_run_files_or_withhold(variant, legacy_run, tmp_path):
    """`phy-bcreason explain --live`'s path, on the folder merged after Bombcell ran."""
    _, merged, oracle = legacy_run
    ks = dsb.copy_dataset(merged, tmp_path / "ks")
    edit_run(ks, variant)
    results = with_live_rows(load_results(ks / "bombcell", ks_dir=ks), ks)
    table = results.metrics.set_index("phy_clusterID").loc[MERGED]
    notes = " ".join(results.notes)
    if variant == "no-scalars":
        assert f"refractory periods tested: {GRID}: the columns of the run's per-tauR table (its parameter file " \
               "has no usable tauR_valuesMin/Max/Step)" in notes
        assert_same_metrics(table, oracle.loc[MERGED], {})
        return
    withheld = set(RPV_METRICS) | (set(KEPT_TIME_METRICS) if variant == "unknown-chunks" else set())
    assert table[sorted(withheld)].isna().all().all()
    assert "refractory periods tested" not in notes and UNKNOWN in notes
    if variant == "disagree":
        assert "its tauR_valuesMin/Max/Step give 0.5-4 ms in 0.5 ms steps, 8 values, the columns of its per-tauR " \
               f"table {GRID}" in notes
    if variant == "unknown-chunks":
        assert "which chooses the time chunks kept" in notes
    else:  # the rest is Bombcell's
        assert_same_metrics(table, oracle.loc[MERGED], dict.fromkeys(withheld))


def test_a_run_with_rpv_method_whose_estimated_tauR_are_off_the_rebuilt_grid_is_withheld(ks_dataset, tmp_path):
    """A run with rpv_method and a tauR_values of its own (1.1-5.1 ms): its parameter file drops the array, and
    its units' estimatedTauR lie off Bombcell's default grid, which the live metrics would sweep instead."""
    ks = dsb.copy_dataset(ks_dataset, tmp_path / "ks")
    dsb.rerun_bombcell(ks, {"tauR_values": np.arange(11, 52, 5) / 10000}, "bombcell")
    spike_clusters = np.load(ks / "spike_clusters.npy")
    flat = spike_clusters.ravel().copy()
    flat[np.isin(flat, MERGES[0])] = MERGED[0]
    np.save(ks / "spike_clusters.npy", flat.reshape(spike_clusters.shape))
    results = with_live_rows(load_results(ks / "bombcell", ks_dir=ks), ks)
    row = results.metrics.set_index("phy_clusterID").loc[MERGED[0]]
    assert row[[*RPV_METRICS, "RPV_status"]].isna().all() and np.isfinite(row["presenceRatio"])
    notes = " ".join(results.notes)
    assert f"{UNKNOWN}: its parameter file does not store tauR_values, and 26 of its units' estimatedTauR (" in notes
    assert " ms) are not on 1-10 ms in 0.25 ms steps, 37 values, Bombcell's default; not recomputed" in notes
    assert "rebuilt parameter tauR_values" not in notes
