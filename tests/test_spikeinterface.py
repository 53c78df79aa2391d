"""Bombcell through SpikeInterface (issue #13): folders labelled by `bombcell.run_bombcell_qc` itself, opened as
`export_to_phy` folders and as Kilosort `sorter_output/` folders, in the CLI and in a real Phy GUI.

Every label must equal SpikeInterface's own `bombcell_label_units` and the `label` the run saved; every decisive
comparison must hold as SpikeInterface tests it; what-if edits must give `bombcell_label_units`' labels under
the edited thresholds, and the saved thresholds JSON must reproduce them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spikeinterface.curation import bombcell_label_units

from phy_bcreason import explain_folder
from phy_bcreason.api import explain
from phy_bcreason.core.engine import ALSO_FAILED, DECISIVE
from phy_bcreason.core.rules import SPIKEINTERFACE_LABELS, unflatten_thresholds
from phy_bcreason.io.find import find_bombcell_dir, load_results
from phy_bcreason.io.results import BombcellResultsError
from phy_bcreason.tuning.whatif import save_parameters
from tests import si_builder
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

CASES = [(variant, "export") for variant in si_builder.VARIANTS] + [("default", "sorter_output")]
DECIDING = {"NOISE": {"noise"}, "MUA": {"mua"}, "GOOD": set(), "NON-SOMA": {"nonsomatic"},
            "NON-SOMA GOOD": {"nonsomatic"}, "NON-SOMA MUA": {"nonsomatic", "mua"}}


def saved(dataset) -> dict[int, str]:
    """The labels the run saved, by Phy cluster id, in Bombcell's spelling."""
    wide = pd.read_csv(dataset.results_dir / "labeling_results_wide.csv", index_col=0)
    mapping = dataset.phy_dir / "cluster_si_unit_ids.tsv"
    if mapping.is_file():
        table = pd.read_csv(mapping, sep="\t", dtype=str)
        phy_id = dict(zip(table["si_unit_id"], table["cluster_id"].astype(int)))
        ids = [phy_id[str(u)] for u in wide.index]
    else:
        ids = [int(u) for u in wide.index]
    return dict(zip(ids, wide["label"].map(SPIKEINTERFACE_LABELS)))


def theirs(metrics: pd.DataFrame, thresholds: dict, split: bool) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = bombcell_label_units(external_metrics=metrics, thresholds=thresholds, split_non_somatic=split)
    return list(labels["bombcell_label"].map(SPIKEINTERFACE_LABELS))


def holds(rule, value: float, threshold: float) -> bool:
    if rule.op == "isnan":
        return np.isnan(value)
    return value < threshold if rule.op == "<" else value > threshold


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


@pytest.mark.parametrize(("variant", "layout"), CASES)
def test_labels_and_decisive_comparisons_are_spikeinterfaces(variant, layout, si_dataset):
    dataset = si_dataset(variant, layout)
    expected = saved(dataset)
    explanation = explain_folder(dataset.phy_dir)
    assert explanation.classifier == "spikeinterface"
    assert explanation.source == dataset.results_dir
    ids = explanation.cluster_ids.tolist()
    assert dict(zip(ids, explanation.labels)) == expected
    assert dict(zip(ids, explanation.rule_labels)) == expected
    results = load_results(find_bombcell_dir(dataset.phy_dir), ks_dir=dataset.phy_dir)
    assert list(explanation.rule_labels) == theirs(results.metrics, dataset.thresholds, dataset.split)
    assert not explanation.flagged.any() and explanation.mismatches.empty  # both judges ran and agree
    failing = np.isin(explanation.status, [DECISIVE, ALSO_FAILED])
    for row, j in zip(*np.nonzero(failing)):
        assert holds(explanation.rules[j], explanation.values[row, j], explanation.thresholds[j])
    for cluster_id in ids:
        unit = explanation.unit(cluster_id)
        assert {c["block"] for c in unit["decisive"]} == DECIDING[unit["label"]], unit

    result = run_cli("explain", dataset.phy_dir, "--json")
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)
    assert {u["cluster_id"]: u["label"] for u in units} == expected
    assert all(u["classifier"] == "spikeinterface" and SPIKEINTERFACE_LABELS[u["run_label"]] == u["label"]
               for u in units)
    assert result.stderr.startswith("classifier: Bombcell through SpikeInterface")


