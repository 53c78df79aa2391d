"""The realistic test data: Bombcell labels every unit as designed, Phy opens the folders."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Phy / Qt is imported

from tests import dataset_builder as dsb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LABEL_COLUMN = "bc_unitType"  # Bombcell's label column in templates._bc_qMetrics.parquet


def _labels(ks_dir, save_path=None) -> pd.Series:
    qm = dsb.load_bc_metrics(ks_dir, save_path)
    return pd.Series(qm[LABEL_COLUMN].to_numpy(), index=qm["phy_clusterID"].astype(int).to_numpy())


def _explain(ks_dir, save_path=None) -> str:
    with pd.option_context("display.width", 250, "display.max_colwidth", 150, "display.max_rows", None):
        return dsb.label_table(ks_dir, save_path).to_string(index=False)


# ---------------------------------------------------------------------------------------
# Default dataset
# ---------------------------------------------------------------------------------------


def test_default_dataset_files(ks_dataset):
    for name in ("spike_times.npy", "spike_templates.npy", "spike_clusters.npy", "amplitudes.npy",
                 "templates.npy", "channel_map.npy", "channel_positions.npy", "whitening_mat_inv.npy",
                 "pc_features.npy", "pc_feature_ind.npy", "params.py", "cluster_bc_unitType.tsv",
                 "bombcell/templates._bc_qMetrics.parquet"):
        assert (ks_dataset / name).is_file(), name
    n_units = len(dsb.UNIT_SPECS)
    templates = np.load(ks_dataset / "templates.npy")
    assert templates.shape == (n_units, 61, dsb.N_CHANNELS)  # dense, Kilosort 4 length
    n_spikes = np.load(ks_dataset / "spike_times.npy").size
    assert np.load(ks_dataset / "pc_features.npy").shape == (n_spikes, dsb.N_PCS, dsb.N_CHANNELS)
    assert np.load(ks_dataset / "pc_feature_ind.npy").shape == (n_units, dsb.N_CHANNELS)
    amplitudes = np.load(ks_dataset / "amplitudes.npy").ravel()
    assert amplitudes.size == n_spikes and np.all(amplitudes > 0)
    np.testing.assert_array_equal(np.load(ks_dataset / "whitening_mat_inv.npy"), np.eye(dsb.N_CHANNELS))
    assert not (ks_dataset / "recording.bin").exists()


def test_default_dataset_has_every_label(ks_dataset):
    labels = _labels(ks_dataset)
    counts = Counter(labels)
    for label in dsb.LABELS:
        assert counts[label] >= 3, f"{label}: {counts}\n{_explain(ks_dataset)}"


def test_default_dataset_labels_match_design(ks_dataset):
    labels = _labels(ks_dataset)
    expected = pd.Series(dsb.expected_labels())
    assert list(labels.index) == list(expected.index)
    mismatched = labels[labels != expected]
    assert mismatched.empty, f"units labelled against their design:\n{_explain(ks_dataset)}"


def test_default_dataset_rules_fire(ks_dataset):
    """Most of Bombcell's rules fail somewhere, on the units designed for them."""
    param = dsb.load_bc_params(ks_dataset)
    qm = dsb.load_bc_metrics(ks_dataset)
    fired = set()
    for cid, spec in enumerate(dsb.UNIT_SPECS):
        failing = " ".join(dsb.failing_comparisons(qm.iloc[cid], param))
        for metric in spec.fails:
            if metric == "rawAmplitude":
                continue  # only with raw data
            assert metric in failing, f"{spec.name}: {metric} should fail\n{_explain(ks_dataset)}"
            fired.add(metric)
    assert fired >= {
        "nPeaks", "nTroughs", "waveformDuration_peakTrough", "waveformBaselineFlatness",
        "scndPeakToTroughRatio", "spatialDecaySlope", "mainPeakToTroughRatio", "troughToPeak2Ratio",
        "mainPeak_before_width", "mainTrough_width", "peak1ToPeak2Ratio",
        "percentageSpikesMissing_gaussian", "nSpikes", "fractionRPVs_estimatedTauR", "presenceRatio",
    }


def test_default_dataset_opens_in_phylib(ks_dataset):
    from phylib.io.model import load_model

    model = load_model(ks_dataset / "params.py")
    try:
        qm = dsb.load_bc_metrics(ks_dataset)
        cluster_ids = np.unique(model.spike_clusters)
        assert len(cluster_ids) == len(qm) == len(dsb.UNIT_SPECS)
        np.testing.assert_array_equal(cluster_ids, qm["phy_clusterID"].astype(int).to_numpy())
        assert model.n_channels == dsb.N_CHANNELS
        # Bombcell's TSV is loaded by phy as a cluster column, with the parquet's labels
        bc_type = model.metadata["bc_unitType"]
        assert [bc_type[c] for c in cluster_ids] == list(qm["bc_unitType"])
    finally:
        model.close()


# ---------------------------------------------------------------------------------------
# Raw dataset
# ---------------------------------------------------------------------------------------


