"""UnitRefine's opinion of each cluster: the label and confidence its model gave, found as Bombcell's results are.

Saved predictions first: UnitRefine's ``{analyzer}__labels_from_{models}.csv`` (index ``unit_id``;
``{model}_model_label`` and ``{model}_confidence``, or a cascade's ``cascade_model_label`` and
``cascade_confidence``) and SpikeInterface's ``cluster_prediction.tsv``, looked for in the Phy folder, its parent,
and ``unitrefine_predictions/`` in either. With a model folder the user names (``model_dir``: ``best_model.skops``
and ``model_info.json``, as UnitRefine and SpikeInterface's ``train_model`` save it), the predictions are made by
SpikeInterface's own ``model_based_label_units`` on the SortingAnalyzer found beside the Phy folder, and the
contributions of each metric are computed (``explain.py``). SpikeInterface unit ids become Phy cluster ids as the
SpikeInterface route maps them (``cluster_si_unit_ids.tsv``).

Reading saved predictions imports neither scikit-learn nor skops nor shap (Phy's process reads them); only a
model folder does, in ``explain.py``. Every refusal is one `UnitRefineError` line naming the file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import UserError, first_line, listed
from ..core.rules import SPIKEINTERFACE_LABELS
from ..io.results import BombcellResultsError
from ..io.spikeinterface import cluster_ids_of_units

PREDICTIONS_DIR = "unitrefine_predictions"  # UnitRefine's default output folder
PREDICTIONS_PATTERN = "*__labels_from_*.csv"
SI_PREDICTIONS_FILE = "cluster_prediction.tsv"  # model_based_label_units(export_to_phy=True), by SI unit id
ANALYZER_INFO = "spikeinterface_info.json"
LABEL_SUFFIX, CONFIDENCE_SUFFIX = "_model_label", "_confidence"
CASCADE = "cascade"


class UnitRefineError(UserError):
    """UnitRefine's predictions or model that cannot be used for this Phy folder; one line naming the file."""


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: float          # the analyzer's metric value (NaN if missing)
    contribution: float   # towards the unit's label, in the model's output (method_note says which)


@dataclass
class UnitOpinion:
    cluster_id: int
    label: str
    confidence: float
    contributions: tuple[Contribution, ...] | None = None  # sorted by |contribution|; None: not computed/available
    base_value: float | None = None  # base_value + sum(contributions) == output
    output: float | None = None      # the model's own output for `label`

    def top(self, n: int) -> tuple[Contribution, ...]:
        return tuple(self.contributions or ())[:n]


