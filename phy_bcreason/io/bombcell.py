"""Bombcell's own results (Python or MATLAB Bombcell, any version since 0.40): the parquet tables it writes and
the labels it saved, read into one `BombcellResults`.

The classifier that labelled the run is recognised from the parameter and metric names (or forced); parameters
with damaged keys are repaired, and metrics renamed to the names the classifier reads. Reads only the parquet
and text tables, never the pickles in `for_GUI/`, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.backfill import OLD_NAMES, repair_parameters
from ..core.engine import inactive_reason
from ..core.errors import first_line
from ..core.rules import CLASSIFIER_TITLES, MATLAB, PYTHON, SWITCHES, THRESHOLDS, metrics_for, rules_for
from .kilosort import spike_counts
from .parquet import read_tables
from .results import (
    BombcellResults,
    BombcellResultsError,
    check_comparable,
    check_has_rows,
    check_same_sorting,
    check_unique_ids,
    checked,
    cluster_ids_of,
    note_id_differences,
    numbers,
)

METRICS_FILE = "templates._bc_qMetrics.parquet"
PARAMS_FILE = "_bc_parameters._bc_qMetrics.parquet"
# one column per refractory period of Bombcell's legacy test (named by it, in s); one column otherwise
PER_TAUR_FILE = "templates._bc_fractionRefractoryPeriodViolationsPerTauR.parquet"
# Labels Bombcell saved: MATLAB's table of every metric plus its label, and the column Phy reads.
MATLAB_LABELS_FILE = "templates._bc_qMetrics_all.csv"
PHY_LABELS_FILE = "cluster_bc_unitType.tsv"
LABEL_COLUMN = "bc_unitType"
SAVED_LABEL_COLUMNS = (LABEL_COLUMN, "cluster_id", "phy_clusterID")  # all the loader reads of those two files
# Names only one of the two Bombcells writes (qualityParamValues.m vs get_default_parameters).
MATLAB_MARKS = ("rpvMethod", "rawFile", "ephysMetaFile", "somatic", "saveMatFileForGUI", "spikeWidth",
                "standardSpikeWidth", "ssMin", "unitType_for_phy", "decompressData", "contaminationValues",
                "confidenceThreshold", "waveformBaselineWindowStart", "clusterID", "isSomatic")
PYTHON_MARKS = ("rpv_method", "raw_data_file", "ephys_meta_file", "spike_width", "ss_min", "unit_type_for_phy",
                "decompress_data", "contamination_values", "confidence_threshold", "keepUncertainRPVUnits",
                "tauR_reject", "joblib_n_jobs", "waveform_baseline_window_start", "RPV_status")
# Threshold names of Bombcell <= 0.31 (its parameters were snake_case; 0.40 switched to camelCase).
SNAKE_CASE_THRESHOLDS = ("max_n_peaks", "max_n_troughs", "min_wave_duration", "max_wave_duration",
                         "max_wave_baseline_fraction", "max_perc_spikes_missing", "min_num_spikes_total",
                         "max_RPV", "min_presence_ratio")


def recognise_classifier(params: dict, metrics: pd.DataFrame, forced: str | None = None) -> tuple[str, str]:
    """(classifier, evidence): who wrote these results, from the names only one of them writes."""
    if forced is not None:
        if forced not in (PYTHON, MATLAB):
            raise BombcellResultsError(f"--classifier {forced}: these are Bombcell's own results ({METRICS_FILE}); "
                                       f"expected {PYTHON} or {MATLAB}")
        return forced, "chosen by the user"
    names = set(params) | set(metrics.columns)
    matlab = [name for name in MATLAB_MARKS if name in names]
    python = [name for name in PYTHON_MARKS if name in names]
    if len(matlab) > len(python):
        return MATLAB, f"recognised from MATLAB names such as {', '.join(matlab[:3])}"
    if python:
        return PYTHON, f"recognised from Python names such as {', '.join(python[:3])}"
    return PYTHON, "no parameter or metric name tells which Bombcell wrote these results: taken as Python's " \
                   "(--classifier matlab to choose MATLAB's)"


def repair_metrics(path: Path, metrics: pd.DataFrame, classifier: str, notes: list[str]) -> pd.DataFrame:
    """Old metric names renamed, and the four waveform ratios recomputed from the peak and trough sizes when
    an old MATLAB table lacks them, as MATLAB's prettify_names does before classifying."""
    renames = {old: new for old, new in OLD_NAMES.items() if old in metrics.columns and new not in metrics.columns}
    if renames:
        metrics = metrics.rename(columns=renames)
        notes.append(f"{path}: old metric name(s) read as today's: "
                     f"{', '.join(f'{old} as {new}' for old, new in renames.items())}")
    sizes = ("mainPeak_before_size", "mainPeak_after_size", "mainTrough_size")
    if classifier == MATLAB and "mainPeakToTroughRatio" not in metrics.columns and \
            all(name in metrics.columns for name in sizes):
        before, after, trough = (numbers(metrics[name]) for name in sizes)
        with np.errstate(divide="ignore", invalid="ignore"):
            metrics = metrics.assign(
                scndPeakToTroughRatio=np.abs(after / trough),
                peak1ToPeak2Ratio=np.abs(before / after),
                mainPeakToTroughRatio=np.fmax(before, after) / trough,
                troughToPeak2Ratio=np.abs(trough / before))
        notes.append(f"{path}: no mainPeakToTroughRatio column (older MATLAB results): the four waveform ratios "
                     "are recomputed from the peak and trough sizes, as MATLAB Bombcell does")
    return metrics


