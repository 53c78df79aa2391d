"""Test data for UnitRefine: a SortingAnalyzer beside the Phy folder, models trained on it, their predictions.

On top of ``tests/si_builder.py`` (the SpikeInterface route: the designed units in a SortingAnalyzer, Bombcell run
through ``run_bombcell_qc``, the sorting exported to Phy), in the layout a lab has when it also runs UnitRefine::

    out_dir/phy/                     the Phy folder (export_to_phy; Bombcell's results in phy/bombcell/)
    out_dir/analyzer/                the analyzer, a binary_folder SortingAnalyzer with quality and template metrics
    out_dir/models/<name>/           models as SpikeInterface's train_model saves them (what UnitRefine keeps):
                                     best_model.skops, model_info.json, training_data.csv, labels.csv,
                                     model_accuracies.csv
    out_dir/unitrefine_predictions/  analyzer__labels_from_noise_neural_forest.csv (UnitRefine's default
                                     output folder and file name, run from out_dir)
    out_dir/predictions_store/       every model's predictions file and the cascade's, for tests to copy in

Models (``MODELS``: four), trained with ``spikeinterface.curation.train_model`` on this analyzer's units with labels
from the design (``dataset_builder.UNIT_SPECS``: NOISE -> noise, the rest neural; GOOD -> sua, MUA -> mua for the
GOOD and MUA units), one imputer/scaler/classifier each and a single point search space, so that training takes
well under a second each:

* ``noise_neural_forest``: RandomForestClassifier (noise vs neural; a tree ensemble: TreeSHAP)
* ``sua_mua_linear``: LogisticRegression (sua vs mua; linear: coefficients)
* ``noise_neural_mlp``: MLPClassifier (noise vs neural; no exact method)
* ``sua_mua_boosting``: GradientBoostingClassifier (sua vs mua; a tree ensemble explained in log-odds: TreeSHAP)

Predictions are made with ``model_based_label_units(..., trust_model=True, set_predictions_as_properties=False)``
and written as UnitRefine 0.2 writes them (``predictions.py``): index ``unit_id``, ``{model}_model_label`` and
``{model}_confidence``; the cascade (forest, then linear on the units it calls neural) as
``analyzer__labels_from_cascade__noise_neural_forest__sua_mua_linear.csv`` with ``cascade_model_label``,
``cascade_confidence`` (p1 * p2 for neural units, p1 for noise), ``L1_...`` and ``L2_...`` columns.

Training uses this one analyzer (a second seed's would cost another ~20 s of simulation): the models are test
models, not good ones. The first build in a process takes the si_builder build plus ~5 s; later builds copy it.

API::

    MODELS: dict[str, dict]                  # name -> classifier, its search space, labels
    build_ur_dataset(out_dir, *, seed=0) -> URDataset
    ur_dataset_copy(src: URDataset, dst) -> URDataset
    predictions_key(model_names) -> str      # UnitRefine's file key: name, or cascade__a__b

Command line (from the repository root)::

    python -m tests.ur_builder OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # pragma: no cover - run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import dataset_builder as dsb  # noqa: E402
from tests import si_builder  # noqa: E402

__all__ = ["MODELS", "FOREST", "LINEAR", "MLP", "BOOSTING", "CASCADE", "URDataset", "build_ur_dataset",
           "ur_dataset_copy", "predictions_key", "design_labels"]

FOREST, LINEAR, MLP, BOOSTING = "noise_neural_forest", "sua_mua_linear", "noise_neural_mlp", "sua_mua_boosting"
CASCADE = f"cascade__{FOREST}__{LINEAR}"
NOISE_NEURAL = {"NOISE": "noise", "GOOD": "neural", "MUA": "neural", "NON-SOMA": "neural"}
SUA_MUA = {"GOOD": "sua", "MUA": "mua"}  # the others are not in its training set

MODELS: dict[str, dict] = {
    FOREST: {"classifier": "RandomForestClassifier", "labels": NOISE_NEURAL,
             "space": {"n_estimators": [30], "max_depth": [3], "min_samples_leaf": [2], "class_weight": ["balanced"]}},
    LINEAR: {"classifier": "LogisticRegression", "labels": SUA_MUA, "space": {"C": [0.3], "max_iter": [2000]}},
    MLP: {"classifier": "MLPClassifier", "labels": NOISE_NEURAL,
          "space": {"hidden_layer_sizes": [(6,)], "alpha": [1e-2], "max_iter": [400]}},
    BOOSTING: {"classifier": "GradientBoostingClassifier", "labels": SUA_MUA,
               "space": {"n_estimators": [20], "max_depth": [2], "learning_rate": [0.1]}},
}
ANALYZER_NAME = "analyzer"
PREDICTIONS_DIR = "unitrefine_predictions"
STORE_DIR = "predictions_store"


@dataclass
class URDataset:
    si: si_builder.SIDataset
    out_dir: Path
    phy_dir: Path
    analyzer_dir: Path
    models: dict[str, Path]                    # model name -> its folder
    predictions: dict[str, Path]               # key (model name or CASCADE) -> its file in predictions_store/
    expected: dict = field(default_factory=dict)  # model name -> SpikeInterface's DataFrame (prediction, probability)

    def predictions_file(self, key: str) -> str:
        return self.predictions[key].name


def predictions_key(model_names) -> str:
    return model_names[0] if len(model_names) == 1 else f"cascade__{model_names[0]}__{model_names[1]}"


def design_labels(out_dir: Path) -> dict:
    """SI unit id -> the designed (expected Bombcell) label of the unit, from si_builder's design.json."""
    units = json.loads((Path(out_dir) / "design.json").read_text())["units"]
    by_name = {s.name: s.expected for s in dsb.UNIT_SPECS}
    return {int(u): by_name[name] for u, name in units.items()}


