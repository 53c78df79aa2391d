"""Odd, damaged or mismatched Bombcell results: the CLI and the plugin's loader say what is wrong (one line
naming the file) or note what they worked around, never crash, and never write into the folder.

Each case edits a private copy of a real Bombcell run (27 clusters, ids 0..26) with pandas, then runs
``python -m phy_bcreason explain KS --json`` as a user would and ``LiveReasons.load(KS)`` as Phy's plugin does.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.gui.session import NO_ROW_LABEL, LiveReasons
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from phy_bcreason.io.find import load_results
from phy_bcreason.io.results import BombcellResultsError

# ----------------------------------------------------------------------------------------------------------
# helpers


def metrics_path(ks: Path) -> Path:
    return ks / "bombcell" / METRICS_FILE


def params_path(ks: Path) -> Path:
    return ks / "bombcell" / PARAMS_FILE


def edit_metrics(ks: Path, change) -> pd.DataFrame:
    """Read the metrics table, apply ``change`` (returns the new table), write it back."""
    table = change(pd.read_parquet(metrics_path(ks)))
    table.to_parquet(metrics_path(ks))
    return table


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(ks: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phy_bcreason", "explain", str(ks), "--json"],
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


def note_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("note: ")]


def expect_error(ks: Path, file_name: str, *fragments: str) -> str:
    """CLI: exit 2, nothing on stdout, one stderr line naming the file; plugin: error set, nothing raised;
    the folder untouched. Returns the CLI's line."""
    before = snapshot(ks)
    result = run_cli(ks)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phy-bcreason: "), result.stderr
    assert file_name in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

    live = LiveReasons.load(ks)
    assert live.explanation is None
    assert "\n" not in live.error and file_name in live.error
    for fragment in fragments:
        assert fragment in live.error
    assert live.status_line() == f"phy-bcreason: {live.error}"
    assert live.column_values(0)["bc_label"] == NO_ROW_LABEL
    assert snapshot(ks) == before
    return lines[0]


def expect_usable(ks: Path, *note_fragments: str) -> tuple[list[dict], LiveReasons]:
    """CLI: exit 0, JSON on stdout, a `note:` line per fragment on stderr; plugin: explanation with the same
    notes, no error; the folder untouched."""
    before = snapshot(ks)
    result = run_cli(ks)
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)
    notes = note_lines(result.stderr)
    for fragment in note_fragments:
        assert any(fragment in line for line in notes), (fragment, result.stderr)

    live = LiveReasons.load(ks)
    assert live.error is None and live.explanation is not None
    for fragment in note_fragments:
        assert any(fragment in note for note in live.explanation.notes), (fragment, live.explanation.notes)
    assert all("\n" not in note for note in live.explanation.notes)
    assert snapshot(ks) == before
    return units, live


def drop_saved_labels(ks: Path) -> None:
    """No label saved by Bombcell: none in the metrics table, no cluster_bc_unitType.tsv."""
    edit_metrics(ks, lambda m: m.drop(columns=["bc_unitType"]))
    (ks / "cluster_bc_unitType.tsv").unlink()


def bombcell_labels(ks: Path) -> np.ndarray:
    """Bombcell's own classifier on the folder's (edited) tables."""
    metrics = pd.read_parquet(metrics_path(ks))
    params = pd.read_parquet(params_path(ks)).iloc[0].to_dict()
    with contextlib.redirect_stdout(io.StringIO()):
        from bombcell.quality_metrics import get_quality_unit_type

        _, labels = get_quality_unit_type(params, metrics.copy())
    return np.asarray(labels, dtype=object)


# ----------------------------------------------------------------------------------------------------------
# the unmodified run


def test_real_results_match_their_kilosort_folder_without_notes(ks_dataset_copy):
    """Bombcell's nSpikes is each cluster's spike count in spike_clusters.npy (here no duplicate spikes were
    removed), and every cluster has its row: no note, no error."""
    ks = ks_dataset_copy
    metrics = pd.read_parquet(metrics_path(ks))
    ids, counts = np.unique(np.load(ks / "spike_clusters.npy", mmap_mode="r"), return_counts=True)
    assert list(ids) == list(metrics["phy_clusterID"])
    assert np.all(metrics["nSpikes"].to_numpy() <= counts)
    units, live = expect_usable(ks)
    assert live.explanation.notes == []
    assert [u["label"] for u in units] == list(metrics["bc_unitType"])


