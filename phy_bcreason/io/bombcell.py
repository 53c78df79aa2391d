"""Find and read a Bombcell results folder next to a Kilosort output; map its rows to Phy cluster ids.

Whoever wrote it (Python or MATLAB Bombcell, any version since 0.40), one `BombcellResults` comes out: the
classifier that labelled the run (recognised from the parameter and metric names, or forced), parameters
with damaged keys repaired, metrics under the names the classifier reads, and the labels Bombcell saved.

Reads only the parquet and text tables, never the pickles in `for_GUI/`, and writes nothing. Every failure
is a `BombcellResultsError` whose message names the file and what is wrong with it, in one line; problems
that leave the results usable are one-line `BombcellResults.notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.backfill import OLD_NAMES, repair_parameters
from ..core.engine import inactive_reason
from ..core.errors import UserError, first_line, listed
from ..core.rules import CLASSIFIER_TITLES, MATLAB, PYTHON, SWITCHES, THRESHOLDS, metrics_for, rules_for
from .parquet import read_tables

METRICS_FILE = "templates._bc_qMetrics.parquet"
PARAMS_FILE = "_bc_parameters._bc_qMetrics.parquet"
# Labels Bombcell saved: MATLAB's table of every metric plus its label, and the column Phy reads.
MATLAB_LABELS_FILE = "templates._bc_qMetrics_all.csv"
PHY_LABELS_FILE = "cluster_bc_unitType.tsv"
# What bombcell.run_bombcell_qc (SpikeInterface's bombcell_label_units) writes instead.
SI_WIDE_FILE = "labeling_results_wide.csv"
LABEL_COLUMN = "bc_unitType"
# Names only one of the two Bombcells writes (qualityParamValues.m vs get_default_parameters).
MATLAB_MARKS = ("rpvMethod", "rawFile", "ephysMetaFile", "somatic", "saveMatFileForGUI", "spikeWidth",
                "standardSpikeWidth", "ssMin", "unitType_for_phy", "decompressData", "contaminationValues",
                "confidenceThreshold", "waveformBaselineWindowStart", "clusterID", "isSomatic")
PYTHON_MARKS = ("rpv_method", "raw_data_file", "ephys_meta_file", "spike_width", "ss_min", "unit_type_for_phy",
                "decompress_data", "contamination_values", "confidence_threshold", "keepUncertainRPVUnits",
                "tauR_reject", "joblib_n_jobs", "waveform_baseline_window_start", "RPV_status")
CONVENTIONAL_DIRS = ("bombcell", "qMetrics")
# Where Phy takes each spike's cluster from (spike_templates.npy when a folder was never curated).
SPIKE_FILES = ("spike_clusters.npy", "spike_templates.npy")
# Threshold names of Bombcell <= 0.31 (its parameters were snake_case; 0.40 switched to camelCase).
SNAKE_CASE_THRESHOLDS = ("max_n_peaks", "max_n_troughs", "min_wave_duration", "max_wave_duration",
                         "max_wave_baseline_fraction", "max_perc_spikes_missing", "min_num_spikes_total",
                         "max_RPV", "min_presence_ratio")


class BombcellResultsError(UserError):
    """Bombcell results that cannot be found or read; the message is one line for the user."""


@dataclass
class BombcellResults:
    folder: Path
    params: dict
    metrics: pd.DataFrame
    cluster_ids: np.ndarray
    notes: list[str] = field(default_factory=list)
    classifier: str = PYTHON
    classifier_evidence: str = ""              # why we think so, for the user
    saved_labels: dict[int, str] | None = None  # cluster id -> the label Bombcell saved for it
    saved_labels_file: Path | None = None
    rules: tuple | None = None                  # the classifier's rows when they come from the run (SpikeInterface)
    thresholds: dict | None = None              # SpikeInterface's thresholds dict, as the run saved it

    def saved_labels_for(self, cluster_ids) -> list[str | None]:
        saved = self.saved_labels or {}
        return [saved.get(int(c)) for c in cluster_ids]


def holds_results(folder: Path) -> bool:
    """A native results folder (the metrics table) or SpikeInterface's (its wide labelling table)."""
    return (folder / METRICS_FILE).is_file() or (folder / SI_WIDE_FILE).is_file()


