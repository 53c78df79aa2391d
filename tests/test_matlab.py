"""MATLAB Bombcell results (issue #10): MATLAB's labels and reasons, and never a label that contradicts the one
Bombcell saved without saying so.

The folders in tests/data/matlab/ were written as MATLAB's saveQMetrics.m writes them and labelled by MATLAB
Bombcell's own `bc.qm.getQualityUnitType`, run under GNU Octave by tests/matlab/build_matlab_cases.py
(tests/data/matlab/SOURCE.md says how and what each case exercises). No transcription of ours made them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.gui.dock import content_text
from phy_bcreason.io.bombcell import MATLAB_LABELS_FILE
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

DATA = Path(__file__).parent / "data" / "matlab"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "matlab_labels.tsv").is_file())
DEMO = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data"
DECIDING_BLOCKS = {
    "NOISE": {"noise"}, "MUA": {"mua"}, "GOOD": set(), "": set(), "NON-SOMA": {"nonsomatic"},
    "NON-SOMA GOOD": {"nonsomatic"}, "NON-SOMA MUA": {"nonsomatic", "mua"},
}


def oracle(folder: Path) -> dict[int, str]:
    """MATLAB Bombcell's labels, as Octave printed them."""
    table = pd.read_csv(folder / "matlab_labels.tsv", sep="\t", keep_default_na=False)
    return dict(zip(table["phy_clusterID"].astype(int), table["unitType_string"]))


def holds_as_matlab_tests(c: dict) -> bool:
    if c["op"] == "isnan":
        return c["value"] is None
    return c["value"] > c["threshold"] if c["op"] == ">" else c["value"] < c["threshold"]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


def test_every_matlab_label_occurs_in_the_cases():
    labels = set().union(*(oracle(DATA / case).values() for case in CASES))
    assert {"GOOD", "MUA", "NOISE", "NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA"} <= labels
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_labels_and_decisive_comparisons_are_matlab_bombcells(case, tmp_path):
    folder = DATA / case
    expected = oracle(folder)
    explanation = explain_folder(tmp_path, folder)  # a Kilosort folder without spikes: ids are not checked
    assert explanation.classifier == "matlab" and "MATLAB Bombcell" in explanation.classified_by
    assert dict(zip(explanation.cluster_ids.tolist(), explanation.rule_labels)) == expected
    assert dict(zip(explanation.cluster_ids.tolist(), explanation.labels)) == expected
    assert not explanation.flagged.any() and not explanation.undetermined.any()
    for cluster_id in explanation.cluster_ids.tolist():
        unit = explanation.unit(cluster_id)
        assert unit["classifier"] == "matlab"
        assert {c["block"] for c in unit["decisive"]} == DECIDING_BLOCKS[unit["label"]], unit
        for c in unit["decisive"] + unit["also_failed"]:
            assert holds_as_matlab_tests(c), (cluster_id, c)
        assert unit["reason"].startswith(f"{unit['label']}: ")


@pytest.mark.parametrize("case", CASES)
def test_the_cli_explains_matlab_results_with_matlabs_rules(case, tmp_path):
    folder = DATA / case
    result = run_cli("explain", tmp_path, "--bombcell-dir", folder, "--json")
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)
    assert {u["cluster_id"]: u["label"] for u in units} == oracle(folder)
    assert {u["classifier"] for u in units} == {"matlab"} and not any(u["flagged"] for u in units)
    assert result.stderr.startswith("classifier: MATLAB Bombcell")
    summary = run_cli("summary", tmp_path, "--bombcell-dir", folder)
    assert "Classifier: MATLAB Bombcell (bc.qm.getQualityUnitType), recognised from MATLAB names" in summary.stdout


