"""The classifier is the judge, whatever the dtypes: metric tables of every numeric dtype and thresholds of every
kind, labelled by our rules and by each classifier's own code (Python Bombcell's `get_quality_unit_type`,
SpikeInterface's `bombcell_label_units`), unit for unit, comparison for comparison.

NumPy 2 compares a float32 (or float16) column with a Python float in float32 (NEP 50): 0.3 stored in float32 is
not above a threshold of 0.3 there, though it is in float64. Where a classifier's code raises, the test says
which of two things we do:
- we refuse, in one line naming the file: what it cannot read at all (a duplicated column it reads, a text
  column it compares, a text threshold, numbers as Python objects for SpikeInterface and for np.isnan);
- we give the label its rules imply, judged by the classifier on the same table with the one thing it trips on
  replaced by what its rules say it means (`BOMBCELL_RAISES`, `SPIKEINTERFACE_RAISES`): pandas' NA (as NaN), a
  missing column (as NaN), a float or text switch in Python Bombcell's `computeSpatialDecay & spDecayLinFit` (as
  its truth), a threshold with no back-fill default (as NaN; units whose label depends on it are undetermined).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from spikeinterface.curation import bombcell_get_default_thresholds, bombcell_label_units

from phy_bcreason import BombcellResultsError
from phy_bcreason.api import explain, explain_folder
from phy_bcreason.core.backfill import repair_parameters
from phy_bcreason.core.engine import PASS, evaluate
from phy_bcreason.core.rules import (
    METRICS,
    PYTHON,
    SPIKEINTERFACE,
    SPIKEINTERFACE_LABELS,
    SWITCHES,
    THRESHOLDS,
    flatten_thresholds,
    rules_for,
    spikeinterface_rules,
    switches_for,
    thresholds_for,
)
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from phy_bcreason.io.results import BombcellResults, check_comparable
from phy_bcreason.io.spikeinterface import SI_WIDE_FILE, THRESHOLDS_FILE, run_results
from tests.test_spikeinterface_rules import random_metrics, random_thresholds

with contextlib.redirect_stdout(io.StringIO()):
    import bombcell as bc
    from bombcell.default_parameters import _BACKCOMPAT_DEFAULTS, _CLASSIFICATION_KEYS, check_parameter_fields
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


def test_integer_switches_combine_bitwise_as_in_bombcells_spatial_decay_test():
    """`computeSpatialDecay & spDecayLinFit` with switches stored as 2 and 1 is 0 in Python Bombcell: its exponential
    test applies, not the linear one; 3 and 1 is 1: the linear test."""
    metrics = good_unit(2)
    metrics["spatialDecaySlope"] = [DEFAULTS["maxSpatialDecaySlopeExp"] * 2, 0.05]  # out of the exponential band
    assert DEFAULTS["maxSpatialDecaySlopeExp"] * 2 > DEFAULTS["minSpatialDecaySlope"]  # and passing the linear test
    for decay, linear, exponential in ((2, 1, True), (3, 1, False), (True, 2, True), (np.int64(2), True, True),
                                       (1, 1, False)):
        params = {**SAVED_DEFAULTS, "computeSpatialDecay": decay, "spDecayLinFit": linear}
        explanation = ours_python(metrics, params)[1]
        theirs = bombcell_labels(metrics, params)
        assert list(explanation.rule_labels) == theirs, (decay, linear)
        assert (theirs[0] == "NOISE") == exponential and theirs[1] != "NOISE", (decay, linear, theirs)


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



def test_a_text_column_bombcell_compares_is_refused_in_one_line_naming_the_file_and_column(tmp_path):
    metrics, params = float32_at_the_threshold()
    metrics["presenceRatio"] = ["0.9", "n/a"]  # Bombcell's `presenceRatio < minPresenceRatio` raises on it
    with pytest.raises(TypeError):
        bombcell_labels(metrics, params)
    bombcell = tmp_path / "ks" / "bombcell"
    bombcell.mkdir(parents=True)
    metrics.assign(phy_clusterID=[0, 1]).to_parquet(bombcell / METRICS_FILE)
    pd.DataFrame([params]).to_parquet(bombcell / PARAMS_FILE)
    with pytest.raises(BombcellResultsError) as refused:
        explain_folder(tmp_path / "ks")
    message = str(refused.value)
    assert message.startswith(f"{bombcell / METRICS_FILE}: column presenceRatio holds text (e.g. ")
    assert "\n" not in message


def test_a_text_threshold_of_a_metric_the_table_has_is_refused_in_one_line_naming_the_file(tmp_path):
    thresholds = bombcell_get_default_thresholds()
    thresholds["noise"]["exp_decay"]["less"] = "0.1"
    metrics = pd.DataFrame({"exp_decay": [0.05, 0.5], "num_spikes": [1000, 10]}, index=pd.Index([0, 1], name="unit_id"))
    with pytest.raises(TypeError):  # numpy's UFuncTypeError
        spikeinterface_labels(metrics, thresholds)
    results = tmp_path / "bombcell"
    results.mkdir()
    metrics.to_csv(results / SI_WIDE_FILE)
    (results / THRESHOLDS_FILE).write_text(json.dumps(thresholds))
    with pytest.raises(BombcellResultsError) as refused:
        explain_folder(tmp_path)
    assert str(refused.value).startswith(f"{results / THRESHOLDS_FILE}: threshold noise.exp_decay.less is '0.1', "
                                         "not a number")


# ----------------------------------------------------------------------------------------------------------
# Random tables: every dtype; values on a threshold and one step either side of it in the column's own
# precision, NaN, inf, pandas' NA; missing, extra and duplicated columns; thresholds and switches of every kind.
# Each goes through the loader's steps (its repair, its refusal) into the engine, and to the classifier itself.

FOLDER = Path("results")  # the folder the loader read them from: its refusals name the files in it
FLOATS = ("float64", "float32", "float16")
INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMPY_DTYPES = FLOATS * 5 + INTEGERS + ("bool",)
NULLABLE = ("Float64", "Float32", "Int64", "Int8", "UInt16", "boolean")
ARROW = ("float32[pyarrow]", "float64[pyarrow]", "int64[pyarrow]")
UNREADABLE = ("object", "str", "text cell")  # numbers as Python objects, a string column, one text cell in floats
MODES = {  # kinds of table: (probability, dtypes, fractions of pandas' NA in nullable and arrow columns)
    "numpy": (0.55, NUMPY_DTYPES, (0.0,)),
    "nullable": (0.25, NUMPY_DTYPES + NULLABLE * 2 + ARROW * 2, (0.0, 0.05)),
    "damaged": (0.2, NUMPY_DTYPES + NULLABLE + ARROW, (0.0, 0.05)),  # and unreadable columns, thresholds, switches
}
UNREAD = "firing_rate"  # a column no rule reads


def precision(dtype: str) -> np.dtype:
    """The numpy dtype of a column's values (float64 for integer and boolean columns, whose steps are 1)."""
    name = dtype.split("[")[0].lower()
    return np.dtype(name) if name in FLOATS else np.dtype("float64")