def test_every_label_occurs(si_dataset):
    labels = set().union(*(saved(si_dataset(variant, layout)).values() for variant, layout in CASES))
    assert {"GOOD", "MUA", "NOISE", "NON-SOMA", "NON-SOMA GOOD"} <= labels


def test_what_if_edits_give_bombcell_label_units_labels_and_the_saved_thresholds_reproduce_them(si_dataset, tmp_path):
    dataset = si_dataset("default", "export")
    results = load_results(find_bombcell_dir(dataset.phy_dir), ks_dir=dataset.phy_dir)
    edits = {"mua.presence_ratio.greater": 0.95, "noise.waveform_baseline_flatness.less": 0.3,
             "split_non_somatic": True}
    before = explain(results, check=False)
    edited = explain(results, edits)  # with SpikeInterface's own classifier as the judge
    assert not edited.flagged.any()
    assert (edited.labels != before.labels).any()
    thresholds = unflatten_thresholds(dataset.thresholds, {**results.params, **edits})
    assert list(edited.labels) == theirs(results.metrics, thresholds, True)

    folder = tmp_path / "results"
    folder.mkdir()
    path = save_parameters(folder, results.params, edits, results.thresholds)
    assert path.name.startswith("thresholds.whatif-") and path.suffix == ".json"
    assert list(edited.labels) == theirs(results.metrics, json.loads(path.read_text()), True)

    summary = run_cli("summary", dataset.phy_dir, *[f"--set={k}={v}" for k, v in edits.items()])
    assert summary.returncode == 0, summary.stderr
    assert "what-if: mua.presence_ratio.greater" in summary.stdout


def test_results_of_another_sorting_are_refused_in_one_line(si_dataset, tmp_path):
    dataset = si_builder.si_dataset_copy(si_dataset("default", "export"), tmp_path / "copy")
    wide_path = dataset.results_dir / "labeling_results_wide.csv"
    wide = pd.read_csv(wide_path, index_col=0)
    wide["num_spikes"] = wide["num_spikes"].to_numpy()[::-1] * 3
    wide.to_csv(wide_path)
    with pytest.raises(BombcellResultsError, match="these results do not match this Kilosort folder"):
        explain_folder(dataset.phy_dir)
    result = run_cli("explain", dataset.phy_dir)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("layout", ["export", "sorter_output"])
def test_spikeinterface_results_in_phy(layout, si_dataset, tmp_path, open_phy):
    dataset = si_builder.si_dataset_copy(si_dataset("split", layout) if layout == "export"
                                      else si_dataset("default", layout), tmp_path / "copy")
    expected = saved(dataset)
    explanation = explain_folder(dataset.phy_dir)
    controller, gui = open_phy(dataset.phy_dir)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert {c: row["bc_label"] for c, row in shown.items() if c in expected} == expected
    assert {row["bc_flag"] for row in shown.values()} == {""}
    assert gui.status_message.startswith("phy-bcreason: SpikeInterface's Bombcell labels from")
    view = dock(gui)
    assert view.classifier.text().startswith("Bombcell through SpikeInterface")
    assert list(view.switches) == ["split_non_somatic"]
    for cluster_id in sorted(expected)[:6]:
        select(controller, [cluster_id])
        run_label = {v: k for k, v in SPIKEINTERFACE_LABELS.items()}[expected[cluster_id]]
        assert view.content.title == f"cluster {cluster_id}: {expected[cluster_id]} ({run_label})"
        assert view.content.reason == explanation.reasons[explanation.row_of(cluster_id)]

    # a merge: not recomputed for this route, and said so
    from tests.test_live_metrics import merge_and_wait

    first, second = sorted(expected)[:2]
    merged = merge_and_wait(controller, [first, second])
    row = rows(controller)[merged]
    assert "SpikeInterface computed these metrics from its SortingAnalyzer" in row["bc_classificationReason"]
    assert controller.phy_bcreason.live.live_spikes == {}


def test_the_parent_of_a_sorter_output_folder_is_searched(si_dataset):
    dataset = si_dataset("default", "sorter_output")
    assert dataset.phy_dir.name == "sorter_output"
    assert find_bombcell_dir(dataset.phy_dir) == dataset.results_dir == dataset.phy_dir.parent / "bombcell"
    assert Path(explain_folder(dataset.phy_dir).source) == dataset.results_dir
