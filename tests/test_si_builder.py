"""The SpikeInterface-Bombcell datasets (tests/si_builder.py) are what they claim to be."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests import dataset_builder as dsb
from tests import si_builder as sib

N_UNITS = len(dsb.UNIT_SPECS)

# every (variant, layout) pair: the first build of a layout takes ~15 s, the others < 1 s
CASES = [(v, lay) for lay in sib.LAYOUTS for v in sib.VARIANTS]
CASE_IDS = [f"{v}-{lay}" for v, lay in CASES]


def _names(ds) -> dict[int, str]:
    return {int(k): v for k, v in json.loads((ds.out_dir / "design.json").read_text())["units"].items()}


def _labels_by_name(ds) -> dict[str, str]:
    wide = sib.load_wide(ds.results_dir)
    names = _names(ds)
    return {names[int(u)]: lab for u, lab in wide["label"].items()}


@pytest.mark.parametrize(("variant", "layout"), CASES, ids=CASE_IDS)
def test_files(si_dataset, variant, layout):
    ds = si_dataset(variant, layout)
    assert ds.layout == layout and ds.variant == variant
    for name in ("labeling_results_wide.csv", "labeling_results_narrow.csv", "thresholds.json",
                 "bombcell_config.json"):
        assert (ds.results_dir / name).is_file(), name
    for name in ("params.py", "spike_times.npy", "spike_clusters.npy", "spike_templates.npy", "templates.npy",
                 "amplitudes.npy", "channel_map.npy", "channel_positions.npy", "whitening_mat_inv.npy",
                 "cluster_group.tsv"):
        assert (ds.phy_dir / name).is_file(), name
    if layout == "export":
        assert ds.phy_dir == ds.out_dir / "phy" and ds.results_dir == ds.phy_dir / "bombcell"
        assert (ds.phy_dir / "cluster_si_unit_ids.tsv").is_file()
        assert (ds.phy_dir / "cluster_amplitude_median.tsv").is_file()  # export_to_phy's metric columns
    else:
        assert ds.phy_dir == ds.out_dir / "sorter_output" and ds.results_dir == ds.out_dir / "bombcell"
        assert not (ds.phy_dir / "cluster_si_unit_ids.tsv").exists()
        assert not list(ds.phy_dir.glob("cluster_amplitude_median.tsv"))
    assert ds.thresholds == json.loads((ds.results_dir / "thresholds.json").read_text())
    config = json.loads((ds.results_dir / "bombcell_config.json").read_text())
    assert ds.split == config["split_non_somatic"] == sib.VARIANTS[variant]["params"]["split_non_somatic"]
    expected = sib.VARIANTS[variant]["thresholds"] or sib.default_thresholds()
    assert ds.thresholds == json.loads(json.dumps(expected))
    narrow = pd.read_csv(ds.results_dir / "labeling_results_narrow.csv")
    assert list(narrow.columns) == ["unit_id", "label", "metric_name", "value", "threshold_min", "threshold_max",
                                    "passed"]


@pytest.mark.parametrize(("variant", "layout"), CASES, ids=CASE_IDS)
def test_labels_are_spikeinterface_bombcell_labels(si_dataset, variant, layout):
    from spikeinterface.curation import bombcell_label_units

    ds = si_dataset(variant, layout)
    wide = sib.load_wide(ds.results_dir)
    assert len(wide) == N_UNITS and wide.index.is_unique
    assert wide.index.dtype.kind == "i"
    assert wide.columns[0] == "label"
    config = json.loads((ds.results_dir / "bombcell_config.json").read_text())
    relabelled = bombcell_label_units(
        external_metrics=wide.drop(columns="label"),
        thresholds=json.loads((ds.results_dir / "thresholds.json").read_text()),
        split_non_somatic=config["split_non_somatic"],
    )
    assert relabelled["bombcell_label"].reindex(wide.index).tolist() == wide["label"].tolist()


def _counts(ds) -> dict[str, int]:
    return sib.load_wide(ds.results_dir)["label"].value_counts().to_dict()


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_default_has_every_label_twice(si_dataset, layout):
    counts = _counts(si_dataset("default", layout))
    assert set(counts) == {"good", "mua", "noise", "non_soma"}
    assert min(counts.values()) >= 2, counts


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_split_has_non_soma_good_and_mua(si_dataset, layout):
    ds = si_dataset("split", layout)
    counts = _counts(ds)
    assert set(counts) == {"good", "mua", "noise", "non_soma_good", "non_soma_mua"}
    assert counts["non_soma_good"] >= 2 and counts["non_soma_mua"] >= 1, counts
    assert _labels_by_name(ds)[sib.PRESENCE_CUT_UNIT] == "non_soma_mua"
    # split only renames the non-somatic units
    default = _labels_by_name(si_dataset("default", layout))
    for name, label in _labels_by_name(ds).items():
        assert label == default[name] or (default[name] == "non_soma" and label.startswith("non_soma_"))


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_custom_thresholds_move_labels(si_dataset, layout):
    default = _labels_by_name(si_dataset("default", layout))
    ds = si_dataset("custom", layout)
    custom = _labels_by_name(ds)
    wide = sib.load_wide(ds.results_dir)
    assert "rp_contamination" in wide.columns and "sliding_rp_violation" not in wide.columns
    assert "rp_contamination" in ds.thresholds["mua"] and "sliding_rp_violation" not in ds.thresholds["mua"]
    assert ds.thresholds["mua"]["amplitude_median"]["abs"] is True
    assert "repolarization_slope" in ds.thresholds["non-somatic"]
    assert default["good_a"] == "good" and custom["good_a"] == "mua"  # |amplitude_median| < 100
    assert default["good_b"] == "good" and custom["good_b"] == "noise"  # duration > 0.7 ms
    assert default["narrow_peak1_b"] == "non_soma" and custom["narrow_peak1_b"] == "noise"  # duration < 0.18 ms
    assert default["bad_baseline"] == "good" and custom["bad_baseline"] == "non_soma"  # standalone rule
    assert set(custom.values()) == {"good", "mua", "noise", "non_soma"}


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_no_nonsomatic(si_dataset, layout):
    ds = si_dataset("no_nonsomatic", layout)
    assert ds.thresholds["non-somatic"] == {}
    counts = _counts(ds)
    assert set(counts) == {"good", "mua", "noise"} and min(counts.values()) >= 2, counts


def test_metrics_have_nans(si_dataset):
    wide = sib.load_wide(si_dataset("default").results_dir)
    names = _names(si_dataset("default"))
    nan_rpv = {names[u] for u in wide.index[wide["sliding_rp_violation"].isna()]}
    assert {"low_rate", "few_spikes"} <= nan_rpv
    assert wide.loc[wide["sliding_rp_violation"].isna(), "label"].isin(["mua", "noise"]).all()
    assert wide["peak_before_width"].isna().any()
    assert (wide["amplitude_median"] < 0).any()  # signed: only "abs" makes the threshold pass


@pytest.mark.parametrize(("variant", "layout"), [c for c in CASES if c[1] == "export"],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if c[1] == "export"])
def test_export_cluster_ids_map_to_si_unit_ids(si_dataset, variant, layout):
    ds = si_dataset(variant, layout)
    table = pd.read_csv(ds.phy_dir / "cluster_si_unit_ids.tsv", sep="\t")
    assert list(table.columns) == ["cluster_id", "si_unit_id"]
    clusters = np.unique(np.load(ds.phy_dir / "spike_clusters.npy"))
    assert sorted(table["cluster_id"]) == clusters.tolist() == list(range(N_UNITS))
    wide = sib.load_wide(ds.results_dir)
    assert sorted(table["si_unit_id"]) == sorted(wide.index)
    assert (table["si_unit_id"] != table["cluster_id"]).all()
    assert (table["si_unit_id"] == table["cluster_id"] + sib.EXPORT_UNIT_ID_OFFSET).all()
    # the per-metric columns export_to_phy wrote are the wide CSV's values, by cluster id
    snr = pd.read_csv(ds.phy_dir / "cluster_snr.tsv", sep="\t").set_index("cluster_id")["snr"]
    by_unit = table.set_index("cluster_id")["si_unit_id"]
    assert np.allclose(snr.values, wide.loc[by_unit.loc[snr.index].values, "snr"].values)


@pytest.mark.parametrize("variant", list(sib.VARIANTS))
def test_sorter_output_cluster_ids_are_unit_ids(si_dataset, variant):
    ds = si_dataset(variant, "sorter_output")
    clusters = np.unique(np.load(ds.phy_dir / "spike_clusters.npy"))
    wide = sib.load_wide(ds.results_dir)
    assert clusters.tolist() == sorted(wide.index) == list(range(N_UNITS))
    groups = pd.read_csv(ds.phy_dir / "cluster_group.tsv", sep="\t")
    assert groups["cluster_id"].tolist() == list(range(N_UNITS))


@pytest.mark.parametrize("variant", list(sib.VARIANTS))
def test_layouts_share_metrics(si_dataset, variant):
    """Same units and seed: the two layouts differ only in their unit ids (the build is deterministic)."""
    a = sib.load_wide(si_dataset(variant, "export").results_dir)
    b = sib.load_wide(si_dataset(variant, "sorter_output").results_dir)
    a.index = a.index - sib.EXPORT_UNIT_ID_OFFSET
    pd.testing.assert_frame_equal(a, b)


def test_copy(si_dataset, si_dataset_copy, tmp_path):
    src = si_dataset("default", "sorter_output")
    ds = si_dataset_copy("default", "sorter_output", tmp_path / "mine")
    assert ds.out_dir == tmp_path / "mine"
    assert ds.phy_dir == ds.out_dir / "sorter_output" and ds.results_dir == ds.out_dir / "bombcell"
    assert ds.thresholds == src.thresholds and ds.split == src.split and ds.layout == src.layout
    assert (ds.results_dir / "labeling_results_wide.csv").read_bytes() == \
        (src.results_dir / "labeling_results_wide.csv").read_bytes()


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_phy_opens(si_dataset_copy, tmp_path, layout):
    from tests.conftest import plain_phy

    ds = si_dataset_copy("default", layout)
    with plain_phy(ds.phy_dir, tmp_path / "phy_config") as (controller, app):
        assert list(controller.supervisor.clustering.cluster_ids) == list(range(N_UNITS))
        if layout == "export":
            assert "si_unit_id" in controller.model.metadata
            assert controller.model.metadata["si_unit_id"][3] == 3 + sib.EXPORT_UNIT_ID_OFFSET
        controller.supervisor.select([1])
        app.processEvents()
        assert controller.supervisor.selected == [1]