def _train(analyzer, labels_of: dict, name: str, folder: Path) -> None:
    from spikeinterface.curation import train_model

    spec = MODELS[name]
    ids = [u for u in analyzer.unit_ids if labels_of[int(u)] in spec["labels"]]
    training = analyzer if len(ids) == len(analyzer.unit_ids) else analyzer.select_units(ids)
    labels = [spec["labels"][labels_of[int(u)]] for u in training.unit_ids]
    metric_names = list(analyzer.get_metrics_extension_data().columns)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        train_model(mode="analyzers", analyzers=[training], labels=[labels], folder=folder,
                    metric_names=metric_names, classifiers={spec["classifier"]: spec["space"]},
                    imputation_strategies=["median"], scaling_techniques=["standard_scaler"], seed=0,
                    search_kwargs={"n_iter": 1, "cv": 3}, verbose=False, n_jobs=1)


def _predict(analyzer, model_folder: Path):
    from spikeinterface.curation import model_based_label_units

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decisions = model_based_label_units(analyzer, model_folder=model_folder, trust_model=True,
                                            set_predictions_as_properties=False)
    return decisions.loc[analyzer.unit_ids]


def _write(table, path: Path) -> None:
    table.index.name = "unit_id"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path)


def _binary_table(unit_ids, name: str, decisions):
    """UnitRefine's predictions_table for one binary model."""
    import pandas as pd

    table = pd.DataFrame(index=unit_ids)
    table[f"{name}_model_label"] = decisions["prediction"].astype(str)
    table[f"{name}_confidence"] = decisions["probability"].values
    return table


def _cascade_table(unit_ids, layer1: str, first, layer2: str, second):
    """UnitRefine's get_predictions(mode="cascade") and predictions_table."""
    import pandas as pd

    aliases = {"good": "good", "sua": "good", "SUA": "good", "MUA": "MUA", "mua": "MUA", "noise": "noise"}
    is_noise = (first["prediction"].astype(str) == "noise").values
    labels2 = second["prediction"].astype(str).map(aliases)
    p1, p2 = first["probability"].values, second["probability"].values
    table = pd.DataFrame(index=unit_ids)
    table["cascade_model_label"] = pd.Series(np.where(is_noise, "noise", labels2.values), index=first.index)
    table[f"L1_{layer1}_model_label"] = first["prediction"].astype(str)
    table[f"L2_{layer2}_model_label"] = second["prediction"].astype(str)[~is_noise]
    table["cascade_confidence"] = np.where(is_noise, p1, p1 * p2)
    table[f"L1_{layer1}_confidence"] = p1
    table[f"L2_{layer2}_confidence"] = np.where(is_noise, np.nan, p2)
    return table


_BUILT: dict[int, URDataset] = {}


def build_ur_dataset(out_dir, *, seed: int = 0) -> URDataset:
    """The SI-route dataset (export layout, default thresholds) with its analyzer saved, four models trained and
    their predictions written (see the module's docstring). ``out_dir`` must not exist or be empty."""
    out_dir = Path(out_dir)
    if seed in _BUILT and _BUILT[seed].out_dir.is_dir():
        return ur_dataset_copy(_BUILT[seed], out_dir)
    from spikeinterface.core import load_sorting_analyzer

    si = si_builder.build_si_dataset(out_dir, variant="default", layout="export", seed=seed, with_analyzer=True)
    analyzer = load_sorting_analyzer(si.analyzer_dir)
    labels_of = design_labels(out_dir)
    models, predictions, expected = {}, {}, {}
    for name in MODELS:
        models[name] = out_dir / "models" / name
        _train(analyzer, labels_of, name, models[name])
        expected[name] = _predict(analyzer, models[name])
        predictions[name] = out_dir / STORE_DIR / f"{ANALYZER_NAME}__labels_from_{name}.csv"
        _write(_binary_table(analyzer.unit_ids, name, expected[name]), predictions[name])
    predictions[CASCADE] = out_dir / STORE_DIR / f"{ANALYZER_NAME}__labels_from_{CASCADE}.csv"
    _write(_cascade_table(analyzer.unit_ids, FOREST, expected[FOREST], LINEAR, expected[LINEAR]),
           predictions[CASCADE])
    (out_dir / PREDICTIONS_DIR).mkdir()
    shutil.copy2(predictions[FOREST], out_dir / PREDICTIONS_DIR / predictions[FOREST].name)
    dataset = URDataset(si, out_dir, si.phy_dir, si.analyzer_dir, models, predictions, expected)
    _BUILT[seed] = dataset
    return dataset


def ur_dataset_copy(src: URDataset, dst) -> URDataset:
    """Copy the whole dataset (Phy folder, analyzer, models, predictions) to ``dst`` (must not exist or be empty)."""
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} is not empty")
    if dst.exists():
        dst.rmdir()
    si = si_builder.si_dataset_copy(src.si, dst)

    def moved(path: Path) -> Path:
        return dst / path.relative_to(src.out_dir)

    return replace(src, si=si, out_dir=dst, phy_dir=si.phy_dir, analyzer_dir=moved(src.analyzer_dir),
                   models={k: moved(v) for k, v in src.models.items()},
                   predictions={k: moved(v) for k, v in src.predictions.items()}, expected=dict(src.expected))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.ur_builder", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ds = build_ur_dataset(args.out_dir, seed=args.seed)
    print(f"{ds.phy_dir}, {ds.analyzer_dir} ({time.perf_counter() - t0:.1f} s)")
    for name, table in ds.expected.items():
        print(f"{name}: {table['prediction'].value_counts().to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
