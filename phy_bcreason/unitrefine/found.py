"""Where UnitRefine's outputs are for a Phy folder, and whether they are of its sorting.

Saved predictions (UnitRefine's ``{analyzer}__labels_from_{models}.csv``, SpikeInterface's ``cluster_prediction.tsv``)
in the Phy folder, its parent and ``unitrefine_predictions/`` in either; SortingAnalyzer folders near the Phy folder
(found as UnitRefine's find_analyzers finds them, shallow); SpikeInterface unit ids mapped to Phy cluster ids as the
SpikeInterface route maps them (io/spikeinterface.py). Imports neither scikit-learn nor SpikeInterface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import UserError, first_line, listed
from ..io.kilosort import spike_counts
from ..io.results import BombcellResultsError, check_same_sorting
from ..io.spikeinterface import cluster_ids_of_units

PREDICTIONS_DIR = "unitrefine_predictions"  # UnitRefine's default output folder
PREDICTIONS_PATTERN = "*__labels_from_*.csv"
SI_PREDICTIONS_FILE = "cluster_prediction.tsv"  # model_based_label_units(export_to_phy=True), by SI unit id
ANALYZER_INFO = "spikeinterface_info.json"
LABEL_SUFFIX, CONFIDENCE_SUFFIX = "_model_label", "_confidence"
CASCADE = "cascade"


class UnitRefineError(UserError):
    """UnitRefine's predictions or model that cannot be used for this Phy folder; one line naming the file."""


# -----------------------------------------------------------------------------------------------------------------

def search_places(ks_dir: Path) -> list[Path]:
    """Where saved predictions are looked for, in order: the Phy folder, its parent, unitrefine_predictions/ in
    either."""
    places = [ks_dir, ks_dir / PREDICTIONS_DIR, ks_dir.parent, ks_dir.parent / PREDICTIONS_DIR]
    return [p for i, p in enumerate(places) if p not in places[:i]]


