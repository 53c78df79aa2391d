"""On Kilosort folders labelled by running Bombcell itself, with several parameter sets, our labels are
Bombcell's for every unit and every decisive comparison is one that holds."""

import contextlib
import io
import shutil

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.api import SAVED_JUDGE
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE

with contextlib.redirect_stdout(io.StringIO()):
    import bombcell as bc
    from bombcell.default_parameters import _BACKCOMPAT_DEFAULTS

VARIANTS = {
    "split": {"splitGoodAndMua_NonSomatic": True},
    "keep_uncertain": {"keepUncertainRPVUnits": True},
    "drift_distance": {"computeDrift": True, "computeDistanceMetrics": True},
    "linfit": {"spDecayLinFit": True},
}
DECIDING_BLOCKS = {
    "NOISE": {"noise"}, "MUA": {"mua"}, "GOOD": set(), "": set(), "NON-SOMA": {"nonsomatic"},
    "NON-SOMA GOOD": {"nonsomatic"}, "NON-SOMA MUA": {"nonsomatic", "mua"},
}


def bombcell_judgement(folder):
    """Bombcell's own labels for a results folder: as saved by its run, and as its classifier gives now."""
    with contextlib.redirect_stdout(io.StringIO()):
        param, metrics, _ = bc.load_bc_results(str(folder))
        labels = bc.quality_metrics.get_quality_unit_type(param, metrics)[1]
    return metrics, np.asarray(labels, dtype=object)


def assert_agrees(ks_dir, folder, saved_labels=True):
    """The rule table's labels are Bombcell's classifier's; the labels shown are the ones the run saved, and
    where those differ (``saved_labels=False``: the tables were edited after the run) the unit is flagged."""
    explanation = explain_folder(ks_dir, folder)
    metrics, judged = bombcell_judgement(folder)
    saved = list(metrics["bc_unitType"].fillna(""))
    assert list(explanation.rule_labels) == list(judged)
    assert list(explanation.labels) == saved
    assert list(explanation.flagged) == [ours != theirs for ours, theirs in zip(judged, saved)]
    if saved_labels:
        assert not explanation.flagged.any()
    assert explanation.mismatches is not None  # the judges ran
    assert set(explanation.mismatches["judge"]) <= {SAVED_JUDGE}  # never Bombcell's classifier
    assert list(explanation.cluster_ids) == list(metrics["phy_clusterID"])
    assert explanation.classifier == "python" and "Python Bombcell" in explanation.classified_by
    for cluster_id in explanation.cluster_ids:
        unit = explanation.unit(int(cluster_id))
        assert unit["classifier"] == "python"
        if unit["flagged"]:
            assert unit["label"] in unit["reason"] and f"rules give {unit['rules_label']}" in unit["reason"]
            continue
        assert {c["block"] for c in unit["decisive"]} == DECIDING_BLOCKS[unit["label"]], unit
        for c in unit["decisive"] + unit["also_failed"]:
            value, threshold = c["value"], c["threshold"]
            holds = value is None if c["op"] == "isnan" else (
                value > threshold if c["op"] == ">" else value < threshold)
            assert holds, (cluster_id, c)
        assert unit["reason"].startswith(f"{unit['label']}: ") or unit["label"] == ""
    return explanation


def test_default_run_has_every_label_and_agrees(ks_dataset):
    explanation = assert_agrees(ks_dataset, ks_dataset / "bombcell")
    counts = pd.Series(explanation.labels).value_counts()
    for label in ("GOOD", "MUA", "NOISE", "NON-SOMA"):
        assert counts.get(label, 0) >= 3, counts
    reasons = set(explanation.reasons)
    assert "NOISE: too few spikes to measure a waveform (nPeaks is NaN)" in {r.split(",")[0] for r in reasons}
    assert any("peak1/peak2" in r for r in reasons) and any("mainPeakToTroughRatio" in r for r in reasons)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_parameter_variants_agree(ks_dataset, bombcell_rerun, name):
    folder = bombcell_rerun(ks_dataset, VARIANTS[name], name)
    explanation = assert_agrees(ks_dataset, folder)
    statuses = explanation.long_table()
    by_rule = statuses.groupby("rule")["status"].agg(set)
    if name == "split":
        assert {"NON-SOMA GOOD"} <= set(explanation.labels)
    if name == "keep_uncertain":  # RPV_status == 0 units are exempt from the RPV rule
        assert "exempt" in by_rule["fractionRPVs_estimatedTauR>maxRPVviolations"]
    if name == "drift_distance":
        for rule in ("maxDriftEstimate>maxDrift", "isolationDistance<isoDmin", "Lratio>lratioMax"):
            assert "inactive" not in by_rule[rule], rule
    if name == "linfit":
        assert "inactive" not in by_rule["spatialDecaySlope<minSpatialDecaySlope"]
        assert by_rule["spatialDecaySlope<minSpatialDecaySlopeExp"] == {"inactive"}


