"""Read what `bombcell.run_bombcell_qc` (SpikeInterface's `bombcell_label_units`) writes into a results folder.

`labeling_results_wide.csv` (one row per SpikeInterface unit: `label` and every metric), `thresholds.json` (the
run's thresholds: the rule table's data for this run) and `bombcell_config.json` (`split_non_somatic`). Unit ids
are mapped to Phy's cluster ids through `cluster_si_unit_ids.tsv` in an `export_to_phy` folder; a Kilosort
`sorter_output/` folder has the unit ids themselves. Writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import first_line, listed
from ..core.rules import (
    CLASSIFIER_TITLES,
    SI_SECTIONS,
    SPIKEINTERFACE,
    SPIKEINTERFACE_LABELS,
    SPLIT_SWITCHES,
    flatten_thresholds,
    spikeinterface_rules,
)
from .kilosort import spike_counts
from .results import (
    BombcellResults,
    BombcellResultsError,
    check_comparable,
    check_has_rows,
    check_same_sorting,
    check_unique_ids,
    note_id_differences,
)

# What bombcell.run_bombcell_qc (SpikeInterface's bombcell_label_units) writes instead of Bombcell's tables.
SI_WIDE_FILE = "labeling_results_wide.csv"
THRESHOLDS_FILE = "thresholds.json"
CONFIG_FILE = "bombcell_config.json"
UNIT_IDS_FILE = "cluster_si_unit_ids.tsv"  # export_to_phy: Phy cluster id -> SpikeInterface unit id
VALID_KEYS = {"greater", "less", "abs"}  # threshold_metrics_label_units refuses any other
SPIKE_COUNT = "num_spikes"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BombcellResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise BombcellResultsError(f"{path}: not JSON ({first_line(exc)})") from None


def cluster_ids_of_units(unit_ids: pd.Index, ks_dir: Path, wide_path: Path, notes: list[str]) -> np.ndarray:
    """Phy cluster id of each SpikeInterface unit: through cluster_si_unit_ids.tsv when the Phy folder has one
    (export_to_phy renumbers clusters 0..N-1), else the unit id itself (a Kilosort sorter_output folder)."""
    mapping_path = ks_dir / UNIT_IDS_FILE
    if mapping_path.is_file():
        table = pd.read_csv(mapping_path, sep="\t", dtype=str, keep_default_na=False)
        if not {"cluster_id", "si_unit_id"} <= set(table.columns):
            raise BombcellResultsError(f"{mapping_path}: expected columns cluster_id and si_unit_id")
        by_unit = dict(zip(table["si_unit_id"].str.strip(), table["cluster_id"]))
        unknown = [u for u in unit_ids.astype(str) if u not in by_unit]
        if unknown:
            raise BombcellResultsError(
                f"{wide_path}: SpikeInterface unit ids {listed(unknown, 5)} are not in {mapping_path.name}: these "
                "results are not for this Phy folder")
        return np.array([int(float(by_unit[u])) for u in unit_ids.astype(str)], dtype=np.int64)
    ids = pd.to_numeric(pd.Series(unit_ids), errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(ids) & (ids == np.floor(ids))):
        raise BombcellResultsError(
            f"{wide_path}: SpikeInterface unit ids such as {unit_ids[0]!r} are not Phy cluster ids, and "
            f"{ks_dir} has no {UNIT_IDS_FILE} to map them (export the sorting with export_to_phy)")
    return ids.astype(np.int64)


def load_spikeinterface_results(folder: Path, ks_dir: Path, classifier: str | None = None) -> BombcellResults:
    wide_path = folder / SI_WIDE_FILE
    if classifier not in (None, SPIKEINTERFACE):
        raise BombcellResultsError(f"{wide_path}: these results were labelled by SpikeInterface's "
                                   f"bombcell_label_units, not by {classifier} Bombcell")
    try:
        wide = pd.read_csv(wide_path, index_col=0)
    except Exception as exc:
        raise BombcellResultsError(f"{wide_path}: cannot read as CSV ({first_line(exc)})") from None
    check_has_rows(wide_path, wide)
    thresholds_path = folder / THRESHOLDS_FILE
    if not thresholds_path.is_file():
        raise BombcellResultsError(f"{thresholds_path}: file not found (run_bombcell_qc writes the thresholds "
                                   "it used there)")
    thresholds = _read_json(thresholds_path)
    notes: list[str] = []
    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        split = bool(_read_json(config_path).get("split_non_somatic", False))
    else:
        split = False
        notes.append(f"{config_path}: not found; split_non_somatic taken as off")
    cluster_ids = cluster_ids_of_units(wide.index, ks_dir, wide_path, notes)
    check_unique_ids(wide_path, cluster_ids)
    labels = wide["label"] if "label" in wide.columns else None
    metrics = wide.drop(columns=["label"], errors="ignore").reset_index(drop=True)
    saved = None
    if labels is not None:
        saved = {int(c): SPIKEINTERFACE_LABELS.get(str(label).strip(), str(label).strip())
                 for c, label in zip(cluster_ids.tolist(), labels.fillna("").tolist())}
    results = run_results(folder, metrics, thresholds, split, cluster_ids, notes)
    results.saved_labels, results.saved_labels_file = saved, wide_path if saved else None
    spikes = spike_counts(ks_dir, notes)
    if spikes is not None:
        spike_file, ks_ids, ks_counts = spikes
        check_same_sorting(wide_path, metrics, cluster_ids, spike_file, ks_ids, ks_counts, notes, SPIKE_COUNT)
        note_id_differences(metrics, cluster_ids, spike_file, ks_ids, notes, SPIKE_COUNT)
    return results


def check_thresholds(path: Path, thresholds, columns) -> None:
    """The thresholds dict as bombcell_label_units checks it, for the metrics the table has (it drops the others'
    thresholds unread): sections of {metric: {"greater", "less", "abs"}}; anything else is refused in one line."""
    if not isinstance(thresholds, dict):
        raise BombcellResultsError(f"{path}: not a dict of sections ({', '.join(SI_SECTIONS)})")
    for section in SI_SECTIONS:
        if section not in thresholds:
            continue
        metrics = thresholds[section]
        if not isinstance(metrics, dict):
            raise BombcellResultsError(f"{path}: section {section!r} is {metrics!r}, not a dict of metric thresholds")
        for metric, threshold in metrics.items():
            if metric not in columns:
                continue
            if not isinstance(threshold, dict):
                raise BombcellResultsError(f"{path}: {section}.{metric} is {threshold!r}, not a dict of greater, "
                                           "less and abs")
            invalid = sorted(map(str, set(threshold) - VALID_KEYS))
            if invalid:
                raise BombcellResultsError(f"{path}: {section}.{metric} has key(s) {', '.join(invalid)}; "
                                           f"bombcell_label_units accepts only {', '.join(sorted(VALID_KEYS))}")


def run_results(folder: Path, metrics: pd.DataFrame, thresholds, split: bool, cluster_ids: np.ndarray,
                notes: list[str]) -> BombcellResults:
    """A run's metrics table and thresholds dict as the rules read them: the rows of its thresholds for the
    metrics the table has, and the thresholds as parameters. Refused in one line, naming thresholds.json or the
    wide table, where bombcell_label_units cannot compare them."""
    wide_path, thresholds_path = folder / SI_WIDE_FILE, folder / THRESHOLDS_FILE
    check_thresholds(thresholds_path, thresholds, metrics.columns)
    rules, dropped = spikeinterface_rules(thresholds, metrics.columns)
    if dropped:
        notes.append(f"{wide_path.name} has no column for {', '.join(dropped)}: SpikeInterface ignores "
                     f"{'its threshold' if len(dropped) == 1 else 'their thresholds'}, and so do the rules")
    params = {**flatten_thresholds(thresholds, metrics.columns), SPLIT_SWITCHES[SPIKEINTERFACE]: split}
    check_comparable(wide_path, thresholds_path, metrics, params, SPIKEINTERFACE, rules)
    evidence = f"recognised from {SI_WIDE_FILE} and {THRESHOLDS_FILE} (bombcell.run_bombcell_qc)"
    return BombcellResults(folder, params, metrics, cluster_ids, notes, SPIKEINTERFACE,
                           f"{CLASSIFIER_TITLES[SPIKEINTERFACE]}, {evidence}", rules=rules, thresholds=thresholds)
