"""SpikeInterface's classifier as rows of the rule table: on random metric tables and random thresholds dicts
the rules label every unit as SpikeInterface's own `bombcell_label_units` does, and every comparison they call
decisive holds as SpikeInterface tests it."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from spikeinterface.curation import bombcell_get_default_thresholds, bombcell_label_units

from phy_bcreason.core.engine import ALSO_FAILED, DECISIVE, evaluate
from phy_bcreason.core.rules import (
    SPIKEINTERFACE,
    SPIKEINTERFACE_LABELS,
    flatten_thresholds,
    spikeinterface_rules,
    unflatten_thresholds,
)

EXTRA = "repolarization_slope"  # a template metric outside SpikeInterface's built-in non-somatic groups
DECIDING = {"NOISE": {"noise"}, "MUA": {"mua"}, "GOOD": set(), "NON-SOMA": {"nonsomatic"},
            "NON-SOMA GOOD": {"nonsomatic"}, "NON-SOMA MUA": {"nonsomatic", "mua"}}


def random_thresholds(rng) -> dict:
    """SpikeInterface's defaults, randomly edited as users edit them."""
    thresholds = bombcell_get_default_thresholds()
    for section in thresholds.values():
        for threshold in section.values():
            for side in ("greater", "less"):
                if threshold.get(side) is not None and rng.random() < 0.25:
                    threshold[side] *= rng.uniform(0.6, 1.5)
                if rng.random() < 0.05:
                    threshold[side] = None  # a disabled side
            if rng.random() < 0.1:
                threshold["abs"] = not threshold.get("abs", False)
    if rng.random() < 0.5:
        thresholds["non-somatic"][EXTRA] = {"greater": rng.uniform(-2, 0), "less": None}
    if rng.random() < 0.3:
        mua = thresholds["mua"]
        mua["rp_contamination"] = mua.pop("sliding_rp_violation")
    if rng.random() < 0.15:
        for name in rng.choice(["peak_before_width", "trough_width", "peak_before_to_trough_ratio",
                                "peak_before_to_peak_after_ratio"], 2, replace=False):
            thresholds["non-somatic"].pop(name)
    if rng.random() < 0.1:
        thresholds["non-somatic"] = {}
    if rng.random() < 0.05:
        thresholds["noise"] = {}
    return thresholds


def random_metrics(rng, thresholds: dict, n: int) -> pd.DataFrame:
    """Values spread around each band, some negative, NaN and inf, a missing column now and then."""
    columns = {}
    for name, section in thresholds.items():
        for metric, threshold in section.items():
            low, high = threshold.get("greater"), threshold.get("less")
            centre = [v for v in (low, high) if v is not None] or [1.0]
            span = max(abs(c) for c in centre) or 1.0
            values = rng.uniform(min(centre) - span, max(centre) + span, n)
            values[rng.random(n) < 0.1] *= -1
            if name in ("noise", "mua"):  # most units pass these tests, so that every label is frequent
                inside = rng.random(n) < 0.93
                values[inside] = rng.uniform(low if low is not None else min(centre) - span,
                                             high if high is not None else max(centre) + span, inside.sum())
            values[rng.random(n) < 0.05] = np.nan
            values[rng.random(n) < 0.01] = np.inf
            columns[metric] = values
    for metric in rng.choice(sorted(columns), rng.integers(0, 2), replace=False):
        columns.pop(metric)
    return pd.DataFrame(columns, index=pd.Index(np.arange(n) * 3 + 100, name="unit_id"))


def their_labels(metrics: pd.DataFrame, thresholds: dict, split: bool) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = bombcell_label_units(external_metrics=metrics, thresholds=copy.deepcopy(thresholds),
                                      split_non_somatic=split)
    return labels["bombcell_label"].map(SPIKEINTERFACE_LABELS).to_numpy(dtype=object)


def holds_as_spikeinterface_tests(rule, value: float, threshold: float) -> bool:
    """The comparison fails the unit as bombcell_label_units tests it (outside the inclusive band)."""
    if rule.op == "isnan":
        return np.isnan(value)
    return value < threshold if rule.op == "<" else value > threshold


@pytest.mark.parametrize("seed", range(60))
def test_rules_label_like_bombcell_label_units(seed):
    rng = np.random.default_rng(seed)
    thresholds = random_thresholds(rng)
    metrics = random_metrics(rng, thresholds, 300)
    split = bool(rng.random() < 0.5)
    rules, dropped = spikeinterface_rules(thresholds, metrics.columns)
    params = {**flatten_thresholds(thresholds), "split_non_somatic": split}
    explanation = evaluate(metrics, params, classifier=SPIKEINTERFACE, rules=rules)
    expected = their_labels(metrics, thresholds, split)
    assert list(explanation.labels) == list(expected)
    assert set(dropped) == {m for s in thresholds.values() for m in s if m not in metrics.columns}
    failing = np.isin(explanation.status, [DECISIVE, ALSO_FAILED])
    for row, j in zip(*np.nonzero(failing)):
        rule = explanation.rules[j]
        assert holds_as_spikeinterface_tests(rule, explanation.values[row, j], explanation.thresholds[j]), (row, rule)
    for row in range(0, len(metrics), 7):
        unit = explanation.unit(row)
        assert {c["block"] for c in unit["decisive"]} == DECIDING[unit["label"]], unit
        assert unit["run_label"] in SPIKEINTERFACE_LABELS


def test_every_label_occurs_across_the_random_cases():
    labels = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        thresholds = random_thresholds(rng)
        metrics = random_metrics(rng, thresholds, 300)
        labels |= set(their_labels(metrics, thresholds, bool(rng.random() < 0.5)))
    assert labels == set(SPIKEINTERFACE_LABELS.values())


def test_what_if_edits_give_bombcell_label_units_labels_under_the_edited_thresholds():
    rng = np.random.default_rng(7)
    thresholds = bombcell_get_default_thresholds()
    metrics = random_metrics(rng, thresholds, 400)
    rules, _ = spikeinterface_rules(thresholds, metrics.columns)
    params = {**flatten_thresholds(thresholds), "split_non_somatic": False}
    edits = {"mua.presence_ratio.greater": 0.9, "noise.exp_decay.less": 0.2, "split_non_somatic": True}
    edited = evaluate(metrics, {**params, **edits}, classifier=SPIKEINTERFACE, rules=rules)
    saved = evaluate(metrics, params, classifier=SPIKEINTERFACE, rules=rules)
    assert (edited.labels != saved.labels).sum() >= 20
    assert list(edited.labels) == list(their_labels(metrics, unflatten_thresholds(thresholds, {**params, **edits}),
                                                    True))