def on_or_beside(thresholds: np.ndarray, steps: np.ndarray, dtype: str) -> np.ndarray:
    """Each threshold in ``dtype``'s precision, or the next value up or down in it (1 for integer columns)."""
    if dtype.split("[")[0].lower() in FLOATS:
        kind = precision(dtype)
        with np.errstate(over="ignore"):
            on = thresholds.astype(kind)
        beside = np.nextafter(on, np.where(steps > 0, np.inf, -np.inf).astype(kind))
        return np.where(steps == 0, on, beside).astype(float)
    return np.round(thresholds) + steps


def values_about(rng, thresholds: list, n: int, dtype: str) -> np.ndarray:
    """float64 values about ``thresholds``: on one or one step beside it, spread about them, NaN, inf, specials."""
    finite = [float(t) for t in thresholds if number(t) and np.isfinite(float(t))] or [1.0]
    centres = rng.choice(finite, n)
    kind = rng.choice(5, n, p=[0.35, 0.35, 0.1, 0.05, 0.15])
    values = centres + rng.uniform(-1, 1, n) * (np.abs(centres) + 1)
    values = np.where(kind == 0, on_or_beside(centres, rng.choice([-1, 0, 1], n), dtype), values)
    values[kind == 2] = np.nan
    values[kind == 3] = rng.choice([np.inf, -np.inf], int((kind == 3).sum()))
    values[kind == 4] = rng.choice([0.0, 1.0, 2.0, -1.0, 1e6, -1e6], int((kind == 4).sum()))
    return values