# ----------------------------------------------------------------------------------------------------------
# 1. no rows


def test_metrics_table_with_no_rows_is_an_error(ks_dataset_copy):
    edit_metrics(ks_dataset_copy, lambda m: m.iloc[:0])
    expect_error(ks_dataset_copy, METRICS_FILE, "the metrics table has no rows")


# ----------------------------------------------------------------------------------------------------------
# 2. missing metric columns


def test_missing_metric_columns_are_noted_and_shown_as_missing(ks_dataset_copy):
    ks = ks_dataset_copy
    edit_metrics(ks, lambda m: m.drop(columns=["mainPeakToTroughRatio", "RPV_status"]))
    units, live = expect_usable(ks, "no column for metric(s) mainPeakToTroughRatio, RPV_status")
    assert len(units) == 27
    assert "mainPeakToTroughRatio" in live.explanation.missing_metrics
    statuses = {c["status"] for c in live.explanation.comparisons(0) if c["metric"] == "mainPeakToTroughRatio"}
    assert statuses == {"missing"}


# ----------------------------------------------------------------------------------------------------------
# 3. duplicate ids


def test_duplicate_cluster_ids_are_an_error_naming_them(ks_dataset_copy):
    def duplicate(m):
        m.loc[5, "phy_clusterID"] = 3
        m.loc[9, "phy_clusterID"] = 7
        return m

    edit_metrics(ks_dataset_copy, duplicate)
    expect_error(ks_dataset_copy, METRICS_FILE, "duplicate ids (3, 7)")


# ----------------------------------------------------------------------------------------------------------
# 4. ids Phy does not have / Phy clusters without a row


def test_clusters_merged_after_bombcell_are_noted_both_ways(ks_dataset_copy):
    """Clusters 5 and 6 merged into 27 in Phy after Bombcell ran: rows 5, 6 have no cluster, 27 no row."""
    ks = ks_dataset_copy
    path = ks / "spike_clusters.npy"
    spikes = np.load(path)
    spikes[np.isin(spikes, [5, 6])] = 27
    np.save(path, spikes)
    units, live = expect_usable(ks, "2 result rows have cluster ids not in spike_clusters.npy (5, 6)",
                                "1 cluster in spike_clusters.npy has no Bombcell row (27)")
    assert [u["cluster_id"] for u in units] == list(range(27))  # the rows are still explained
    assert live.column_values(27)["bc_label"] == NO_ROW_LABEL
    assert live.column_values(4)["bc_label"] != NO_ROW_LABEL


def test_extra_rows_and_missing_rows_are_noted(ks_dataset_copy):
    def change(m):
        extra = m.iloc[[0, 1]].assign(phy_clusterID=[40, 41])
        empty = m.iloc[[2]].assign(phy_clusterID=42, nSpikes=0.0)  # a template Bombcell saw without spikes
        return pd.concat([m[~m["phy_clusterID"].isin([12])], extra, empty], ignore_index=True)

    edit_metrics(ks_dataset_copy, change)
    units, live = expect_usable(ks_dataset_copy, "2 result rows have cluster ids not in spike_clusters.npy (40, 41)",
                                "1 cluster in spike_clusters.npy has no Bombcell row (12)")
    assert 12 not in [u["cluster_id"] for u in units] and 40 in [u["cluster_id"] for u in units]
    assert not live.has_row(12)


# ----------------------------------------------------------------------------------------------------------
# 5. results of another sorting


def test_results_of_another_sorting_are_refused(ks_dataset_copy):
    """Same ids, but the spike counts belong to other clusters (another sorting's results)."""
    edit_metrics(ks_dataset_copy, lambda m: m.assign(nSpikes=m["nSpikes"].to_numpy()[::-1]))
    line = expect_error(ks_dataset_copy, METRICS_FILE, "these results do not match this Kilosort folder",
                        "spike_clusters.npy")
    assert "of 27 clusters have an nSpikes above, or more than 10% below, their spike count" in line


