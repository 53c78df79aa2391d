"""Every Bombcell results folder a lab has on disk opens (issue #16): a parameter file that lacks a threshold,
holds a damaged key or an old name, stores switches as text, or is missing altogether; and a folder whose
labels were never saved. The labels shown are the ones Bombcell saved, every rule that can be tested is
explained, what is missing is named in one sentence, and nothing a person reads is Python exception text.

Each case damages a private copy of a real Bombcell run (27 clusters, ids 0..26), then runs the CLI as a user
would and opens the folder in a real Phy GUI.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.gui.dock import content_text
from phy_bcreason.io.bombcell import PARAMS_FILE, PHY_LABELS_FILE
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin
from tests.test_robustness import edit_metrics, metrics_path, params_path, snapshot

# What must never reach a person: Python's exception names and tracebacks.
EXCEPTION_TEXT = re.compile(r"Traceback|\bError:|\b[A-Z][A-Za-z]*(Error|Exception)\b")


def edit_params(ks: Path, change) -> None:
    params = pd.read_parquet(params_path(ks)).iloc[0].to_dict()
    pd.DataFrame([change(params)]).to_parquet(params_path(ks))


def rename(params: dict, names: dict) -> dict:
    return {names.get(key, key): value for key, value in params.items()}


def saved_labels(ks: Path) -> dict[int, str]:
    metrics = pd.read_parquet(metrics_path(ks))
    return dict(zip(metrics["phy_clusterID"].astype(int), metrics["bc_unitType"].fillna("")))


def bombcell_classifier(metrics: pd.DataFrame, params: dict) -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):
        from bombcell.quality_metrics import get_quality_unit_type

        return list(get_quality_unit_type(dict(params), metrics.copy())[1])


def run_cli(ks: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *args, str(ks)], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


# ----------------------------------------------------------------------------------------------------------
# the kinds of damage


def unused_thresholds_dropped(ks: Path) -> None:
    """Drift and distance metrics were off in this run: their thresholds are not needed (Bombcell 0.94's
    own back-fill refuses the file all the same)."""
    edit_params(ks, lambda p: {k: v for k, v in p.items() if k not in ("maxDrift", "isoDmin", "lratioMax")})


def used_threshold_dropped(ks: Path) -> None:
    edit_params(ks, lambda p: {k: v for k, v in p.items() if k != "maxRPVviolations"})


def padded_keys(ks: Path) -> None:
    edit_params(ks, lambda p: rename(p, {"maxNPeaks": " maxNPeaks ", "minNumSpikes": "minNumSpikes\t"}))


def old_names(ks: Path) -> None:
    """Names MATLAB's prettify_names maps (and Bombcell's back-fill would otherwise overwrite)."""
    edit_params(ks, lambda p: rename(p, {"maxScndPeakToTroughRatio_noise": "minTroughToPeakRatio",
                                         "maxMainPeakToTroughRatio_nonSomatic": "minMainPeakToTroughRatio"}))


def switches_as_text(ks: Path) -> None:
    edit_params(ks, lambda p: {**p, "computeDrift": "False", "extractRaw": "0", "computeSpatialDecay": "true",
                               "splitGoodAndMua_NonSomatic": "off"})


def no_parameter_file(ks: Path) -> None:
    params_path(ks).unlink()


def no_saved_labels(ks: Path) -> None:
    edit_metrics(ks, lambda m: m.drop(columns=["bc_unitType"]))
    (ks / PHY_LABELS_FILE).unlink()


@dataclass
class Case:
    damage: object
    notes: tuple[str, ...]          # fragments of the one-line notes
    missing: tuple[str, ...] = ()   # thresholds shown as missing
    classifier_runs: bool = True    # Bombcell's own classifier runs on the repaired parameters
    saved: bool = True              # Bombcell's saved labels are there


CASES = {
    "unused-thresholds-dropped": Case(unused_thresholds_dropped, (), classifier_runs=False),
    "used-threshold-dropped": Case(used_threshold_dropped, ("not in the parameter file and no back-fill default: "
                                                            "maxRPVviolations",),
                                   missing=("maxRPVviolations",), classifier_runs=False),
    "padded-keys": Case(padded_keys, ("parameter ' maxNPeaks ' read as 'maxNPeaks'",
                                      "parameter 'minNumSpikes\\t' read as 'minNumSpikes'")),
    "old-names": Case(old_names, ("parameter minTroughToPeakRatio read as maxScndPeakToTroughRatio_noise",
                                  "minMainPeakToTroughRatio read as maxMainPeakToTroughRatio_nonSomatic")),
    "switches-as-text": Case(switches_as_text, ("switch computeDrift stored as text 'False': read as off",
                                                "switch extractRaw stored as text '0': read as off",
                                                "switch computeSpatialDecay stored as text 'true': read as on")),
    "no-parameter-file": Case(no_parameter_file, (f"{PARAMS_FILE}: not found; the labels are the ones Bombcell "
                                                  "saved",), classifier_runs=False),
    "no-saved-labels": Case(no_saved_labels, (), saved=False),
}


def repaired_params(ks: Path) -> dict:
    params = pd.read_parquet(params_path(ks)).iloc[0].to_dict()
    params = {key.strip(): value for key, value in params.items()}
    params = rename(params, {"minTroughToPeakRatio": "maxScndPeakToTroughRatio_noise",
                             "minMainPeakToTroughRatio": "maxMainPeakToTroughRatio_nonSomatic"})
    as_text = {"computeDrift": False, "extractRaw": False, "computeSpatialDecay": True,
               "splitGoodAndMua_NonSomatic": False}  # what switches_as_text stored as text
    return {key: as_text[key] if key in as_text and isinstance(value, str) else value
            for key, value in params.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_damaged_folder_opens_in_the_cli(name, ks_dataset_copy):
    case, ks = CASES[name], ks_dataset_copy
    expected = saved_labels(ks)
    case.damage(ks)
    before = snapshot(ks)

    explanation = explain_folder(ks)
    labels = dict(zip(explanation.cluster_ids.tolist(), explanation.labels))
    assert labels == expected  # the labels Bombcell saved, or (no saved labels) its classifier's
    assert not explanation.flagged.any(), explanation.mismatches
    if name == "no-parameter-file":  # no threshold is known, and none is made up
        assert set(explanation.missing_thresholds) >= {"maxNPeaks", "maxRPVviolations", "minNumSpikes"}
        assert explanation.undetermined.all()
    else:
        assert explanation.missing_thresholds == list(case.missing)
    for fragment in case.notes:
        assert any(fragment in note for note in explanation.notes), (fragment, explanation.notes)
    if case.classifier_runs:  # the rules equal Bombcell's own classifier on the repaired parameters
        assert list(explanation.rule_labels) == bombcell_classifier(pd.read_parquet(metrics_path(ks)),
                                                                    repaired_params(ks))
    statuses = explanation.long_table()
    by_param = statuses.groupby("param")["status"].agg(set)
    for param in case.missing:
        assert "threshold_missing" in by_param[param]
    if name == "unused-thresholds-dropped":  # a missing threshold for a rule the run did not use: no change
        assert by_param["maxDrift"] == by_param["isoDmin"] == {"inactive"}
        assert explanation.missing_thresholds == [] and not explanation.undetermined.any()
    if name == "used-threshold-dropped":
        # units whose label the RPV rule could change are undetermined by the rules; the saved label decides
        assert explanation.undetermined.any()
        row = int(np.flatnonzero(explanation.undetermined)[0])
        assert explanation.rule_labels[row] == "MUA or GOOD"
        assert "maxRPVviolations is not in the parameter file" in explanation.reasons[row]
        assert explanation.reasons[row].startswith(f"{explanation.labels[row]} (saved by Bombcell)")
    if name == "no-parameter-file":
        tested = statuses[~statuses["status"].isin(["threshold_missing", "inactive", "missing"])]
        assert set(tested["rule"]) == {"isnan(nPeaks)"}  # the one test that needs no threshold

    result = run_cli(ks, "explain", "--json")
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)
    assert {u["cluster_id"]: u["label"] for u in units} == expected
    assert all(u["classifier"] == "python" for u in units)
    for fragment in case.notes:
        assert fragment in result.stderr, (fragment, result.stderr)
    text = run_cli(ks, "explain")
    summary = run_cli(ks, "summary")
    for output in (result.stderr, text.stdout, text.stderr, summary.stdout, summary.stderr):
        assert not EXCEPTION_TEXT.search(output), output
    if case.missing:
        assert f"threshold missing: fractionRPVs_estimatedTauR > {case.missing[0]}" in text.stdout
    assert snapshot(ks) == before


@pytest.mark.parametrize("name", list(CASES))
def test_damaged_folder_opens_in_phy(name, ks_dataset_copy, open_phy):
    case, ks = CASES[name], ks_dataset_copy
    expected = saved_labels(ks)
    case.damage(ks)
    explanation = explain_folder(ks)

    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert {c: row["bc_label"] for c, row in shown.items()} == expected
    assert {row["bc_flag"] for row in shown.values()} == {""}
    status = gui.status_message
    assert status.startswith("phy-bcreason: Python Bombcell labels from") and "flagged" not in status, status
    view = dock(gui)
    assert "Python Bombcell" in view.classifier.text()
    texts = [status, view.classifier.text(), view.notes.text()]
    for cluster_id in (0, 9, 20):
        select(controller, [cluster_id])
        row = explanation.row_of(cluster_id)
        assert view.content.reason == explanation.reasons[row]
        assert view.content.title.endswith(f": {expected[cluster_id] or '(empty)'}")
        texts.append(content_text(view.content))
    if case.missing:
        row = int(np.flatnonzero(explanation.undetermined)[0])
        cluster_id = int(explanation.cluster_ids[row])
        select(controller, [cluster_id])
        dock_text = content_text(view.content)
        assert "threshold missing: maxRPVviolations is not in the parameter file" in dock_text
        assert "MUA or GOOD" not in view.content.title  # the label shown is the saved one
    for fragment in case.notes:
        assert fragment in view.notes.text()
    for text in texts:
        assert not EXCEPTION_TEXT.search(text), text


def test_a_folder_with_neither_parameters_nor_saved_labels_is_one_sentence(ks_dataset_copy):
    ks = ks_dataset_copy
    no_saved_labels(ks)
    no_parameter_file(ks)
    result = run_cli(ks, "explain")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert PARAMS_FILE in line and "file not found" in line and "no labels saved by Bombcell" in line
    assert not EXCEPTION_TEXT.search(line)