def is_analyzer_folder(folder: Path) -> bool:
    """A binary-folder SortingAnalyzer, as UnitRefine's find_analyzers tells one: its spikeinterface_info.json says
    "object": "SortingAnalyzer"."""
    try:
        info = json.loads((folder / ANALYZER_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("object") == "SortingAnalyzer"


def find_analyzers(ks_dir: Path) -> list[Path]:
    """SortingAnalyzer folders near the Phy folder: the folder itself, its subfolders, its parent and the parent's
    subfolders (shallow; hidden folders skipped)."""
    found: list[Path] = []
    for place in (ks_dir, ks_dir.parent):
        try:
            subfolders = sorted(p for p in place.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        for folder in [place, *subfolders]:
            if folder not in found and is_analyzer_folder(folder):
                found.append(folder)
    return found


def analyzer_unit_ids(analyzer_dir: Path) -> list[str] | None:
    """The analyzer's unit ids (as text) from its sorting's numpysorting_info.json, without SpikeInterface; None
    for another kind of sorting."""
    try:
        info = json.loads((analyzer_dir / "sorting" / "numpysorting_info.json").read_text(encoding="utf-8"))
        return [str(u) for u in info["unit_ids"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_predictions(ks_dir: Path) -> list[Path]:
    files = []
    for place in search_places(ks_dir):
        if place.is_dir():
            files += sorted(place.glob(PREDICTIONS_PATTERN))
    if (ks_dir / SI_PREDICTIONS_FILE).is_file():
        files.append(ks_dir / SI_PREDICTIONS_FILE)
    return files


def _key(path: Path) -> tuple[str, str]:
    """(analyzer name, models key) of ``{analyzer}__labels_from_{key}.csv``."""
    if "__labels_from_" not in path.name:
        return "", path.stem
    prefix, key = path.name[: -len(path.suffix)].split("__labels_from_", 1)
    return prefix, key


@dataclass
class SavedPredictions:
    path: Path
    model_name: str
    unit_ids: pd.Index
    labels: list[str]
    confidences: np.ndarray
    classes: list[str]


def read_predictions(path: Path, model_name: str | None = None) -> SavedPredictions:
    """One model's labels and confidences from a predictions file: ``model_name``'s columns, else the cascade's,
    else the file's only model's."""
    try:
        if path.name == SI_PREDICTIONS_FILE:
            table = pd.read_csv(path, sep="\t", index_col=0)
            table = table.rename(columns={"prediction": f"model{LABEL_SUFFIX}",
                                          "probability": f"model{CONFIDENCE_SUFFIX}"})
        else:
            table = pd.read_csv(path, index_col=0)
    except Exception as exc:
        raise UnitRefineError(f"{path}: cannot read as CSV ({first_line(exc)})") from None
    models = [c[: -len(LABEL_SUFFIX)] for c in table.columns if str(c).endswith(LABEL_SUFFIX)]
    if model_name is None:
        model_name = CASCADE if CASCADE in models else (models[0] if len(models) == 1 else None)
        if model_name is None:
            raise UnitRefineError(f"{path}: expected one {{model}}{LABEL_SUFFIX} column, found "
                                  f"{listed(models, 5) or 'none'}")
    label_column, confidence_column = model_name + LABEL_SUFFIX, model_name + CONFIDENCE_SUFFIX
    if label_column not in table.columns or confidence_column not in table.columns:
        raise UnitRefineError(f"{path}: no {label_column} and {confidence_column} columns")
    if len(table) == 0 or table.index.has_duplicates:
        raise UnitRefineError(f"{path}: {'no rows' if len(table) == 0 else 'duplicate unit ids'}")
    rows = table[label_column].notna()  # a cascade's second layer has no label for the units it was not asked
    table = table[rows]
    labels = table[label_column].astype(str).str.strip().tolist()
    confidences = pd.to_numeric(table[confidence_column], errors="coerce").to_numpy(dtype=float)
    classes = sorted(set(labels)) if model_name != CASCADE else ["good", "MUA", "noise"]
    name = _key(path)[1] if model_name in (CASCADE, "model") else model_name
    return SavedPredictions(path, name, table.index, labels, confidences, classes)


def pick_predictions(files: list[Path], model_dir: Path | None, analyzers: list[Path]
                     ) -> tuple[Path | None, str | None]:
    """The predictions file to use and the model whose columns to read: the named model's, else (with an analyzer
    found) one made from that analyzer, else the newest."""
    if model_dir is not None:
        wanted = model_dir.name + LABEL_SUFFIX
        for path in files:
            try:
                columns = pd.read_csv(path, nrows=0, sep="\t" if path.suffix == ".tsv" else ",").columns
            except Exception:
                continue
            if wanted in columns:
                return path, model_dir.name
        return None, None
    if not files:
        return None, None
    names = {a.name for a in analyzers}
    mine = [f for f in files if _key(f)[0] in names or any(_key(f)[0].endswith("_" + n) for n in names)]
    candidates = mine or files
    return max(candidates, key=lambda f: (f.stat().st_mtime, f.name)), None


def map_to_clusters(unit_ids: pd.Index, ks_dir: Path, path: Path, notes: list[str]) -> np.ndarray:
    """Phy cluster ids of SpikeInterface unit ids (io/spikeinterface.py), refusing another sorting's."""
    try:
        cluster_ids = cluster_ids_of_units(unit_ids, ks_dir, path, notes)
    except BombcellResultsError as exc:
        raise UnitRefineError(str(exc)) from None
    templates = ks_dir / "templates.npy"
    if templates.is_file():
        try:
            n_templates = np.load(templates, mmap_mode="r", allow_pickle=False).shape[0]
        except Exception:
            n_templates = None
        beyond = cluster_ids[cluster_ids >= n_templates] if n_templates is not None else []
        if len(beyond):
            raise UnitRefineError(f"{path}: unit ids {listed(beyond.tolist(), 5)} are not clusters of this Phy folder "
                                  f"({templates.name} has {n_templates}): these predictions are of another sorting")
    return cluster_ids


def check_same_units(path: Path, unit_ids, analyzer_dir: Path | None) -> None:
    """Predictions made on the analyzer found: the same unit ids."""
    ids = analyzer_unit_ids(analyzer_dir) if analyzer_dir is not None else None
    if ids is None:
        return
    theirs = {str(u) for u in unit_ids}
    if not theirs <= set(ids):
        extra = sorted(theirs - set(ids))
        raise UnitRefineError(f"{path}: unit ids {listed(extra, 5)} are not units of the analyzer {analyzer_dir}: "
                              "these predictions are of another sorting")


def check_counts(analyzer_dir: Path, counts: np.ndarray, cluster_ids: np.ndarray, ks_dir: Path,
                 notes: list[str]) -> None:
    """The analyzer's spike count per unit against the Phy folder's (clusters merged or split since are not
    compared): an analyzer of another sorting is refused."""
    spikes = spike_counts(ks_dir, notes)
    if spikes is None:
        return
    try:
        check_same_sorting(analyzer_dir, pd.DataFrame({"num_spikes": counts}), cluster_ids, *spikes, notes,
                           count="num_spikes")
    except BombcellResultsError as exc:
        raise UnitRefineError(str(exc).replace("these results do not match this Kilosort folder",
                                               "this analyzer is of another sorting than this Phy folder")) from None


def check_saved_counts(analyzer_dir: Path | None, ks_dir: Path, notes: list[str]) -> None:
    """`check_counts` from the analyzer's saved quality metrics (num_spikes), without SpikeInterface; nothing when
    the analyzer saved none."""
    path = analyzer_dir / "extensions" / "quality_metrics" / "metrics.csv" if analyzer_dir is not None else None
    if path is None or not path.is_file():
        return
    try:
        table = pd.read_csv(path, index_col=0)
    except Exception as exc:
        notes.append(f"{path}: cannot read ({first_line(exc)}); spike counts not compared")
        return
    if "num_spikes" in table.columns:
        cluster_ids = map_to_clusters(table.index, ks_dir, analyzer_dir, notes)
        check_counts(analyzer_dir, pd.to_numeric(table["num_spikes"], errors="coerce").to_numpy(dtype=float),
                     cluster_ids, ks_dir, notes)


def analyzer_for(ks_dir: Path, analyzer_dir, analyzers: list[Path], saved_path: Path | None) -> Path | None:
    if analyzer_dir is not None:
        folder = Path(analyzer_dir)
        if not is_analyzer_folder(folder):
            raise UnitRefineError(f"{folder / ANALYZER_INFO}: not a SortingAnalyzer folder (no such file, or its "
                                  '"object" is not "SortingAnalyzer")')
        return folder
    if saved_path is not None:
        prefix = _key(saved_path)[0]
        for folder in analyzers:
            if prefix == folder.name or prefix.endswith("_" + folder.name):
                return folder
    return analyzers[0] if analyzers else None