def test_explicit_bombcell_dir_is_checked_against_the_kilosort_folder_given(ks_dataset_copy, tmp_path):
    """`--bombcell-dir` style: results of folder A opened for folder B whose clusters are relabelled."""
    other = tmp_path / "other ks"
    shutil.copytree(ks_dataset_copy, other, ignore=shutil.ignore_patterns("bombcell"))
    spikes = np.load(other / "spike_clusters.npy")
    np.save(other / "spike_clusters.npy", (26 - spikes).astype(spikes.dtype))
    with pytest.raises(BombcellResultsError, match="do not match this Kilosort folder"):
        explain_folder(other, ks_dataset_copy / "bombcell", check=False)
    live = LiveReasons.load(other, ks_dataset_copy / "bombcell")
    assert live.explanation is None and "do not match this Kilosort folder" in live.error
    assert load_results(ks_dataset_copy / "bombcell").notes == []  # against its own folder it is fine


def test_fewer_spikes_after_duplicate_removal_are_accepted(ks_dataset_copy):
    """Bombcell counts spikes after removing duplicates: a few percent fewer is normal. More spikes than
    the cluster has is impossible for the same sorting: noted where it is a minority."""
    def change(m):
        m["nSpikes"] = np.floor(m["nSpikes"] * 0.95)
        m.loc[3, "nSpikes"] = m.loc[3, "nSpikes"] * 2
        return m

    edit_metrics(ks_dataset_copy, change)
    expect_usable(ks_dataset_copy, "1 cluster has more Bombcell nSpikes than spikes in spike_clusters.npy (3)")


# ----------------------------------------------------------------------------------------------------------
# 6. MATLAB-written results


def test_matlab_results_take_ids_from_phy_cluster_id(ks_dataset_copy):
    """MATLAB writes the 1-based clusterID beside the 0-based phy_clusterID, and rows only for non-empty
    clusters."""
    ks = ks_dataset_copy
    table = edit_metrics(ks, lambda m: m.assign(clusterID=m["phy_clusterID"] + 1).drop(index=8))
    units, live = expect_usable(ks, "1 cluster in spike_clusters.npy has no Bombcell row (8)")
    assert [u["cluster_id"] for u in units] == list(table["phy_clusterID"])
    assert [u["label"] for u in units] == list(table["bc_unitType"])
    assert list(live.explanation.cluster_ids) == list(table["phy_clusterID"])


def test_legacy_matlab_metric_names_are_reported_missing(ks_dataset_copy):
    """Bombcell 0.94 maps no legacy metric names (fractionRPVs, percentageSpikesMissing...), so neither do we."""
    edit_metrics(ks_dataset_copy, lambda m: m.rename(columns={
        "fractionRPVs_estimatedTauR": "fractionRPVs", "percentageSpikesMissing_gaussian": "percentageSpikesMissing"}))
    _, live = expect_usable(ks_dataset_copy,
                            "no column for metric(s) percentageSpikesMissing_gaussian, fractionRPVs_estimatedTauR")
    assert {"percentageSpikesMissing_gaussian", "fractionRPVs_estimatedTauR"} <= set(live.explanation.missing_metrics)


# ----------------------------------------------------------------------------------------------------------
# 7. Bombcell < 0.40 parameters


def test_snake_case_parameters_of_old_bombcell_are_an_error(ks_dataset_copy):
    """Bombcell 0.31 (the last before 0.40) saved its parameter dict as it was: snake_case names."""
    old = {"max_n_peaks": 2, "max_n_troughs": 1, "min_wave_duration": 100, "max_wave_duration": 800,
           "max_wave_baseline_fraction": 0.3, "max_RPV": 0.1, "max_perc_spikes_missing": 20,
           "min_num_spikes_total": 300, "min_presence_ratio": 0.7, "extract_raw_waveforms": False,
           "split_good_and_mua_non_somatic": False, "ephys_kilosort_path": str(ks_dataset_copy)}
    pd.DataFrame([old]).to_parquet(params_path(ks_dataset_copy))
    expect_error(ks_dataset_copy, PARAMS_FILE, "parameters written by Bombcell < 0.40", "max_n_peaks",
                 "re-run Bombcell 0.93 or later")