def _label_text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


def _label_texts(values) -> list[str]:
    """`_label_text` of each cell; at C speed when every cell is text, as Bombcell writes its labels."""
    values = values.tolist()
    if set(map(type, values)) <= {str}:
        return list(map(str.strip, values))
    return list(map(_label_text, values))


def read_saved_labels(folder: Path, ks_dir: Path, metrics: pd.DataFrame, cluster_ids: np.ndarray,
                      notes: list[str]) -> tuple[dict[int, str] | None, Path | None]:
    """The labels Bombcell saved for its own rows: the metrics table's bc_unitType (Python), MATLAB's
    templates._bc_qMetrics_all.csv, else the Kilosort folder's cluster_bc_unitType.tsv (which Phy may have
    rewritten since: only the ids Bombcell's rows have are read). None when there are none."""
    if LABEL_COLUMN in metrics.columns:
        return dict(zip(cluster_ids.tolist(), _label_texts(metrics[LABEL_COLUMN]))), folder / METRICS_FILE
    candidates = ((folder / MATLAB_LABELS_FILE, ","), (ks_dir / PHY_LABELS_FILE, "\t"))
    for path, separator in candidates:
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path, sep=separator, keep_default_na=False, usecols=SAVED_LABEL_COLUMNS.__contains__)
        except Exception as exc:
            notes.append(f"{path}: cannot read ({first_line(exc)}); Bombcell's saved labels are not used")
            continue
        if LABEL_COLUMN not in table.columns:
            continue
        if "cluster_id" in table.columns:
            ids = table["cluster_id"]
        elif "phy_clusterID" in table.columns:
            ids = table["phy_clusterID"]
        elif len(table) == len(cluster_ids):
            ids = pd.Series(cluster_ids)
        else:
            continue
        ids = numbers(ids)
        keep = np.isfinite(ids) & np.isin(ids, cluster_ids)
        labels = dict(zip(ids[keep].astype(np.int64).tolist(), _label_texts(table[LABEL_COLUMN][keep])))
        return (labels, path) if labels else (None, None)
    return None, None


def check_not_snake_case(path: Path, params: dict) -> None:
    """Bombcell <= 0.31 wrote snake_case parameters (max_n_peaks...), which no rule here reads."""
    old = [k for k in SNAKE_CASE_THRESHOLDS if k in params]
    if old and not any(k in params for k in THRESHOLDS):
        raise BombcellResultsError(
            f"{path}: parameters written by Bombcell < 0.40 (snake_case names such as {old[0]}, none of the "
            "camelCase thresholds such as maxNPeaks); phy-bcreason follows the rules of Bombcell 0.93-0.94: "
            "re-run Bombcell 0.93 or later on this folder"
        )