def integers(rng, values: np.ndarray, dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    low, high = max(info.min, -(2**53)), min(info.max, 2**53)
    values = np.where(np.isfinite(values), values, rng.choice([0.0, low, high], len(values)))
    out = np.clip(np.round(values), low, high).astype(dtype)
    extreme = rng.random(len(values)) < 0.02
    out[extreme] = rng.choice(np.array([info.min, info.max], dtype=dtype), int(extreme.sum()))
    return out


def typed(rng, values: np.ndarray, dtype: str, na: float):
    """``values`` as a column of ``dtype``, with a fraction ``na`` of pandas' NA where the dtype has one."""
    n = len(values)
    missing = rng.random(n) < na
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype in FLOATS:
            return values.astype(dtype)
        if dtype in INTEGERS:
            return integers(rng, values, dtype)
        if dtype == "bool":
            return np.nan_to_num(values) > 0.5
        if dtype in ("Float64", "Float32"):
            return pd.arrays.FloatingArray(values.astype(precision(dtype)), missing)  # NaN and NA both
        if dtype in ("Int64", "Int8", "UInt16"):
            return pd.arrays.IntegerArray(integers(rng, values, dtype.lower()), missing)
        if dtype == "boolean":
            return pd.arrays.BooleanArray(np.nan_to_num(values) > 0.5, missing)
        if dtype in ARROW:
            data = integers(rng, values, "int64") if dtype.startswith("int") else values.astype(precision(dtype))
            return pd.arrays.ArrowExtensionArray(pa.array(data, mask=missing))
    if dtype == "str":
        return pd.array([f"{v}" for v in values], dtype="str")
    cells = values.astype(object)
    cells[missing] = None
    if dtype == "text cell":
        cells[rng.integers(n)] = rng.choice(["n/a", "0.3", ""])
    return cells


def number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def pick(rng, options: list):
    return options[rng.integers(len(options))]


def threshold_value(rng, default):
    """A threshold as a parameter file or a user may give it: Python and NumPy numbers, NaN, inf, None, numeric
    text (the loader reads it as a number)."""
    base = float(default) if number(default) and np.isfinite(default) else 1.0
    x = base * rng.uniform(0.5, 1.5) if rng.random() < 0.6 else base
    return pick(rng, [x] * 8 + [round(x), np.float64(x), np.float32(x), np.nan, np.inf, -np.inf, None, f"{x}"])


def switch_value(rng, damaged: bool):
    # 2 and 3: Python Bombcell's `computeSpatialDecay & spDecayLinFit` is bitwise (2 & 1 is 0: the exponential test)
    options = [True, False] * 4 + [0, 1, 2, 3, np.int64(2), np.True_, np.False_, "true", "false", "1", "0", "on", "off"]
    return pick(rng, options + ([0.0, 1.0, "abc", "yes"] if damaged else []))


def choose_mode(rng) -> tuple[str, tuple, float]:
    """A kind of table, its dtypes, and its fraction of pandas' NA."""
    mode = str(rng.choice(list(MODES), p=[p for p, _, _ in MODES.values()]))
    _, dtypes, na = MODES[mode]
    return mode, dtypes, float(rng.choice(na))


def damage_dtypes(rng, dtypes: dict[str, str], mode: str) -> None:
    """In half the damaged tables, one or two columns a classifier cannot compare (text, Python objects)."""
    if mode == "damaged" and rng.random() < 0.5:
        for name in rng.choice(sorted(dtypes), int(rng.integers(1, 3)), replace=False):
            dtypes[str(name)] = str(pick(rng, UNREADABLE))


def reshape(rng, metrics: pd.DataFrame, mode: str, names: list[str]) -> pd.DataFrame:
    """Missing columns now and then; extra ones; a second column of the name of a metric, or of one no rule
    reads."""
    if rng.random() < 0.08:
        metrics = metrics.drop(columns=list(rng.choice(names, int(rng.integers(1, 3)), replace=False)))
    metrics[UNREAD] = rng.normal(size=len(metrics))
    if rng.random() < (0.4 if mode == "damaged" else 0.1):
        name = str(rng.choice(names + [UNREAD] * len(names)))
        metrics.insert(int(rng.integers(metrics.shape[1] + 1)), name, rng.normal(1, 2, len(metrics)),
                       allow_duplicates=True)
    return metrics


# -- Python Bombcell -----------------------------------------------------------------------------------------

PYTHON_RULES = rules_for(PYTHON)
PARAMS_OF = {m: [r.param for r in PYTHON_RULES if r.metric == m and r.param] for m in METRICS}


def python_table(rng) -> tuple[pd.DataFrame, dict, str]:
    mode, dtypes, na = choose_mode(rng)
    damaged = mode == "damaged"
    params = dict(DEFAULTS)
    for name in thresholds_for(PYTHON):
        if rng.random() < 0.5:
            params[name] = threshold_value(rng, params.get(name))
    for name in switches_for(PYTHON):
        params[name] = switch_value(rng, damaged)
    if damaged and rng.random() < 0.2:
        params[str(rng.choice(thresholds_for(PYTHON)))] = "abc"
    if rng.random() < (0.3 if damaged else 0.05):
        for name in rng.choice(sorted(thresholds_for(PYTHON) + switches_for(PYTHON)), int(rng.integers(1, 4)),
                               replace=False):
            params.pop(str(name), None)
    known = repair_parameters(params, SWITCHES, THRESHOLDS)[0]
    n = int(rng.integers(1, 250))
    column_dtypes = {metric: str(pick(rng, dtypes)) for metric in METRICS}
    damage_dtypes(rng, column_dtypes, mode)
    columns = {}
    for metric, dtype in column_dtypes.items():
        values = values_about(rng, [known.get(p, DEFAULTS.get(p)) for p in PARAMS_OF[metric]], n, dtype)
        if metric == "nSpikes":
            values[rng.random(n) < 0.1] = 0.0  # empty units
        columns[metric] = typed(rng, values, dtype, na)
    status = rng.choice([0.0, 1.0, -1.0, np.nan], n)
    columns["RPV_status"] = typed(rng, status, str(pick(rng, ["float64", "int8", "Float64", "str", "object"])), na)
    columns["phy_clusterID"] = np.arange(n)
    return reshape(rng, pd.DataFrame(columns), mode, list(METRICS)), params, mode


def ours_python(metrics: pd.DataFrame, params: dict):
    """The explanation of load_results' steps after reading (its parameter repair, its refusal), or the refusal."""
    params = repair_parameters(params, SWITCHES, THRESHOLDS)[0]
    try:
        check_comparable(FOLDER / METRICS_FILE, FOLDER / PARAMS_FILE, metrics, params, PYTHON)
    except BombcellResultsError as exc:
        return params, None, str(exc)
    return params, explain(BombcellResults(FOLDER, params, metrics, np.arange(len(metrics))), check=False), None


def bombcell_comparison(metrics: pd.DataFrame, params: dict, rule) -> tuple[np.ndarray, np.ndarray]:
    """The rule's comparison as get_quality_unit_type makes it (pandas, on the column), and where it is defined
    (pandas' NA decides nothing)."""
    column = metrics[rule.metric]
    if rule.op == "isnan":
        result = np.isnan(column)
    else:
        result = column > params[rule.param] if rule.op == ">" else column < params[rule.param]
    return as_bools(pd.Series(result))


def as_bools(result: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A comparison's result as numpy booleans, and where it is not pandas' NA."""
    if result.dtype == bool:
        return result.to_numpy(), np.ones(len(result), dtype=bool)
    defined = result.notna().to_numpy()
    return result.fillna(False).to_numpy(dtype=bool), defined


def na_as_nan(column: pd.Series, classifier: str = PYTHON) -> np.ndarray:
    """A nullable or pyarrow column as the rules read it: numpy, NaN for pandas' NA, in the precision the
    classifier compares it in (pandas compares a nullable column's data, pyarrow a float one in float64;
    SpikeInterface its to_numpy())."""
    if not column.isna().any() and not isinstance(column.dtype, pd.ArrowDtype):
        return column.array._data
    kind = column.dtype.numpy_dtype if hasattr(column.dtype, "numpy_dtype") else np.dtype("float64")
    arrow = isinstance(column.dtype, pd.ArrowDtype)
    own_precision = kind.kind == "f" and (classifier == SPIKEINTERFACE or not arrow)
    return column.to_numpy(dtype=kind if own_precision else np.dtype("float64"), na_value=np.nan)


def pandas_columns(metrics: pd.DataFrame, with_na: bool = False) -> list[str]:
    """The nullable and pyarrow columns (those with pandas' NA in them)."""
    out = []
    for name in dict.fromkeys(metrics.columns):
        column = metrics[name]
        if isinstance(column, pd.Series) and isinstance(column.dtype, pd.api.extensions.ExtensionDtype) \
                and not pd.api.types.is_string_dtype(column.dtype) and (not with_na or column.isna().any()):
            out.append(name)
    return out


LINEAR_FIT = ("computeSpatialDecay", "spDecayLinFit")


def no_backfill(params: dict) -> list[str]:
    """The parameters Bombcell's back-fill refuses to do without (its KeyError), used by a rule or not."""
    return [name for name in _CLASSIFICATION_KEYS if name not in params and name not in _BACKCOMPAT_DEFAULTS]


def as_the_rules_read_it(metrics: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, dict]:
    """The table and parameters with what makes get_quality_unit_type raise, though its rules say what it
    means, replaced by what it means: nullable and pyarrow columns by numpy ones (pandas' NA by NaN), a missing
    column by NaN, the two switches it combines with `&`, where they are floats or text, by their truth, a
    threshold with no back-fill default by NaN (the units whose label depends on it are undetermined: their
    options must hold Bombcell's label)."""
    metrics = metrics.copy()
    for name in pandas_columns(metrics):
        metrics[name] = na_as_nan(metrics[name])
    for name in set(METRICS) - set(metrics.columns):
        metrics[name] = np.nan
    # a float or text switch by its truth (`&` raises on it); integers stay: `&` is bitwise on them (2 & 1 is 0)
    params = {**params, **{name: bool(params[name]) for name in LINEAR_FIT
                           if name in params and not isinstance(params[name], bool | int | np.integer | np.bool_)}}
    return metrics, {**params, **dict.fromkeys(no_backfill(params), np.nan)}


# Where get_quality_unit_type raises on something its rules define, and we label (the rules' label): why, and
# the exception it raises then (its type, and one of these in its message).
BOMBCELL_RAISES = {
    "pandas' NA reaches a mask, an `if` or an `&`": (TypeError | IndexError, ("only integers, slices", "of NA is",
                                                                              "'NAType'")),
    "a metric column the rules read is missing": (KeyError, ("",)),
    "a nullable or pyarrow column is compared with a None threshold": (TypeError | IndexError, (
        "and 'NoneType'", "of NA is", "only integers, slices")),
    "its `computeSpatialDecay & spDecayLinFit` on a float or text switch": (TypeError, ("for &: 'float'",
                                                                                         "for &: 'str'",
                                                                                         "and 'float'", "and 'str'")),
    "a threshold with no back-fill default is missing": (KeyError, ("no back-compatibility default",)),
}


def why_bombcell_raises(exc: Exception, metrics: pd.DataFrame, params: dict, explanation) -> str | None:
    conditions = {
        "pandas' NA reaches a mask, an `if` or an `&`": bool(pandas_columns(metrics, with_na=True)),
        "a metric column the rules read is missing": str(exc).strip("'") in set(METRICS) - set(metrics.columns),
        "a nullable or pyarrow column is compared with a None threshold":
            bool(pandas_columns(metrics)) and None in params.values(),
        "its `computeSpatialDecay & spDecayLinFit` on a float or text switch":
            any(isinstance(params.get(name), float | str) for name in LINEAR_FIT),
        "a threshold with no back-fill default is missing": bool(no_backfill(params)),
    }
    for why, (kind, fragments) in BOMBCELL_RAISES.items():
        if isinstance(exc, kind) and any(f in str(exc) for f in fragments) and conditions[why]:
            return why
    return None


def comparison_differences(explanation, comparison) -> tuple[list[str], int]:
    """Comparisons where the engine's differs from the classifier's own, and how many the column's precision
    decided (float64 would have given the other answer)."""
    differences, by_precision = [], 0
    for j, rule in enumerate(explanation.rules):
        if j in explanation.inactive or rule.param in explanation.missing_thresholds:
            continue
        theirs, defined = comparison(rule)
        kept = explanation.applies[:, j] & ~explanation.exempt[:, j]
        wrong = (explanation.holds[:, j] != (theirs & kept)) & defined
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            differences.append(f"{rule.name}: {wrong.sum()} unit(s), e.g. value {explanation.values[row, j]!r} "
                               f"threshold {explanation.thresholds[j]!r}: ours {explanation.holds[row, j]}")
        if rule.op != "isnan":
            with np.errstate(invalid="ignore"):
                wide = explanation.values[:, j] > explanation.thresholds[j] if rule.op == ">" else \
                    explanation.values[:, j] < explanation.thresholds[j]
            by_precision += int(((wide != theirs) & defined & kept).sum())
    return differences, by_precision


def differences(where: str, explanation, theirs, judge: str, comparison) -> tuple[list[str], int]:
    """The labels and comparisons where the engine differs from the classifier (``judge``), each said with
    ``where``, and how many comparisons the column's precision decided."""
    rows = same_labels(explanation.rule_labels, theirs, explanation.undetermined)
    found = [f"{where}: {len(rows)} label(s) differ, e.g. row {rows[0]}: ours {explanation.rule_labels[rows[0]]!r}, "
             f"{judge} {theirs[rows[0]]!r}"] if rows else []
    compared, decided = comparison_differences(explanation, comparison)
    return found + [f"{where}: {d}" for d in compared], decided


def summarise(classifier: str, tables: int, started: float, outcomes: Counter, units: Counter,
              by_precision: int) -> str:
    summary = "; ".join(f"{outcome}: {outcomes[outcome]} tables, {units[outcome]} units" for outcome in outcomes)
    print(f"\n{classifier}, {tables} tables in {time.perf_counter() - started:.1f} s: {summary}; "
          f"{by_precision} comparisons decided by the column's precision")
    return summary


def same_labels(ours, theirs, undetermined) -> list[int]:
    """Rows where the labels differ (an undetermined one only if the classifier's is none of its options)."""
    return [row for row, (a, b) in enumerate(zip(ours, theirs))
            if a != b and not (undetermined[row] and b in str(a).split(" or "))]


def one_line_naming(message: str, *paths: Path) -> bool:
    return "\n" not in message and any(message.startswith(f"{path}: ") for path in paths)


PYTHON_SEEDS = range(250)


def test_random_tables_get_python_bombcells_labels_and_comparisons():
    started = time.perf_counter()
    outcomes, units, problems, by_precision = Counter(), Counter(), [], 0
    for seed in PYTHON_SEEDS:
        rng = np.random.default_rng(seed)
        metrics, raw_params, mode = python_table(rng)
        params, explanation, refusal = ours_python(metrics, raw_params)  # any other exception fails the test
        try:
            theirs, raised = bombcell_labels(metrics, params), None
        except Exception as exc:
            theirs, raised = None, exc
        if raised is None and refusal is not None:
            problems.append(f"seed {seed}: refused what Bombcell labels: {refusal}")
            continue
        if refusal is not None:
            outcome = "both refuse (Bombcell raises; a one-line error naming the file)"
            if not one_line_naming(refusal, FOLDER / METRICS_FILE, FOLDER / PARAMS_FILE):
                problems.append(f"seed {seed}: refusal not one line naming the file: {refusal!r}")
        elif raised is None:
            outcome = "both label"
            judged, judged_params = metrics, params
        else:
            why = why_bombcell_raises(raised, metrics, params, explanation)
            if why is None:
                problems.append(f"seed {seed}: Bombcell raises {type(raised).__name__}: {raised}; we label")
                continue
            outcome = f"Bombcell raises ({why}); we give the label its rules imply"
            judged, judged_params = as_the_rules_read_it(metrics, params)
            try:
                theirs = bombcell_labels(judged, judged_params)
            except Exception as exc:
                problems.append(f"seed {seed}: Bombcell raises {type(raised).__name__} ({why}) and, on the table "
                                f"as its rules read it, {type(exc).__name__}: {exc}")
                continue
        outcomes[outcome] += 1
        units[outcome] += len(metrics)
        if explanation is None:
            continue
        bombcells = check_parameter_fields(judged_params, verbose=False)
        found, decided = differences(f"seed {seed} ({mode})", explanation, theirs, "Bombcell",
                                     lambda rule: bombcell_comparison(judged, bombcells, rule))  # noqa: B023
        problems += found
        by_precision += decided
    summary = summarise("Python Bombcell", len(PYTHON_SEEDS), started, outcomes, units, by_precision)
    assert not problems, f"{len(problems)} problem(s): " + " | ".join(problems[:10])
    assert sum(units[o] for o in units if "refuse" not in o) >= 20_000, summary
    assert by_precision >= 100, summary


# -- SpikeInterface ------------------------------------------------------------------------------------------


def spikeinterface_table(rng) -> tuple[pd.DataFrame, dict, bool, str]:
    """SpikeInterface's random thresholds and metrics (test_spikeinterface_rules), with values on each threshold
    and one step beside it in the column's own precision, every dtype, and thresholds of every kind."""
    mode, dtypes, na = choose_mode(rng)
    thresholds = random_thresholds(rng)
    n = int(rng.integers(1, 250))
    metrics = random_metrics(rng, thresholds, n)
    metrics = reshape(rng, metrics, mode, list(metrics.columns))
    sides = {}
    for section in thresholds.values():
        for metric, threshold in section.items():
            sides.setdefault(metric, []).extend(v for v in (threshold.get("greater"), threshold.get("less"))
                                                if v is not None)
    column_dtypes = {metric: str(pick(rng, dtypes)) for metric in dict.fromkeys(metrics.columns)}
    damage_dtypes(rng, column_dtypes, mode)
    for metric, dtype in column_dtypes.items():
        if list(metrics.columns).count(metric) > 1:
            continue
        values = metrics[metric].to_numpy(dtype=float, copy=True)
        on = (rng.random(n) < 0.3) & bool(sides.get(metric))
        if on.any():
            centres = rng.choice(sides[metric], int(on.sum())).astype(float)
            values[on] = on_or_beside(centres, rng.choice([-1, 0, 1], int(on.sum())), dtype)
            values[on] *= rng.choice([1.0, -1.0], int(on.sum()), p=[0.8, 0.2])  # abs thresholds
        metrics[metric] = typed(rng, values, dtype, na)
    for section in thresholds.values():
        for threshold in section.values():
            for side in ("greater", "less"):
                value = threshold.get(side)
                if value is not None and rng.random() < 0.15:
                    threshold[side] = pick(rng, [round(value), float(round(value)), np.inf, -np.inf, np.nan, True])
    damage_thresholds(rng, thresholds, set(metrics.columns), mode)
    return metrics, thresholds, bool(rng.random() < 0.5), mode


def damage_thresholds(rng, thresholds: dict, columns: set[str], mode: str) -> None:
    """Thresholds JSON may hold: text, a wrong key, a metric entry that is not a dict, an empty section, for
    metrics the table has (bombcell_label_units raises) or lacks (it drops them unread)."""
    absent = {"not_computed": {"greater": "abc", "less": None}, "nor_this": 3, "nor_that": {"grater": 1}}
    if rng.random() < 0.15:
        thresholds["mua"].update({k: v for k, v in absent.items() if rng.random() < 0.5})
    if mode != "damaged":
        return
    present = [(s, m) for s, section in thresholds.items() for m in section if m in columns]
    if present and rng.random() < 0.3:
        section, metric = present[rng.integers(len(present))]
        thresholds[section][metric] = pick(rng, [{**thresholds[section][metric], "greater": "abc"},
                                                 {**thresholds[section][metric], "less": "5"},
                                                 {**thresholds[section][metric], "grater": 1}, 3])
    if rng.random() < 0.05:
        thresholds[str(rng.choice(["noise", "mua", "non-somatic"]))] = None


def ours_spikeinterface(metrics: pd.DataFrame, thresholds: dict, split: bool):
    """The explanation of load_spikeinterface_results' steps after reading, or its refusal."""
    try:
        results = run_results(FOLDER, metrics.reset_index(drop=True), thresholds, split, np.arange(len(metrics)),
                              [])
    except BombcellResultsError as exc:
        return None, str(exc)
    return explain(results, check=False), None


def spikeinterface_comparison(metrics: pd.DataFrame, thresholds: dict, rule) -> tuple[np.ndarray, np.ndarray]:
    """The rule's comparison as threshold_metrics_label_units makes it (numpy, on ``to_numpy()``): a metric fails
    outside its inclusive band, and NaN is NaN (pandas' NA too: where it reaches np.isnan it raises)."""
    values = metrics[rule.metric].to_numpy()
    if values.dtype == object:  # a nullable boolean column with NA
        values = metrics[rule.metric].to_numpy(dtype=float, na_value=np.nan)
    values = np.abs(values) if rule.absolute else values
    missing = np.isnan(values)
    everywhere = np.ones(len(values), dtype=bool)
    if rule.op == "isnan":
        return missing, everywhere
    section, metric, side = rule.param.split(".")
    threshold = thresholds[section][metric][side]
    with np.errstate(invalid="ignore", over="ignore"):
        passes = values >= threshold if side == "greater" else values <= threshold
    return ~passes & ~missing, everywhere


SPIKEINTERFACE_SEEDS = range(10_000, 10_250)
# Where bombcell_label_units raises on something its rules define, and we label (the rules' label): pandas' NA
# among the units it reads in a nullable boolean column (its to_numpy() is then an object array, which np.isnan
# refuses; without NA there it reads booleans). Judged on the table with NA as NaN.
SPIKEINTERFACE_RAISES = "bombcell_label_units raises (pandas' NA in a nullable boolean column); we give the label " \
                        "its rules imply"


def test_random_tables_get_spikeinterfaces_labels_and_comparisons():
    started = time.perf_counter()
    outcomes, units, problems, by_precision = Counter(), Counter(), [], 0
    for seed in SPIKEINTERFACE_SEEDS:
        rng = np.random.default_rng(seed)
        metrics, thresholds, split, mode = spikeinterface_table(rng)
        explanation, refusal = ours_spikeinterface(metrics, thresholds, split)  # any other exception fails
        try:
            theirs, raised = spikeinterface_labels(metrics, thresholds, split), None
        except Exception as exc:
            theirs, raised = None, exc
        if raised is None and refusal is not None:
            problems.append(f"seed {seed}: refused what bombcell_label_units labels: {refusal}")
            continue
        judged = metrics
        if raised is not None and refusal is None:
            if not (isinstance(raised, TypeError) and "ufunc 'isnan' not supported" in str(raised)
                    and pandas_columns(metrics, with_na=True)):
                problems.append(f"seed {seed}: bombcell_label_units raises {type(raised).__name__}: {raised}; we "
                                "label")
                continue
            judged = metrics.copy()
            for name in pandas_columns(metrics, with_na=True):
                judged[name] = na_as_nan(judged[name], SPIKEINTERFACE)
            theirs = spikeinterface_labels(judged, thresholds, split)
        outcome = "both label" if raised is None else SPIKEINTERFACE_RAISES if refusal is None else \
            "both refuse (bombcell_label_units raises; a one-line error naming the file)"
        outcomes[outcome] += 1
        units[outcome] += len(metrics)
        if refusal is not None:
            if not one_line_naming(refusal, FOLDER / SI_WIDE_FILE, FOLDER / THRESHOLDS_FILE):
                problems.append(f"seed {seed}: refusal not one line naming the file: {refusal!r}")
            continue
        found, decided = differences(f"seed {seed} ({mode})", explanation, theirs, "bombcell_label_units",
                                     lambda rule: spikeinterface_comparison(judged, thresholds, rule))  # noqa: B023
        problems += found
        by_precision += decided
    summary = summarise("SpikeInterface", len(SPIKEINTERFACE_SEEDS), started, outcomes, units, by_precision)
    assert not problems, f"{len(problems)} problem(s): " + " | ".join(problems[:10])
    assert units["both label"] >= 20_000, summary
    assert by_precision >= 100, summary