# ----------------------------------------------------------------------------------------------------------
# 8. unreadable files


def test_truncated_metrics_parquet_is_an_error(ks_dataset_copy):
    path = metrics_path(ks_dataset_copy)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    expect_error(ks_dataset_copy, METRICS_FILE, "cannot read as parquet")


def test_foreign_bytes_in_parameter_parquet_is_an_error(ks_dataset_copy):
    params_path(ks_dataset_copy).write_bytes(b"\x80\x04\x95 not a parquet file at all")
    expect_error(ks_dataset_copy, PARAMS_FILE, "cannot read as parquet")


def test_missing_parameter_file_without_saved_labels_is_an_error(ks_dataset_copy):
    params_path(ks_dataset_copy).unlink()
    drop_saved_labels(ks_dataset_copy)
    expect_error(ks_dataset_copy, PARAMS_FILE, "file not found", "no labels saved by Bombcell")


def test_unreadable_spike_clusters_is_a_note(ks_dataset_copy):
    (ks_dataset_copy / "spike_clusters.npy").write_bytes(b"garbage")
    expect_usable(ks_dataset_copy, "spike_clusters.npy: cannot read", "cluster ids not checked against it")


# ----------------------------------------------------------------------------------------------------------
# 9. NaN and inf


def test_nan_and_inf_metrics_give_bombcells_labels(ks_dataset_copy):
    ks = ks_dataset_copy
    bad = {"nPeaks": (0, np.nan), "fractionRPVs_estimatedTauR": (1, np.inf),
           "waveformDuration_peakTrough": (2, -np.inf), "spatialDecaySlope": (3, np.nan),
           "presenceRatio": (4, np.inf), "mainPeakToTroughRatio": (5, np.inf), "peak1ToPeak2Ratio": (6, np.nan),
           "troughToPeak2Ratio": (7, -np.inf), "percentageSpikesMissing_gaussian": (9, np.nan),
           "scndPeakToTroughRatio": (10, np.inf), "waveformBaselineFlatness": (11, -np.inf),
           "nTroughs": (13, np.inf), "nSpikes": (15, np.nan), "RPV_status": (16, np.nan)}

    def change(m):
        for column, (row, value) in bad.items():
            m[column] = m[column].astype(float)
            m.loc[row, column] = value
        return m

    saved = list(pd.read_parquet(metrics_path(ks))["bc_unitType"].fillna(""))
    edit_metrics(ks, change)
    expected = bombcell_labels(ks)
    units, live = expect_usable(ks)
    # The rules give Bombcell's labels for the edited table; the labels shown are the ones Bombcell saved, and
    # the units where the two differ are flagged.
    assert [u["rules_label"] for u in units] == list(live.explanation.rule_labels) == list(expected)
    assert [u["label"] for u in units] == list(live.explanation.labels) == saved
    assert [u["flagged"] for u in units] == [ours != theirs for ours, theirs in zip(expected, saved)]
    assert sum(u["flagged"] for u in units) >= 3
    assert not any("Bombcell's classifier disagrees" in note for note in live.explanation.notes)


# ----------------------------------------------------------------------------------------------------------
# 10. spaces and non-ASCII characters in paths


def test_paths_with_spaces_and_non_ascii_characters(ks_dataset_copy, tmp_path):
    ks = tmp_path / "données ks 1"
    shutil.copytree(ks_dataset_copy, ks)
    units, live = expect_usable(ks)
    assert [u["label"] for u in units] == list(pd.read_parquet(metrics_path(ks))["bc_unitType"])
    assert str(ks) in live.status_line()
    params_path(ks).unlink()
    drop_saved_labels(ks)
    line = expect_error(ks, PARAMS_FILE)
    assert str(ks) in line
