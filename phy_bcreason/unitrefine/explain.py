"""A model folder's opinion: SpikeInterface's ``model_based_label_units`` on the analyzer, and why, per unit.

The labels and confidences are SpikeInterface's own (never re-computed here). The contributions are exact for the
model's kind, on the inputs the classifier sees (the pipeline's imputer and scaler applied to the metrics as
SpikeInterface formats them: float32, infinities as missing):

* tree ensembles (random forest, extra trees, decision tree, gradient boosting): ``shap.TreeExplainer``, towards
  the probability of the label (forests, trees) or its log-odds (gradient boosting);
* linear models (logistic regression and others with ``coef_``): ``coef * (x - mean)``, the mean of the model's
  training data (``training_data.csv``) in the same space; base value ``intercept + coef . mean``, output the
  decision function (the log-odds of the label for a two-class model);
* any other kind: none, and the note says so.

For every unit, base value + sum of the contributions == the model's output for its label. Imports scikit-learn,
skops, shap and SpikeInterface: the GUI runs this in a child process, never in Phy's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import first_line, listed
from .found import UnitRefineError, check_counts, map_to_clusters

MODEL_INFO, MODEL_FILE, TRAINING_DATA = "model_info.json", "best_model.skops", "training_data.csv"
# tree ensembles shap's TreeExplainer explains exactly -> what their raw output is
TREE_OUTPUTS = {"RandomForestClassifier": "probability", "ExtraTreesClassifier": "probability",
                "DecisionTreeClassifier": "probability", "ExtraTreeClassifier": "probability",
                "GradientBoostingClassifier": "log-odds", "HistGradientBoostingClassifier": "log-odds"}
# types a model file may hold beyond skops' defaults (get_untrusted_types); anything else is not loaded
SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


def model_file(model_dir: Path) -> Path:
    """The model's .skops file, refusing a folder that is not a model folder as UnitRefine saves it."""
    if not model_dir.is_dir():
        raise UnitRefineError(f"{model_dir}: not a folder (name a model folder: best_model.skops and {MODEL_INFO})")
    if not (model_dir / MODEL_INFO).is_file():
        raise UnitRefineError(f"{model_dir / MODEL_INFO}: file not found (a UnitRefine model folder holds "
                              f"{MODEL_FILE} and {MODEL_INFO}: download or copy the whole folder)")
    files = sorted(model_dir.glob("*.skops"))
    if not files:
        raise UnitRefineError(f"{model_dir}: no .skops model file (UnitRefine saves {MODEL_FILE})")
    if len(files) > 1:
        if model_dir / MODEL_FILE in files:
            return model_dir / MODEL_FILE
        raise UnitRefineError(f"{model_dir}: several .skops files ({listed([f.name for f in files], 4)}) and no "
                              f"{MODEL_FILE}: keep one model per folder")
    return files[0]


def trusted_types(path: Path) -> list[str]:
    """The types of the model file skops does not trust by default, when all are scikit-learn's or numpy's."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise UnitRefineError(f"{path}: not a skops model file ({first_line(exc, typed=True)})") from None
    unsafe = [t for t in untrusted if not t.startswith(SAFE_PREFIXES)]
    if unsafe:
        raise UnitRefineError(f"{path}: holds types from outside scikit-learn and numpy ({listed(unsafe, 3)}); "
                              "not loaded")
    return list(untrusted)


def load_pipeline(model_dir: Path):
    """(pipeline, model_info, model file, trusted types), loaded by SpikeInterface's load_model."""
    from sklearn.pipeline import Pipeline
    from spikeinterface.curation.model_based_curation import load_model

    path = model_file(model_dir)
    trusted = trusted_types(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline, model_info = load_model(model_folder=model_dir, model_name=path.name, trusted=trusted)
    except Exception as exc:
        raise UnitRefineError(f"{path}: cannot load ({first_line(exc, typed=True)})") from None
    if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "feature_names_in_"):
        raise UnitRefineError(f"{path}: not a scikit-learn pipeline fitted on named metrics")
    conversion = (model_info or {}).get("label_conversion")
    if not isinstance(conversion, dict) or not conversion:
        raise UnitRefineError(f"{model_dir / MODEL_INFO}: no label_conversion (the model's class names)")
    return pipeline, model_info, path, trusted


def classes_of(model_info: dict) -> list[str]:
    conversion = model_info["label_conversion"]
    return [str(conversion[k]) for k in sorted(conversion, key=int)]