def _number(x) -> float | str | None:
    """A float for JSON: None for NaN, "inf"/"-inf" for infinities."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def contribution_text(c: Contribution) -> str:
    """'snr 14.9 (+0.12)': a metric, its value and its contribution."""
    return f"{c.feature} {c.value:.4g} ({c.contribution:+.3g})"


def _float(x) -> float:
    return float("nan") if x is None else float(x)


@dataclass
class ModelOpinion:
    model_name: str
    model_folder: Path | None
    source: Path              # the predictions file, or the analyzer folder when computed
    classes: list[str]        # model_info.json's label_conversion, in order
    method: str | None        # "TreeSHAP" | "coefficients" | None
    method_note: str          # what the contributions are, or why there are none
    units: dict[int, UnitOpinion]
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        ids = sorted(self.units)
        table = pd.DataFrame({"ur_label": [self.units[c].label for c in ids],
                              "ur_confidence": [self.units[c].confidence for c in ids]},
                             index=pd.Index(ids, name="cluster_id", dtype=np.int64))
        return table

    def agrees(self, cluster_id: int, bombcell_label: str | None) -> bool | None:
        unit = self.units.get(int(cluster_id))
        return model_agrees(unit.label if unit else None, bombcell_label, classes=self.classes)

    def summary(self, cluster_id: int, bombcell_label: str | None = None, top: int = 3) -> dict | None:
        """What `explain --json` and `audit` carry for one cluster: label, confidence, agrees (with Bombcell's
        label), the ``top`` contributions (None when not computed); None when the model has not seen the cluster."""
        unit = self.units.get(int(cluster_id))
        if unit is None:
            return None
        contributions = None if unit.contributions is None else [
            {"feature": c.feature, "value": _number(c.value), "contribution": _number(c.contribution)}
            for c in unit.top(top)]
        return {"model": self.model_name, "label": unit.label, "confidence": _number(unit.confidence),
                "agrees": self.agrees(cluster_id, bombcell_label), "top": contributions}

    def to_json(self) -> dict:
        def unit(u: UnitOpinion) -> dict:
            contributions = None if u.contributions is None else [
                {"feature": c.feature, "value": _number(c.value), "contribution": _number(c.contribution)}
                for c in u.contributions]
            return {"cluster_id": u.cluster_id, "label": u.label, "confidence": _number(u.confidence),
                    "contributions": contributions, "base_value": _number(u.base_value), "output": _number(u.output)}

        return {"model_name": self.model_name, "model_folder": None if self.model_folder is None
                else str(self.model_folder), "source": str(self.source), "classes": list(self.classes),
                "method": self.method, "method_note": self.method_note, "notes": list(self.notes),
                "units": [unit(self.units[c]) for c in sorted(self.units)]}

    @classmethod
    def from_json(cls, d: dict) -> ModelOpinion:
        units = {}
        for u in d["units"]:
            contributions = None if u.get("contributions") is None else tuple(
                Contribution(c["feature"], _float(c["value"]), _float(c["contribution"])) for c in u["contributions"])
            units[int(u["cluster_id"])] = UnitOpinion(
                int(u["cluster_id"]), str(u["label"]), _float(u["confidence"]), contributions,
                None if u.get("base_value") is None else _float(u["base_value"]),
                None if u.get("output") is None else _float(u["output"]))
        return cls(d["model_name"], None if d.get("model_folder") is None else Path(d["model_folder"]),
                   Path(d["source"]), list(d["classes"]), d.get("method"), d.get("method_note", ""), units,
                   list(d.get("notes", [])))


# -- what the model's label means against Bombcell's ------------------------------------------------------------

NEURAL, QUALITY, THREE_WAY = "noise vs neural", "sua vs mua", "noise, good, mua"
GOOD_NAMES, MUA_NAMES = {"good", "sua"}, {"mua"}


def model_kind(classes) -> str | None:
    """What a model decides, from its classes: noise vs neural (two classes, one noise; the hub's noise model calls
    the neural class good), sua vs mua, or noise/good/mua (a cascade). None for anything else."""
    names = {str(c).lower() for c in classes}
    if "noise" in names:
        if len(names) == 2:
            return NEURAL
        return THREE_WAY if names - {"noise"} <= GOOD_NAMES | MUA_NAMES else None
    return QUALITY if len(names) == 2 and names <= GOOD_NAMES | MUA_NAMES else None


def model_agrees(model_label: str | None, bombcell_label: str | None, *, classes=None) -> bool | None:
    """Whether UnitRefine's label agrees with Bombcell's, or None where the model was not asked the question.

    Noise vs neural models: noise <-> NOISE, the neural class <-> GOOD, MUA and every NON-SOMA. Sua vs mua models:
    good/sua <-> GOOD and NON-SOMA GOOD, mua <-> MUA and NON-SOMA MUA (the non-somatic split, as concordance
    compares it); a plain NON-SOMA is not split into good or mua (None), and a NOISE unit is not the model's question
    (None). ``classes`` (the model's) says which kind of model it is; without them the label says it (neural: noise vs
    neural; good, sua, mua: sua vs mua; noise: noise vs neural)."""
    if not model_label or not bombcell_label:
        return None
    model = str(model_label).strip().lower()
    bc = SPIKEINTERFACE_LABELS.get(str(bombcell_label).strip(), str(bombcell_label).strip().upper())
    kind = model_kind(classes) if classes else (NEURAL if model in ("noise", "neural") else
                                                QUALITY if model in GOOD_NAMES | MUA_NAMES else None)
    if kind is None:
        return None
    if kind == NEURAL:
        return (model == "noise") == (bc == "NOISE")
    if model == "noise" or bc == "NOISE":
        return None if kind == QUALITY else (model == "noise") == (bc == "NOISE")
    if bc == "NON-SOMA":
        return None
    bc_good = bc in ("GOOD", "NON-SOMA GOOD")
    if model in GOOD_NAMES:
        return bc_good
    return not bc_good if model in MUA_NAMES else None


# -- where things are -------------------------------------------------------------------------------------------

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


def _pick(files: list[Path], model_dir: Path | None, analyzers: list[Path]) -> tuple[Path | None, str | None]:
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


def _analyzer_for(ks_dir: Path, analyzer_dir, analyzers: list[Path], saved_path: Path | None) -> Path | None:
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


def find_opinion(ks_dir, model_dir=None, *, contributions: bool = False, analyzer_dir=None) -> ModelOpinion | None:
    """UnitRefine's opinion of every cluster of the Phy folder ``ks_dir``, or None when no predictions are found and
    no model is named.

    Saved predictions give labels and confidences. With ``model_dir`` (a model folder: ``best_model.skops`` and
    ``model_info.json``) its saved predictions are used when found, else the model predicts with SpikeInterface's
    ``model_based_label_units`` on the analyzer (``analyzer_dir``, else the one found near ``ks_dir``); with
    ``contributions`` each unit's contributions towards its label are added. Raises UnitRefineError (one line)
    for a model folder without model_info.json, a model needing metrics the analyzer lacks, and predictions or an
    analyzer of another sorting."""
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise UnitRefineError(f"{ks_dir}: not a folder")
    model_dir = Path(model_dir) if model_dir is not None else None
    analyzers = find_analyzers(ks_dir)
    path, model_name = _pick(find_predictions(ks_dir), model_dir, analyzers)
    analyzer = _analyzer_for(ks_dir, analyzer_dir, analyzers, path)
    saved, notes = None, []
    if path is not None:
        saved = read_predictions(path, model_name)
        check_same_units(path, saved.unit_ids, analyzer)
    if model_dir is not None:
        from .explain import model_opinion  # scikit-learn, skops, SpikeInterface: only for a named model

        return model_opinion(ks_dir, model_dir, analyzer, saved, contributions=contributions)
    if saved is None:
        return None
    cluster_ids = map_to_clusters(saved.unit_ids, ks_dir, path, notes)
    if contributions:
        notes.append("contributions need the model: name its folder (--model DIR)")
    units = {int(c): UnitOpinion(int(c), label, float(p)) for c, label, p in
             zip(cluster_ids, saved.labels, saved.confidences)}
    others = [f for f in find_predictions(ks_dir) if f != path]
    if others:
        notes.append(f"also found {listed([f.name for f in others], 3)}: name a model folder (--model) to choose")
    return ModelOpinion(saved.model_name, None, path, saved.classes, None,
                        "saved predictions: labels and confidences only (name the model folder for contributions)",
                        units, notes)