def test_raw_data_run_applies_amplitude_and_snr(ks_dataset_raw):
    explanation = assert_agrees(ks_dataset_raw, ks_dataset_raw / "bombcell")
    table = explanation.long_table()
    amplitude = table[table["rule"] == "rawAmplitude<minAmplitude"]
    assert explanation.params["extractRaw"]
    assert (amplitude["status"] != "inactive").mean() > 0.5


def test_old_parameter_set_is_back_filled_like_bombcell(ks_dataset, tmp_path):
    """A parameter file from before several fields existed: Bombcell's back-fill decides, as it would."""
    folder = tmp_path / "bombcell_old"
    shutil.copytree(ks_dataset / "bombcell", folder)
    params = pd.read_parquet(folder / PARAMS_FILE)
    dropped = [k for k in _BACKCOMPAT_DEFAULTS if k in params.columns and k != "computeSpatialDecay"]
    params.drop(columns=dropped).to_parquet(folder / PARAMS_FILE)
    explanation = assert_agrees(ks_dataset, folder, saved_labels=False)
    assert explanation.flagged.any()  # the back-filled linear-fit rule gives other labels than the run saved
    assert set(dropped) <= set(explanation.filled_params)
    filled_note = next(n for n in explanation.notes if "filled in by the classifier's own back-fill" in n)
    assert all(name in filled_note for name in dropped)
    # Bombcell's back-fill turns spDecayLinFit on, so the linear-fit rule is the one applied.
    assert 7 not in explanation.inactive and explanation.rules[7].param == "minSpatialDecaySlope"


def test_row_index_is_used_only_without_phy_cluster_id(ks_dataset, tmp_path):
    folder = tmp_path / "bombcell_noid"
    shutil.copytree(ks_dataset / "bombcell", folder)
    metrics = pd.read_parquet(folder / METRICS_FILE)
    metrics.drop(columns=["phy_clusterID"]).to_parquet(folder / METRICS_FILE)
    explanation = explain_folder(ks_dataset, folder)
    assert list(explanation.cluster_ids) == list(range(len(metrics)))
    assert any("no phy_clusterID column" in note for note in explanation.notes)


def test_a_disagreement_with_bombcell_is_reported_and_bombcells_label_wins(ks_dataset):
    """The rule table has never disagreed with Bombcell here; if it ever does, the user must see it."""
    from phy_bcreason.api import apply_judgement

    explanation = explain_folder(ks_dataset, check=False)
    judged = explanation.labels.copy()
    judged[0] = "MUA"  # pretend Bombcell's classifier said otherwise for cluster 0
    rows = apply_judgement(explanation, judged)
    assert list(rows) == [0]
    assert explanation.labels[0] == "MUA" and explanation.flagged[0] and explanation.flagged.sum() == 1
    assert "Bombcell's classifier says 'MUA'" in explanation.reasons[0] and "'GOOD'" in explanation.reasons[0]
    assert explanation.mismatches.to_dict("records") == [
        {"cluster_id": 0, "judge": "Bombcell's classifier", "judge_label": "MUA", "rule_table_label": "GOOD"}]
    assert any("disagrees" in note for note in explanation.notes)


def test_installed_bombcell_version_is_one_the_rules_follow_or_a_note_says_so():
    from phy_bcreason.api import installed_bombcell_version, version_note

    assert version_note(installed_bombcell_version()) is None  # CI installs a version the table follows
    assert "installed Bombcell 0.99" in version_note("0.99")
    assert "follows Bombcell 0.93/0.94" in version_note("0.92")
    assert "not installed" in version_note(None)
