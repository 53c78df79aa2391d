"""The classifier is the judge, whatever the dtypes: metric tables of every numeric dtype and thresholds of every
kind, labelled by our rules and by each classifier's own code (Python Bombcell's `get_quality_unit_type`,
SpikeInterface's `bombcell_label_units`), unit for unit.

NumPy 2 compares a float32 (or float16) column with a Python float in float32 (NEP 50): 0.3 stored in float32 is
not above a threshold of 0.3 there, though it is in float64. What a classifier cannot read (text, duplicated
columns, text thresholds) it raises on: we refuse it in one line naming the file, or, where its code raises
on something its rules still define (pandas' NA in a mask, a missing column), give the label its rules imply.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from spikeinterface.curation import bombcell_get_default_thresholds, bombcell_label_units

from phy_bcreason.api import explain_folder
from phy_bcreason.core.engine import PASS, evaluate
from phy_bcreason.core.rules import (
    METRICS,
    SPIKEINTERFACE,
    SPIKEINTERFACE_LABELS,
    flatten_thresholds,
    spikeinterface_rules,
)

with contextlib.redirect_stdout(io.StringIO()):
    import bombcell as bc
    from bombcell.quality_metrics import get_quality_unit_type

DEFAULTS = bc.get_default_parameters("/nonexistent", kilosort_version=4)
# What a parameter file holds: Bombcell's parquet keeps scalars only.
SAVED_DEFAULTS = {k: v for k, v in DEFAULTS.items() if np.isscalar(v) and not isinstance(v, Path)}


def bombcell_labels(metrics: pd.DataFrame, params: dict) -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(get_quality_unit_type(dict(params), metrics)[1])


def spikeinterface_labels(metrics: pd.DataFrame, thresholds: dict, split: bool = False) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = bombcell_label_units(external_metrics=metrics, thresholds=copy.deepcopy(thresholds),
                                      split_non_somatic=split)
    return [SPIKEINTERFACE_LABELS[label] for label in labels["bombcell_label"]]


def good_unit(n: int = 1) -> pd.DataFrame:
    """Units that pass every default threshold of Python Bombcell."""
    values = dict(nPeaks=1.0, nTroughs=1.0, waveformDuration_peakTrough=500.0, waveformBaselineFlatness=0.1,
                  scndPeakToTroughRatio=0.1, spatialDecaySlope=0.05, nSpikes=1000.0, presenceRatio=0.9,
                  fractionRPVs_estimatedTauR=0.0, percentageSpikesMissing_gaussian=1.0, rawAmplitude=100.0,
                  signalToNoiseRatio=10.0, maxDriftEstimate=1.0, isolationDistance=100.0, Lratio=0.0,
                  troughToPeak2Ratio=10.0, mainPeak_before_width=10.0, mainTrough_width=10.0, peak1ToPeak2Ratio=0.0,
                  mainPeakToTroughRatio=0.1, RPV_status=1.0)
    assert set(METRICS) <= set(values)
    return pd.DataFrame({name: np.full(n, value) for name, value in values.items()})


# ----------------------------------------------------------------------------------------------------------
# The cases of issue #25


def float32_at_the_threshold() -> tuple[pd.DataFrame, dict]:
    metrics = good_unit(2)
    metrics["waveformBaselineFlatness"] = np.array([0.3, 0.31], dtype=np.float32)
    return metrics, {**SAVED_DEFAULTS, "maxWvBaselineFraction": 0.3}


def test_float32_metric_at_its_threshold_gets_bombcells_label():
    metrics, params = float32_at_the_threshold()
    explanation = evaluate(metrics, params)
    assert bombcell_labels(metrics, params) == ["GOOD", "NOISE"]
    assert list(explanation.labels) == ["GOOD", "NOISE"]
    flatness = next(j for j, r in enumerate(explanation.rules) if r.metric == "waveformBaselineFlatness")
    assert explanation.status[0, flatness] == PASS and explanation.margins[0, flatness] == 0  # on it, and passes
    assert explanation.margins[1, flatness] < 0


def test_float32_metric_at_its_threshold_is_not_flagged_in_a_folder(tmp_path):
    metrics, params = float32_at_the_threshold()
    bombcell = tmp_path / "ks" / "bombcell"
    bombcell.mkdir(parents=True)
    metrics.assign(phy_clusterID=[0, 1], bc_unitType=bombcell_labels(metrics, params)).to_parquet(
        bombcell / "templates._bc_qMetrics.parquet")
    pd.DataFrame([params]).to_parquet(bombcell / "_bc_parameters._bc_qMetrics.parquet")
    explanation = explain_folder(tmp_path / "ks")  # judged by Bombcell's classifier and by its saved labels
    assert list(explanation.rule_labels) == ["GOOD", "NOISE"]
    assert not explanation.flagged.any()


def test_float32_metric_at_its_spikeinterface_threshold_gets_its_label():
    thresholds = bombcell_get_default_thresholds()
    metrics = pd.DataFrame({"exp_decay": np.array([0.01, 0.0099], dtype=np.float32), "num_spikes": [1000, 1000]})
    rules, _ = spikeinterface_rules(thresholds, metrics.columns)
    explanation = evaluate(metrics, {**flatten_thresholds(thresholds), "split_non_somatic": False},
                           classifier=SPIKEINTERFACE, rules=rules)
    assert spikeinterface_labels(metrics, thresholds) == ["GOOD", "NOISE"]
    assert list(explanation.labels) == ["GOOD", "NOISE"]


def test_a_duplicated_column_the_rules_do_not_read_is_ignored_as_bombcell_ignores_it():
    metrics = good_unit(2)
    metrics.insert(0, "maxDriftEstimate", [500.0, 1.0], allow_duplicates=True)
    params = {**SAVED_DEFAULTS, "computeDrift": False}
    assert list(evaluate(metrics, params).labels) == bombcell_labels(metrics, params) == ["GOOD", "GOOD"]


def test_a_text_threshold_of_a_metric_the_table_lacks_is_dropped_as_spikeinterface_drops_it(tmp_path):
    thresholds = bombcell_get_default_thresholds()
    thresholds["mua"]["snr"] = {"greater": "abc", "less": None}
    metrics = pd.DataFrame({"exp_decay": [0.05, 0.5], "num_spikes": [1000, 10]}, index=pd.Index([0, 1], name="unit_id"))
    labels = spikeinterface_labels(metrics, thresholds)
    assert labels == ["GOOD", "NOISE"]
    results = tmp_path / "bombcell"
    results.mkdir()
    metrics.assign(label=["good", "noise"]).to_csv(results / "labeling_results_wide.csv")
    (results / "thresholds.json").write_text(json.dumps(thresholds))
    explanation = explain_folder(tmp_path)
    assert list(explanation.rule_labels) == labels and not explanation.flagged.any()