def _analyzer(analyzer_dir: Path):
    from spikeinterface.core import load_sorting_analyzer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_sorting_analyzer(analyzer_dir, load_extensions=False)
    except Exception as exc:
        raise UnitRefineError(f"{analyzer_dir}: cannot load the SortingAnalyzer ({first_line(exc, typed=True)})"
                              ) from None


@dataclass
class ModelResult:
    """What the model said, as plain data (opinion.py makes it a ModelOpinion): ``units`` holds, per unit,
    (cluster id, label, confidence, None or ([(metric, value, contribution), ...], base value, output))."""

    model_name: str
    model_folder: Path
    source: Path
    classes: list[str]
    method: str | None
    method_note: str
    units: list[tuple]
    notes: list[str]


def model_opinion(ks_dir: Path, model_dir: Path, analyzer_dir: Path | None, saved, *, contributions: bool
                  ) -> ModelResult:
    """The model's label and confidence for every unit of the analyzer (or of ``saved``, the saved predictions of
    this model: their labels), with contributions when asked."""
    from spikeinterface.curation import model_based_label_units
    from spikeinterface.curation.model_based_curation import _handle_backwards_compatibility_in_metrics

    pipeline, model_info, path, trusted = load_pipeline(model_dir)
    if analyzer_dir is None:
        raise UnitRefineError(f"{ks_dir}: no SortingAnalyzer found (a folder with spikeinterface_info.json) in it, "
                              "its subfolders, its parent or the parent's subfolders: pass --analyzer DIR")
    analyzer = _analyzer(analyzer_dir)
    metrics = _handle_backwards_compatibility_in_metrics(analyzer.get_metrics_extension_data(), model_info)
    required = list(pipeline.feature_names_in_)
    missing = [m for m in required if m not in metrics.columns]
    if missing:
        raise UnitRefineError(
            f"{analyzer_dir}: the model {model_dir.name} needs metrics the analyzer lacks: {listed(missing, 6)} "
            "(compute them with analyzer.compute('quality_metrics') / 'template_metrics', or use another model)")
    notes: list[str] = []
    unit_ids = pd.Index(analyzer.unit_ids)
    cluster_ids = map_to_clusters(unit_ids, ks_dir, analyzer_dir, notes)
    check_counts(analyzer_dir, analyzer.sorting.count_num_spikes_per_unit(outputs="array"), cluster_ids, ks_dir,
                 notes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            decisions = model_based_label_units(analyzer, model_folder=model_dir, model_name=path.name,
                                                trusted=trusted, set_predictions_as_properties=False)
        except Exception as exc:
            raise UnitRefineError(f"{path}: SpikeInterface's model_based_label_units failed on {analyzer_dir} "
                                  f"({first_line(exc, typed=True)})") from None
    notes += list(dict.fromkeys(first_line(w.message) for w in caught if "params" in str(w.message)))
    decisions = decisions.loc[analyzer.unit_ids]
    labels = decisions["prediction"].astype(str).tolist()
    confidences = decisions["probability"].to_numpy(dtype=float)
    source = analyzer_dir
    if saved is not None:
        by_unit = {str(u): (lab, p) for u, lab, p in zip(saved.unit_ids, saved.labels, saved.confidences)}
        differ = [str(u) for u, lab in zip(unit_ids, labels) if str(u) in by_unit and by_unit[str(u)][0] != lab]
        keep = [str(u) in by_unit for u in unit_ids]
        labels = [by_unit[str(u)][0] for u, k in zip(unit_ids, keep) if k]
        confidences = np.array([by_unit[str(u)][1] for u, k in zip(unit_ids, keep) if k], dtype=float)
        metrics, cluster_ids = metrics.loc[unit_ids[keep]], cluster_ids[keep]
        source = saved.path
        if differ:
            notes.append(f"{saved.path.name}: the model now gives {len(differ)} unit(s) another label "
                         f"({listed(differ, 5)}): the metrics changed since these predictions were saved?")
    explained = explain_units(pipeline, model_info, model_dir, metrics[required], labels) if contributions else None
    method, method_note = model_method(pipeline)
    seen = model_features(pipeline, required)
    unseen = [m for m in required if m not in seen]
    if unseen and contributions:
        notes.append(f"{listed(unseen, 5)}: not seen by the model (no value in its training data), so no "
                     "contribution")
    values = metrics[seen].to_numpy(dtype=float)
    units = []
    for i, (cluster_id, label, confidence) in enumerate(zip(cluster_ids, labels, confidences)):
        parts = None
        if explained is not None and explained[i] is not None:
            contributions_of, base, output = explained[i]
            parts = ([(seen[j], float(values[i, j]), float(contributions_of[j])) for j in range(len(seen))],
                     float(base), float(output))
        units.append((int(cluster_id), str(label), float(confidence), parts))
    if not contributions and method is not None:
        method_note += " (not computed)"
    return ModelResult(model_dir.name, model_dir, source, classes_of(model_info), method, method_note, units, notes)


def model_method(pipeline) -> tuple[str | None, str]:
    classifier = pipeline[-1]
    name = type(classifier).__name__
    if name in TREE_OUTPUTS:
        return "TreeSHAP", f"TreeSHAP: each metric's part of the {TREE_OUTPUTS[name]} of the label ({name})"
    if _linear(classifier):
        quantity = "log-odds" if np.ndim(classifier.coef_) == 2 and classifier.coef_.shape[0] == 1 else \
            "decision score"
        return "coefficients", f"coefficients: each metric's part of the {quantity} of the label ({name})"
    return None, f"not available for {name} (no exact method for this kind of model)"


def model_features(pipeline, required: list[str]) -> list[str]:
    """The metrics the classifier sees, in its order: the imputer drops those with no value in the training data."""
    try:
        return [str(name) for name in pipeline[:-1].get_feature_names_out(required)]
    except Exception:
        return list(required)


def _linear(classifier) -> bool:
    return all(hasattr(classifier, a) for a in ("coef_", "intercept_", "decision_function"))


def _model_input(pipeline, table: pd.DataFrame) -> np.ndarray:
    from spikeinterface.curation.train_manual_curation import _format_metric_dataframe

    with warnings.catch_warnings():  # the imputer warns, each time, of a metric with no value in training
        warnings.simplefilter("ignore")
        return np.asarray(pipeline[:-1].transform(_format_metric_dataframe(table)), dtype=float)


def explain_units(pipeline, model_info: dict, model_dir: Path, metrics: pd.DataFrame, labels: list[str]):
    """Per unit, (contributions, base value, output) towards its label, or None for the unit when the model has
    no exact method (or the label is not one of its classes)."""
    classifier = pipeline[-1]
    name = type(classifier).__name__
    codes = {str(v): int(k) for k, v in model_info["label_conversion"].items()}
    classes = [int(c) for c in classifier.classes_]
    positions = [classes.index(codes[lab]) if lab in codes and codes[lab] in classes else None for lab in labels]
    z = _model_input(pipeline, metrics)
    if name in TREE_OUTPUTS:
        import shap

        z = z.astype(np.float32).astype(float)  # scikit-learn's trees compare float32 inputs
        explanation = shap.TreeExplainer(classifier)(z, check_additivity=False)
        values, base = np.asarray(explanation.values), np.asarray(explanation.base_values)
        if TREE_OUTPUTS[name] == "probability":
            outputs = classifier.predict_proba(z)
        else:
            outputs = np.asarray(classifier.decision_function(z))
        results = []
        for i, p in enumerate(positions):
            if p is None:
                results.append(None)
            elif values.ndim == 3:
                results.append((values[i, :, p], base[i, p] if base.ndim == 2 else base[p],
                                outputs[i, p] if outputs.ndim == 2 else outputs[i]))
            else:  # one output: the second class's; the first's is its negative
                sign = 1.0 if p == 1 else -1.0
                out = outputs[i, p] if outputs.ndim == 2 else sign * outputs[i]
                results.append((sign * values[i], sign * np.ravel(base)[i if np.size(base) > 1 else 0], out))
        return results
    if _linear(classifier):
        training = pd.read_csv(model_dir / TRAINING_DATA, index_col=0) if (model_dir / TRAINING_DATA).is_file() \
            else None
        mean = _model_input(pipeline, training[list(metrics.columns)]).mean(axis=0) if training is not None \
            else np.zeros(z.shape[1])
        coef, intercept = np.atleast_2d(classifier.coef_), np.ravel(classifier.intercept_)
        scores = np.asarray(classifier.decision_function(z))
        results = []
        for i, p in enumerate(positions):
            if p is None:
                results.append(None)
                continue
            if coef.shape[0] == 1:
                sign = 1.0 if p == 1 else -1.0
                w, b, out = sign * coef[0], sign * intercept[0], sign * np.ravel(scores)[i]
            else:
                w, b, out = coef[p], intercept[p], scores[i, p]
            results.append((w * (z[i] - mean), b + float(w @ mean), out))
        return results
    return [None] * len(labels)
