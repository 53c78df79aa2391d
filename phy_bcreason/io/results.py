"""What every dialect's loader gives back, and the checks they share.

Whoever wrote a results folder (Python or MATLAB Bombcell, SpikeInterface's `bombcell_label_units`), one
`BombcellResults` comes out: the classifier that labelled the run, its parameters, its metrics under the names
the classifier reads, each row's Phy cluster id and the labels the run saved. Every failure is a
`BombcellResultsError` whose message names the file and what is wrong with it, in one line; problems that leave
the results usable are one-line `BombcellResults.notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import COLUMN, unreadable
from ..core.errors import UserError, listed
from ..core.rules import CLASSIFIER_TITLES, PYTHON
from .parquet import read_tables


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
    tauR_columns: tuple[str, ...] | None = None  # the column names of the run's per-tauR table, if it has one

    def saved_labels_for(self, cluster_ids) -> list[str | None]:
        saved = self.saved_labels or {}
        return list(map(saved.get, np.asarray(cluster_ids).astype(np.int64).tolist()))


def checked(path: Path, table: pd.DataFrame | str | None = None) -> pd.DataFrame:
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


def numbers(column: pd.Series) -> np.ndarray:
    """A column as floats, NaN where a cell is not a number."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def check_has_rows(path: Path, metrics: pd.DataFrame) -> None:
    if len(metrics) == 0:
        raise BombcellResultsError(f"{path}: the metrics table has no rows")


def cluster_ids_of(path: Path, metrics: pd.DataFrame, notes: list[str]) -> np.ndarray:
    """Phy ids from `phy_clusterID` (0-based, also in MATLAB-written tables beside the 1-based
    `clusterID`), else row i is cluster i."""
    if "phy_clusterID" not in metrics.columns:
        notes.append(f"{path} has no phy_clusterID column: row i is taken as cluster i")
        return np.arange(len(metrics), dtype=np.int64)
    ids = numbers(metrics["phy_clusterID"])
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
    n_spikes = numbers(metrics[count])
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
    n_spikes = numbers(metrics[count]) if count in metrics.columns else np.full(len(metrics), np.nan)
    stray = cluster_ids[~np.isin(cluster_ids, ks_ids) & (n_spikes != 0)]
    if len(stray):
        notes.append(f"{_rows(len(stray), 'result row has a cluster id', 'result rows have cluster ids')} not in "
                     f"{spike_file.name} ({listed(stray.tolist(), 5)})")
    unlabelled = np.setdiff1d(ks_ids, cluster_ids)
    if len(unlabelled):
        notes.append(f"{_rows(len(unlabelled), 'cluster', 'clusters')} in {spike_file.name} "
                     f"{'has' if len(unlabelled) == 1 else 'have'} no Bombcell row ({listed(unlabelled.tolist(), 5)})")


def check_comparable(metrics_path: Path, params_path: Path, metrics: pd.DataFrame, params: dict, classifier: str,
                     rules: tuple | None = None) -> None:
    """Refuse a metric column or threshold the classifier reads under ``params`` but cannot compare (its own code
    raises there: a duplicated or text column, a text threshold), naming the file it is in. One it does not read
    (a rule switched off) is ignored, as the classifier ignores it."""
    problems = unreadable(metrics, params, classifier, rules)
    if problems:
        kind, name, why = problems[0]
        more = f" (and {_rows(len(problems) - 1, 'other', 'others')}: {listed([p[1] for p in problems[1:]], 5)})" \
            if len(problems) > 1 else ""
        raise BombcellResultsError(
            f"{metrics_path if kind == COLUMN else params_path}: {kind} {name} {why}{more}; "
            f"{CLASSIFIER_TITLES[classifier]} cannot compare it, so its labels cannot be explained: correct it, or "
            "re-run Bombcell")