def test_raw_dataset(ks_dataset_raw):
    raw_file = dsb.raw_file_of(ks_dataset_raw)
    assert raw_file is not None and raw_file.name == "recording.bin"
    n_samples = raw_file.stat().st_size // (2 * dsb.N_CHANNELS)
    assert n_samples == int(round(dsb.DEFAULT_DURATION_S * dsb.FS))

    param = dsb.load_bc_params(ks_dataset_raw)
    assert dsb._truthy(param["extractRaw"])
    qm = dsb.load_bc_metrics(ks_dataset_raw)
    raw_amp = qm["rawAmplitude"].to_numpy(dtype=float)
    assert np.isfinite(raw_amp).mean() >= 0.9, raw_amp
    assert np.isfinite(qm["signalToNoiseRatio"].to_numpy(dtype=float)).mean() >= 0.9

    labels = _labels(ks_dataset_raw)
    expected = pd.Series(dsb.expected_labels(raw=True))
    assert labels[labels != expected].empty, _explain(ks_dataset_raw)
    small = [i for i, s in enumerate(dsb.UNIT_SPECS) if s.name == "low_amplitude"][0]
    assert raw_amp[small] < float(param["minAmplitude"]) <= np.nanmin(np.delete(raw_amp, small))

    from phylib.io.model import load_model

    model = load_model(ks_dataset_raw / "params.py")
    try:
        assert model.traces is not None and model.traces.shape == (n_samples, dsb.N_CHANNELS)
    finally:
        model.close()


def test_raw_dataset_same_sorting_as_default(ks_dataset, ks_dataset_raw):
    for name in ("spike_times.npy", "spike_clusters.npy", "templates.npy", "amplitudes.npy"):
        np.testing.assert_array_equal(np.load(ks_dataset / name), np.load(ks_dataset_raw / name))


# ---------------------------------------------------------------------------------------
# Phy
# ---------------------------------------------------------------------------------------


def test_phy_template_gui_opens_dataset(ks_dataset_copy, tmp_path):
    from tests.conftest import plain_phy

    with plain_phy(ks_dataset_copy, tmp_path / "phy_config") as (controller, app):
        cluster_ids = list(controller.supervisor.clustering.cluster_ids)
        assert cluster_ids == list(range(len(dsb.UNIT_SPECS)))
        assert "bc_unitType" in controller.supervisor.columns
        controller.supervisor.select([0])
        app.processEvents()
        assert controller.supervisor.selected == [0]


# ---------------------------------------------------------------------------------------
# Parameter-set variants
# ---------------------------------------------------------------------------------------


def test_bombcell_rerun_variant(ks_dataset, bombcell_rerun):
    tsv = (ks_dataset / "cluster_bc_unitType.tsv").read_bytes()
    overrides = {"splitGoodAndMua_NonSomatic": True}
    save_path = bombcell_rerun(ks_dataset, overrides, "bc_split_nonsoma")
    assert save_path == ks_dataset / "bc_split_nonsoma"
    assert bombcell_rerun(ks_dataset, overrides, "bc_split_nonsoma") == save_path  # cached
    with pytest.raises(ValueError):
        bombcell_rerun(ks_dataset, {"minNumSpikes": 10}, "bc_split_nonsoma")

    assert dsb._truthy(dsb.load_bc_params(ks_dataset, save_path)["splitGoodAndMua_NonSomatic"])
    labels = _labels(ks_dataset, save_path)
    assert "NON-SOMA GOOD" in set(labels)
    assert "NON-SOMA" not in set(labels)
    # the default run's files are untouched
    assert (ks_dataset / "cluster_bc_unitType.tsv").read_bytes() == tsv
    assert "NON-SOMA" in set(_labels(ks_dataset))


def test_bombcell_rerun_threshold_moves_labels(ks_dataset, bombcell_rerun):
    save_path = bombcell_rerun(ks_dataset, {"maxRPVviolations": 0.5}, "bc_rpv_050")
    before, after = _labels(ks_dataset), _labels(ks_dataset, save_path)
    names = {i: s.name for i, s in enumerate(dsb.UNIT_SPECS)}
    changed = {names[i]: (before[i], after[i]) for i in before.index if before[i] != after[i]}
    # the merged clusters only failed the refractory period test
    assert changed == {"merged_pair": ("MUA", "GOOD"), "contaminated": ("MUA", "GOOD")}, changed


# ---------------------------------------------------------------------------------------
# The builder itself
# ---------------------------------------------------------------------------------------


def test_design_is_deterministic():
    a, b = dsb._design(3, 60.0), dsb._design(3, 60.0)
    np.testing.assert_array_equal(a["templates"], b["templates"])
    for x, y in zip(a["trains"], b["trains"]):
        np.testing.assert_array_equal(x, y)
    c = dsb._design(4, 60.0)
    assert not all(np.array_equal(x, y) for x, y in zip(a["trains"], c["trains"]))


def test_make_kilosort_folder_is_deterministic(tmp_path):
    a = dsb.make_kilosort_folder(tmp_path / "a", seed=5, duration_s=20.0)
    b = dsb.make_kilosort_folder(tmp_path / "b", seed=5, duration_s=20.0)
    for f in sorted(a.glob("*.npy")):
        np.testing.assert_array_equal(np.load(f), np.load(b / f.name), err_msg=f.name)
    with pytest.raises(FileExistsError):
        dsb.make_kilosort_folder(a, seed=5, duration_s=20.0)


def test_command_line_help():
    out = subprocess.run([sys.executable, "-m", "tests.dataset_builder", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    assert "--raw" in out.stdout and "--seed" in out.stdout