def test_python_rules_on_matlab_results_would_be_wrong_and_the_saved_labels_say_so(tmp_path):
    """Forced to the wrong classifier, the rules contradict MATLAB's saved labels on some units: the saved
    labels are shown, and those units are flagged, never silently different."""
    folder = DATA / "linear_fit"
    expected = oracle(folder)
    explanation = explain_folder(tmp_path, folder, classifier="python", check=False)
    differ = [c for c, ours in zip(explanation.cluster_ids.tolist(), explanation.rule_labels) if ours != expected[c]]
    assert len(differ) >= 10
    assert dict(zip(explanation.cluster_ids.tolist(), explanation.labels)) == expected
    assert sorted(explanation.cluster_ids[explanation.flagged].tolist()) == sorted(differ)
    assert any(note.startswith("flagged by the saved labels: ") and str(differ[0]) in note
               for note in explanation.notes)


def test_what_if_on_matlab_results_uses_matlabs_rules(tmp_path):
    """The linear spatial-decay test is MATLAB's ('slope > minSpatialDecaySlope') in a what-if too: moving the
    threshold past a unit's slope changes exactly the units on either side of it."""
    from phy_bcreason.api import explain
    from phy_bcreason.io.find import find_bombcell_dir, load_results

    results = load_results(find_bombcell_dir(tmp_path, DATA / "linear_fit"), ks_dir=tmp_path)
    saved = explain(results, check=False)
    slopes = results.metrics["spatialDecaySlope"].to_numpy(dtype=float)
    edited = explain(results, {"minSpatialDecaySlope": -0.02}, check=False)
    became_noise = (saved.labels != "NOISE") & (edited.labels == "NOISE")
    assert became_noise.any()
    assert np.all((slopes[became_noise] > -0.02) & (slopes[became_noise] <= -0.008))


# ----------------------------------------------------------------------------------------------------------
# a MATLAB-labelled Kilosort folder in a real Phy GUI


def matlab_demo_folder(destination: Path) -> Path:
    """The bundled demo's Kilosort files with the MATLAB case `demo` as its Bombcell results, as MATLAB
    Bombcell leaves a folder (its renamed cluster_*.tsv files and cluster_bc_unitType.tsv next to it)."""
    ks = destination / "ks"
    shutil.copytree(DEMO, ks, ignore=shutil.ignore_patterns("bombcell", "cluster_*.tsv", "ground_truth.json"))
    shutil.copy(DEMO / "cluster_group.tsv", ks)
    shutil.copytree(DATA / "demo", ks / "bombcell", ignore=shutil.ignore_patterns("ks_files", "matlab_labels.tsv"))
    for tsv in (DATA / "demo" / "ks_files").glob("*.tsv"):
        shutil.copy(tsv, ks)
    return ks


def test_matlab_results_in_phy(tmp_path, open_phy):
    ks = matlab_demo_folder(tmp_path)
    expected = oracle(DATA / "demo")
    explanation = explain_folder(ks)
    assert explanation.classifier == "matlab" and not explanation.flagged.any()

    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert {c: row["bc_label"] for c, row in shown.items()} == expected
    assert {row["bc_flag"] for row in shown.values()} == {""}
    assert gui.status_message.startswith(f"phy-bcreason: MATLAB Bombcell labels from {ks / 'bombcell'}")
    view = dock(gui)
    assert view.classifier.text().startswith("MATLAB Bombcell (bc.qm.getQualityUnitType), recognised from")
    assert "keepUncertainRPVUnits" not in view.switches  # a Python-only switch: MATLAB has no such test
    for cluster_id in sorted(expected):
        select(controller, [cluster_id])
        row = explanation.row_of(cluster_id)
        assert view.content.title == f"cluster {cluster_id}: {expected[cluster_id]}"
        assert view.content.reason == shown[cluster_id]["bc_classificationReason"] == explanation.reasons[row]
        assert not view.flag.isVisibleTo(view)
        decisive = [c for c in explanation.unit(cluster_id)["decisive"]]
        text = content_text(view.content)
        for c in decisive:
            assert c["metric"] in text and holds_as_matlab_tests(c)


