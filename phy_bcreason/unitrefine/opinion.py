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

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import listed
from ..core.rules import SPIKEINTERFACE_LABELS
from .found import (
    UnitRefineError,
    analyzer_for,
    check_same_units,
    check_saved_counts,
    find_analyzers,
    find_predictions,
    map_to_clusters,
    pick_predictions,
    read_predictions,
)

__all__ = ["Contribution", "UnitOpinion", "ModelOpinion", "UnitRefineError", "find_opinion", "model_agrees",
           "model_kind", "contribution_text"]


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
    path, model_name = pick_predictions(find_predictions(ks_dir), model_dir, analyzers)
    analyzer = analyzer_for(ks_dir, analyzer_dir, analyzers, path)
    saved, notes = None, []
    if path is not None:
        saved = read_predictions(path, model_name)
        check_same_units(path, saved.unit_ids, analyzer)
    if model_dir is not None and analyzer is None and saved is not None:
        from .explain import model_file  # the folder is checked; without metrics, no contributions

        model_file(model_dir)
        notes.append(f"no SortingAnalyzer found near {ks_dir} (--analyzer DIR): the saved predictions without "
                     "contributions")
        model_dir = None
    if model_dir is not None:
        from .explain import model_opinion  # scikit-learn, skops, SpikeInterface: only for a named model

        result = model_opinion(ks_dir, model_dir, analyzer, saved, contributions=contributions)
        units = {}
        for cluster_id, label, confidence, parts in result.units:
            unit = units[cluster_id] = UnitOpinion(cluster_id, label, confidence)
            if parts is not None:
                listed_parts, unit.base_value, unit.output = parts
                unit.contributions = tuple(Contribution(*c) for c in sorted(listed_parts, key=lambda c: -abs(c[2])))
        return ModelOpinion(result.model_name, result.model_folder, result.source, result.classes, result.method,
                            result.method_note, units, result.notes)
    if saved is None:
        return None
    cluster_ids = map_to_clusters(saved.unit_ids, ks_dir, path, notes)
    check_saved_counts(analyzer, ks_dir, notes)
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