def find_bombcell_dir(ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> Path:
    """The Bombcell folder for ``ks_dir``: the explicit one, else `bombcell/`, `qMetrics/`, then any direct
    subfolder holding results; for a SpikeInterface `sorter_output/` folder, also `bombcell/` beside it."""
    if bombcell_dir is not None:
        folder = Path(bombcell_dir)
        if not holds_results(folder):
            raise BombcellResultsError(f"{folder / METRICS_FILE}: file not found (nor {SI_WIDE_FILE})")
        return folder
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise BombcellResultsError(f"{ks_dir}: not a folder")
    candidates = [ks_dir / name for name in CONVENTIONAL_DIRS]
    candidates += sorted(p for p in ks_dir.iterdir() if p.is_dir() and p not in candidates)
    if ks_dir.name == "sorter_output":
        candidates += [ks_dir.parent / name for name in CONVENTIONAL_DIRS]
    for folder in candidates:
        if holds_results(folder):
            return folder
    beside = ", or beside this sorter_output/ folder" if ks_dir.name == "sorter_output" else ""
    raise BombcellResultsError(
        f"{ks_dir}: no Bombcell results ({METRICS_FILE}, or SpikeInterface's {SI_WIDE_FILE}) in bombcell/, "
        f"qMetrics/ or any subfolder{beside}"
    )


def _checked(path: Path, table: pd.DataFrame | str | None = None) -> pd.DataFrame:
    """The table read from ``path`` (``table`` when already read: `read_tables`), or BombcellResultsError."""
    if table is None:
        if not path.is_file():
            raise BombcellResultsError(f"{path}: file not found")
        table = read_tables([path])[0]
    if isinstance(table, str):
        raise BombcellResultsError(f"{path}: cannot read as parquet ({table})")
    return table


def _rows(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


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
        before, after, trough = (_numbers(metrics[name]) for name in sizes)
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


def read_saved_labels(folder: Path, ks_dir: Path, metrics: pd.DataFrame, cluster_ids: np.ndarray,
                      notes: list[str]) -> tuple[dict[int, str] | None, Path | None]:
    """The labels Bombcell saved for its own rows: the metrics table's bc_unitType (Python), MATLAB's
    templates._bc_qMetrics_all.csv, else the Kilosort folder's cluster_bc_unitType.tsv (which Phy may have
    rewritten since: only the ids Bombcell's rows have are read). None when there are none."""
    if LABEL_COLUMN in metrics.columns:
        return dict(zip(cluster_ids.tolist(), map(_label_text, metrics[LABEL_COLUMN].tolist()))), \
            folder / METRICS_FILE
    candidates = ((folder / MATLAB_LABELS_FILE, ","), (ks_dir / PHY_LABELS_FILE, "\t"))
    for path, separator in candidates:
        if not path.is_file():
            continue
        try:
            table = pd.read_csv(path, sep=separator, keep_default_na=False)
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
        ids = _numbers(ids)
        keep = np.isfinite(ids) & np.isin(ids, cluster_ids)
        labels = dict(zip(ids[keep].astype(np.int64).tolist(), map(_label_text, table[LABEL_COLUMN][keep])))
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


def check_has_rows(path: Path, metrics: pd.DataFrame) -> None:
    if len(metrics) == 0:
        raise BombcellResultsError(f"{path}: the metrics table has no rows")


def cluster_ids_of(path: Path, metrics: pd.DataFrame, notes: list[str]) -> np.ndarray:
    """Phy ids from `phy_clusterID` (0-based, also in MATLAB-written tables beside the 1-based
    `clusterID`), else row i is cluster i."""
    if "phy_clusterID" not in metrics.columns:
        notes.append(f"{path} has no phy_clusterID column: row i is taken as cluster i")
        return np.arange(len(metrics), dtype=np.int64)
    ids = _numbers(metrics["phy_clusterID"])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(ids) | (ids != np.floor(ids))
    if bad.any():
        raise BombcellResultsError(f"{path}: phy_clusterID has empty or bad cells")
    return ids.astype(np.int64)


def check_unique_ids(path: Path, cluster_ids: np.ndarray) -> None:
    ids, counts = np.unique(cluster_ids, return_counts=True)
    duplicated = ids[counts > 1]
    if len(duplicated):
        raise BombcellResultsError(
            f"{path}: phy_clusterID has duplicate ids ({listed(duplicated.tolist(), 5)}); each cluster must have "
            "one row"
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


def spike_counts(ks_dir: Path, notes: list[str]) -> tuple[Path, np.ndarray, np.ndarray] | None:
    """(file, cluster ids, spike counts) of the Kilosort folder's spike_clusters.npy (else spike_templates.npy,
    as Phy reads them), or None when there is neither or it cannot be read. Memory-mapped, never unpickled."""
    path = next((ks_dir / name for name in SPIKE_FILES if (ks_dir / name).is_file()), None)
    if path is None:
        return None
    try:
        spikes = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False)).ravel()
        counts = np.bincount(spikes.astype(np.int64, copy=False))  # linear: this runs on Phy's start-up
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    except Exception as exc:
        notes.append(f"{path}: cannot read ({first_line(exc)}); cluster ids not checked against it")
        return None
    return path, ids, counts


def check_same_sorting(path: Path, metrics: pd.DataFrame, cluster_ids: np.ndarray, spike_file: Path,
                       ks_ids: np.ndarray, ks_counts: np.ndarray, notes: list[str], count: str = "nSpikes",
                       in_kept_time: bool = False) -> None:
    """Results of another sorting: Bombcell's nSpikes (counted after its duplicate-spike removal; ``count``
    names the column) is at most, and close to, the cluster's spike count. Refused when most clusters
    disagree, noted when a few have more spikes than they can. ``in_kept_time``: nSpikes counts only the time
    chunks Bombcell kept (computeTimeChunks, or a run whose parameters are unknown), so only more spikes than
    the cluster has is wrong."""
    if count not in metrics.columns:
        return
    n_spikes = _numbers(metrics[count])
    compared = np.isin(cluster_ids, ks_ids) & np.isfinite(n_spikes)
    ids, n = cluster_ids[compared], n_spikes[compared]
    count = ks_counts[np.searchsorted(ks_ids, ids)]
    wrong = (n > count) | (~in_kept_time & (n < 0.9 * count))
    if 2 * wrong.sum() > len(ids) > 0:
        i = int(np.flatnonzero(wrong)[0])
        raise BombcellResultsError(
            f"{path}: these results do not match this Kilosort folder ({wrong.sum()} of {len(ids)} clusters "
            f"have an nSpikes above, or more than 10% below, their spike count in {spike_file.name}, "
            f"e.g. cluster {ids[i]}: nSpikes {n[i]:g}, {count[i]} spikes)"
        )
    too_many = ids[n > count]
    if len(too_many):
        notes.append(f"{_rows(len(too_many), 'cluster has', 'clusters have')} more Bombcell nSpikes than spikes "
                     f"in {spike_file.name} ({listed(too_many.tolist(), 5)})")


def note_id_differences(metrics: pd.DataFrame, cluster_ids: np.ndarray, spike_file: Path, ks_ids: np.ndarray,
                        notes: list[str], count: str = "nSpikes") -> None:
    """Rows for clusters Phy does not have (e.g. merged or split since Bombcell ran; rows with nSpikes == 0
    are clusters Bombcell saw empty) and Phy clusters without a row."""
    n_spikes = _numbers(metrics[count]) if count in metrics.columns else np.full(len(metrics), np.nan)
    stray = cluster_ids[~np.isin(cluster_ids, ks_ids) & (n_spikes != 0)]
    if len(stray):
        notes.append(f"{_rows(len(stray), 'result row has a cluster id', 'result rows have cluster ids')} not in "
                     f"{spike_file.name} ({listed(stray.tolist(), 5)})")
    unlabelled = np.setdiff1d(ks_ids, cluster_ids)
    if len(unlabelled):
        notes.append(f"{_rows(len(unlabelled), 'cluster', 'clusters')} in {spike_file.name} "
                     f"{'has' if len(unlabelled) == 1 else 'have'} no Bombcell row ({listed(unlabelled.tolist(), 5)})")


def load_results(folder: str | Path, ks_dir: str | Path | None = None, classifier: str | None = None
                 ) -> BombcellResults:
    """Parameters (one row) and metrics (one row per unit) of a Bombcell run, with each row's Phy id, the
    classifier that labelled it (``classifier`` forces one) and the labels it saved.

    ``ks_dir`` is the Kilosort folder the results are for (default: the Bombcell folder's parent, where
    `find_bombcell_dir` finds it); its spike_clusters.npy is compared with the results when it has one.
    Without a parameter file the results still open when Bombcell's saved labels are there.
    """
    folder = Path(folder)
    ks_dir = Path(ks_dir) if ks_dir is not None else folder.parent
    metrics_path, params_path = folder / METRICS_FILE, folder / PARAMS_FILE
    if not metrics_path.is_file() and (folder / SI_WIDE_FILE).is_file():
        from .spikeinterface import load_spikeinterface_results

        return load_spikeinterface_results(folder, ks_dir, classifier)
    # read together (by one child process in Phy's); each file's error is raised where it was before
    tables = read_tables([metrics_path, params_path]) if metrics_path.is_file() and params_path.is_file() else None
    metrics = _checked(metrics_path, tables[0] if tables else None)
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
        params_table = _checked(params_path, tables[1] if tables else None)
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
    note_missing_metrics(metrics_path, metrics, classifier, params, notes)
    spikes = spike_counts(ks_dir, notes)
    if spikes is not None:
        spike_file, ks_ids, ks_counts = spikes
        in_kept_time = not params or bool(params.get("computeTimeChunks", False))
        check_same_sorting(metrics_path, metrics, cluster_ids, spike_file, ks_ids, ks_counts, notes,
                           in_kept_time=in_kept_time)
        note_id_differences(metrics, cluster_ids, spike_file, ks_ids, notes)
    return BombcellResults(folder, params, metrics, cluster_ids, notes, classifier,
                           f"{CLASSIFIER_TITLES[classifier]}, {evidence}", saved_labels, saved_file)