def note_missing_metrics(path: Path, metrics: pd.DataFrame, classifier: str, params: dict, notes: list[str]) -> None:
    """Metrics the applied rules read but the table lacks (their rules show 'metric missing', as NaN); a metric
    only a switched-off rule reads is not expected (MATLAB writes distance metrics only when it computes them)."""
    unused = {rule.metric for rule in rules_for(classifier) if inactive_reason(rule, params)}
    used = {rule.metric for rule in rules_for(classifier) if not inactive_reason(rule, params)}
    missing = [name for name in metrics_for(classifier) if name not in metrics.columns
               and not (name in unused and name not in used)]
    if missing:
        notes.append(f"{path}: no column for metric(s) {', '.join(missing)}; the rules on them are shown as "
                     "'metric missing'")


def load_bombcell_results(folder: Path, ks_dir: Path, classifier: str | None = None) -> BombcellResults:
    """Parameters (one row) and metrics (one row per unit) of a Bombcell run, with each row's Phy id, the
    classifier that labelled it (``classifier`` forces one) and the labels it saved.

    ``ks_dir``'s spike_clusters.npy is compared with the results when it has one. Without a parameter file the
    results still open when Bombcell's saved labels are there.
    """
    metrics_path, params_path, per_tauR_path = folder / METRICS_FILE, folder / PARAMS_FILE, folder / PER_TAUR_FILE
    # read together (by one child process in Phy's); each file's error is raised where it was before
    tables = read_tables([metrics_path, params_path] + [per_tauR_path] * per_tauR_path.is_file()) \
        if metrics_path.is_file() and params_path.is_file() else None
    tauR_columns = tuple(str(name) for name in tables[2].columns) \
        if tables and len(tables) > 2 and not isinstance(tables[2], str) else None
    metrics = checked(metrics_path, tables[0] if tables else None)
    check_has_rows(metrics_path, metrics)
    notes: list[str] = []
    cluster_ids = cluster_ids_of(metrics_path, metrics, notes)
    check_unique_ids(metrics_path, cluster_ids)
    metrics = metrics.reset_index(drop=True)
    saved_labels, saved_file = read_saved_labels(folder, ks_dir, metrics, cluster_ids, notes)
    if not params_path.is_file() and saved_labels is None:
        raise BombcellResultsError(
            f"{params_path}: file not found, and no labels saved by Bombcell ({METRICS_FILE} has no {LABEL_COLUMN} "
            f"column, no {MATLAB_LABELS_FILE}, no {PHY_LABELS_FILE} in {ks_dir}): there is nothing to explain")
    if params_path.is_file():
        params_table = checked(params_path, tables[1] if tables else None)
        if len(params_table) == 0:
            raise BombcellResultsError(f"{params_path}: the parameter table has no row")
        params = params_table.iloc[0].to_dict()
        check_not_snake_case(params_path, params)
    else:
        params = {}
        notes.append(f"{params_path}: not found; the labels are the ones Bombcell saved ({saved_file.name}) and "
                     "no threshold is known, so no rule can be tested")
    classifier, evidence = recognise_classifier(params, metrics, classifier)
    params, repairs = repair_parameters(params, SWITCHES, THRESHOLDS)
    notes += [f"{params_path.name}: {repair}" for repair in repairs]
    metrics = repair_metrics(metrics_path, metrics, classifier, notes)
    if params:  # without them no rule compares anything
        check_comparable(metrics_path, params_path, metrics, params, classifier)
    note_missing_metrics(metrics_path, metrics, classifier, params, notes)
    spikes = spike_counts(ks_dir, notes)
    if spikes is not None:
        spike_file, ks_ids, ks_counts = spikes
        in_kept_time = not params or bool(params.get("computeTimeChunks", False))
        check_same_sorting(metrics_path, metrics, cluster_ids, spike_file, ks_ids, ks_counts, notes,
                           in_kept_time=in_kept_time)
        note_id_differences(metrics, cluster_ids, spike_file, ks_ids, notes)
    return BombcellResults(folder, params, metrics, cluster_ids, notes, classifier,
                           f"{CLASSIFIER_TITLES[classifier]}, {evidence}", saved_labels, saved_file,
                           tauR_columns=tauR_columns)