def test_a_saved_label_that_contradicts_the_rules_is_shown_and_flagged(tmp_path, open_phy):
    ks = matlab_demo_folder(tmp_path)
    expected = oracle(DATA / "demo")
    edited_id = next(c for c, label in expected.items() if label == "GOOD")
    saved = pd.read_csv(ks / "bombcell" / MATLAB_LABELS_FILE, keep_default_na=False)
    saved.loc[saved["phy_clusterID"] == edited_id, "bc_unitType"] = "NOISE"
    saved.to_csv(ks / "bombcell" / MATLAB_LABELS_FILE, index=False)

    result = run_cli("explain", ks, "--json")
    assert result.returncode == 0, result.stderr
    units = {u["cluster_id"]: u for u in json.loads(result.stdout)}
    assert [c for c, u in units.items() if u["flagged"]] == [edited_id]
    unit = units[edited_id]
    assert unit["label"] == "NOISE" and unit["rules_label"] == "GOOD"
    assert unit["reason"].startswith("NOISE (saved by Bombcell; the matlab rules give GOOD")
    assert f"note: flagged by the saved labels: 1 unit(s) where Bombcell's saved labels differ from the matlab " \
           f"rules (cluster {edited_id})" in result.stderr
    assert "Flagged (the matlab rules give another label than Bombcell's): 1" in run_cli("summary", ks).stdout

    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert shown[edited_id]["bc_label"] == "NOISE" and shown[edited_id]["bc_flag"] == "rules: GOOD"
    assert {c for c, row in shown.items() if row["bc_flag"]} == {edited_id}
    assert "1 flagged (bc_flag)" in gui.status_message
    view = dock(gui)
    select(controller, [edited_id])
    assert view.flag.isVisibleTo(view)
    assert view.flag.text() == "Flagged: Bombcell gave NOISE, the matlab rules below give GOOD."
    assert view.content.reason == unit["reason"]
    controller.supervisor.cluster_view.filter("bc_flag != ''")
    controller.supervisor.block()
    assert controller.supervisor.cluster_view.get_ids() == [edited_id]


def test_a_cluster_merged_on_matlab_results_says_why_it_has_no_label(tmp_path, open_phy):
    """MATLAB Bombcell computes its metrics in MATLAB: a merged cluster is not recomputed with Python
    Bombcell's functions (other names, other conventions) and says so, instead of a label MATLAB never gave."""
    from phy_bcreason.gui.session import NO_ROW_LABEL
    from tests.test_live_metrics import merge_and_wait

    ks = matlab_demo_folder(tmp_path)
    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    merged = merge_and_wait(controller, [9, 10])
    row = rows(controller)[merged]
    assert row["bc_label"] == NO_ROW_LABEL and row["bc_source"] == ""
    assert "MATLAB Bombcell computes its metrics in MATLAB" in row["bc_classificationReason"]
    assert "from cluster(s) 9, 10" in row["bc_classificationReason"]
    assert controller.phy_bcreason.live.live_spikes == {}  # nothing was computed for it


def test_what_if_edits_on_matlab_results_give_matlab_bombcells_labels(tmp_path):
    """The `defaults` folder with thresholds and switches edited as a what-if labels every unit as MATLAB
    Bombcell labelled the same metrics with those parameters (case `defaults_whatif`, run under Octave)."""
    from phy_bcreason.api import explain
    from phy_bcreason.io.find import load_results

    edits = {"maxRPVviolations": 0.3, "minPresenceRatio": 0.5, "maxWvBaselineFraction": 0.2, "extractRaw": False,
             "splitGoodAndMua_NonSomatic": True}
    results = load_results(DATA / "defaults", ks_dir=tmp_path)
    saved = explain(results, check=False)
    edited = explain(results, edits, check=False)
    expected = oracle(DATA / "defaults_whatif")
    assert dict(zip(edited.cluster_ids.tolist(), edited.labels)) == expected
    assert (saved.labels != edited.labels).sum() >= 30  # the edits matter
    result = run_cli("summary", tmp_path, "--bombcell-dir", DATA / "defaults",
                     *[f"--set={name}={value}" for name, value in edits.items()])
    assert result.returncode == 0, result.stderr
    counts = pd.Series(list(expected.values())).value_counts()
    for label, n in counts.items():
        assert f"  {label:<15} {n:>6}" in result.stdout
