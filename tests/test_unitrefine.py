"""UnitRefine's opinion beside Bombcell's (#26), on data made by the tests (tests/ur_builder.py): a SortingAnalyzer
beside an export_to_phy folder, models trained on it with SpikeInterface's train_model and saved as UnitRefine saves
them, and their predictions made by model_based_label_units.

Every cluster's label and confidence equal SpikeInterface's predictions (read from the saved file, computed from a
model folder, through the CLI); the contributions add up to the model's own output for the label (predict_proba of
the whole pipeline for the forest, its decision_function for the linear model); the listed values are the
analyzer's metrics; the three refusals are one line, and exit status 2 in the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import cli
from phy_bcreason.unitrefine.opinion import ModelOpinion, UnitRefineError, find_opinion, model_agrees
from tests import ur_builder
from tests.si_builder import EXPORT_UNIT_ID_OFFSET
from tests.ur_builder import BOOSTING, CASCADE, FOREST, LINEAR, MLP

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ur_copy(ur_dataset, tmp_path):
    return ur_builder.ur_dataset_copy(ur_dataset, tmp_path / "data")


def analyzer_of(ds):
    from spikeinterface.core import load_sorting_analyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_sorting_analyzer(ds.analyzer_dir, load_extensions=False)


def by_cluster(table: pd.DataFrame) -> dict[int, tuple[str, float]]:
    """SpikeInterface's predictions (prediction, probability by SI unit id), by Phy cluster id."""
    return {int(u) - EXPORT_UNIT_ID_OFFSET: (str(p), float(q)) for u, p, q in
            zip(table.index, table["prediction"], table["probability"])}


def expected_by_cluster(ds, name: str) -> dict[int, tuple[str, float]]:
    return by_cluster(ds.expected[name])


def assert_same_predictions(opinion: ModelOpinion, expected: dict[int, tuple[str, float]]) -> None:
    assert sorted(opinion.units) == sorted(expected)
    for cluster_id, (label, probability) in expected.items():
        unit = opinion.units[cluster_id]
        assert (unit.label, unit.cluster_id) == (label, cluster_id)
        assert unit.confidence == pytest.approx(probability, rel=1e-7, abs=1e-7)


def model_outputs(ds, folder: Path, opinion: ModelOpinion, probability: bool = False) -> np.ndarray:
    """The model's own output for each unit's label, from the whole pipeline in ``folder`` as SpikeInterface loads
    it: with ``probability`` (the forest) its probability, else the decision function (log-odds of the second
    class)."""
    from spikeinterface.curation.model_based_curation import load_model
    from spikeinterface.curation.train_manual_curation import _format_metric_dataframe

    pipeline, info = load_model(model_folder=folder, trust_model=True)
    metrics = analyzer_of(ds).get_metrics_extension_data()
    x = _format_metric_dataframe(metrics[list(pipeline.feature_names_in_)])
    codes = {v: int(k) for k, v in info["label_conversion"].items()}
    classes = list(pipeline.classes_)
    outputs = []
    for i, unit_id in enumerate(metrics.index):
        label = opinion.units[int(unit_id) - EXPORT_UNIT_ID_OFFSET].label
        p = classes.index(codes[label])
        if probability:
            outputs.append(pipeline.predict_proba(x)[i, p])
        else:
            score = float(np.ravel(pipeline.decision_function(x))[i])
            outputs.append(score if p == 1 else -score)
    return np.array(outputs)


def test_saved_predictions_are_spikeinterfaces(ur_dataset):
    opinion = find_opinion(ur_dataset.phy_dir)
    assert opinion.source == ur_dataset.out_dir / "unitrefine_predictions" / ur_dataset.predictions_file(FOREST)
    assert opinion.model_name == FOREST and opinion.method is None
    assert all(u.contributions is None for u in opinion.units.values())
    assert_same_predictions(opinion, expected_by_cluster(ur_dataset, FOREST))
    table = opinion.table()
    assert list(table.columns) == ["ur_label", "ur_confidence"] and table.index.name == "cluster_id"
    assert table.loc[0, "ur_label"] == opinion.units[0].label


@pytest.mark.parametrize("name, method", [(FOREST, "TreeSHAP"), (LINEAR, "coefficients"), (BOOSTING, "TreeSHAP")])
def test_contributions_add_up_to_the_models_output(ur_dataset, name, method):
    opinion = find_opinion(ur_dataset.phy_dir, ur_dataset.models[name], contributions=True)
    assert opinion.method == method and opinion.model_folder == ur_dataset.models[name]
    assert_same_predictions(opinion, expected_by_cluster(ur_dataset, name))
    outputs = model_outputs(ur_dataset, ur_dataset.models[name], opinion, probability=name == FOREST)
    metrics = analyzer_of(ur_dataset).get_metrics_extension_data()
    for unit_id, output in zip(metrics.index, outputs):
        unit = opinion.units[int(unit_id) - EXPORT_UNIT_ID_OFFSET]
        total = unit.base_value + sum(c.contribution for c in unit.contributions)
        assert total == pytest.approx(unit.output, abs=1e-6)
        assert unit.output == pytest.approx(output, abs=1e-6)
        sizes = [abs(c.contribution) for c in unit.contributions]
        assert sizes == sorted(sizes, reverse=True) and len(unit.contributions) >= 20
        for c in unit.contributions:
            value = float(metrics.loc[unit_id, c.feature])
            assert (np.isnan(c.value) and np.isnan(value)) or c.value == value
    quantity = "probability" if name == FOREST else "log-odds"  # gradient boosting's raw output: log-odds
    assert quantity in opinion.method_note


def test_spikeinterfaces_cluster_prediction_tsv_is_read(ur_copy):
    """SpikeInterface's own export of predictions to Phy (``predict_labels(export_to_phy=True)``: the class under
    ``model_based_label_units``, whose own export_to_phy cannot be used in 0.105, as it passes no phy_folder),
    written into the Phy folder as the only predictions there: the same labels and confidences, by cluster id."""
    from spikeinterface.curation.model_based_curation import ModelBasedClassification, load_model

    for saved in (ur_copy.out_dir / "unitrefine_predictions").glob("*.csv"):
        saved.unlink()
    assert find_opinion(ur_copy.phy_dir) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline, model_info = load_model(model_folder=ur_copy.models[FOREST], trust_model=True)
        ModelBasedClassification(analyzer_of(ur_copy), pipeline).predict_labels(
            model_info=model_info, export_to_phy=True, phy_folder=ur_copy.phy_dir,
            set_predictions_as_properties=False)
    opinion = find_opinion(ur_copy.phy_dir)
    assert opinion.source == ur_copy.phy_dir / "cluster_prediction.tsv"
    assert_same_predictions(opinion, expected_by_cluster(ur_copy, FOREST))


def test_hist_gradient_boosting_contributions_add_up(ur_copy):
    """A HistGradientBoostingClassifier (train_model cannot train one, a lab can: the boosting model's pipeline with
    its classifier replaced and refitted on the same training data, saved with skops as train_model saves): labels
    as SpikeInterface's model_based_label_units gives them, TreeSHAP contributions that add up to the pipeline's own
    log-odds of each unit's label."""
    import skops.io
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from spikeinterface.curation import model_based_label_units
    from spikeinterface.curation.model_based_curation import load_model
    from spikeinterface.curation.train_manual_curation import _format_metric_dataframe

    folder = ur_copy.out_dir / "models" / "sua_mua_hist_boosting"
    shutil.copytree(ur_copy.models[BOOSTING], folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline, _ = load_model(model_folder=folder, trust_model=True)
        refit = clone(pipeline)
        boosting = HistGradientBoostingClassifier(max_iter=20, max_depth=2, min_samples_leaf=2, random_state=0)
        refit.steps[-1] = (refit.steps[-1][0], boosting)
        training = pd.read_csv(folder / "training_data.csv", index_col=0)
        labels = pd.read_csv(folder / "labels.csv", index_col=0).iloc[:, 0]
        refit.fit(_format_metric_dataframe(training[list(pipeline.feature_names_in_)]), labels.to_numpy())
        skops.io.dump(refit, folder / "best_model.skops")
        analyzer = analyzer_of(ur_copy)
        expected = model_based_label_units(analyzer, model_folder=folder, trust_model=True,
                                           set_predictions_as_properties=False)
    opinion = find_opinion(ur_copy.phy_dir, folder, contributions=True)
    assert opinion.method == "TreeSHAP" and "log-odds" in opinion.method_note
    assert "HistGradientBoostingClassifier" in opinion.method_note
    assert_same_predictions(opinion, by_cluster(expected))
    outputs = model_outputs(ur_copy, folder, opinion)  # the refitted pipeline's own log-odds of each label
    for unit_id, output in zip(analyzer.get_metrics_extension_data().index, outputs):
        unit = opinion.units[int(unit_id) - EXPORT_UNIT_ID_OFFSET]
        total = unit.base_value + sum(c.contribution for c in unit.contributions)
        assert total == pytest.approx(unit.output, abs=1e-6)
        assert unit.output == pytest.approx(output, abs=1e-6)
    assert len({round(u.output, 6) for u in opinion.units.values()}) > 2  # a fitted model, not a constant


def test_a_model_with_no_exact_method_still_labels(ur_dataset):
    opinion = find_opinion(ur_dataset.phy_dir, ur_dataset.models[MLP], contributions=True)
    assert opinion.method is None and "not available for MLPClassifier" in opinion.method_note
    assert opinion.source == ur_dataset.analyzer_dir  # no saved predictions of this model: computed
    assert_same_predictions(opinion, expected_by_cluster(ur_dataset, MLP))
    assert all(u.contributions is None and u.output is None for u in opinion.units.values())


def test_a_cascade_gives_the_cascades_label(ur_copy):
    folder = ur_copy.out_dir / "unitrefine_predictions"
    (folder / ur_copy.predictions_file(FOREST)).unlink()
    shutil.copy2(ur_copy.predictions[CASCADE], folder)
    opinion = find_opinion(ur_copy.phy_dir)
    saved = pd.read_csv(ur_copy.predictions[CASCADE], index_col="unit_id")
    assert opinion.model_name == CASCADE and set(opinion.classes) == {"good", "MUA", "noise"}
    for unit_id, row in saved.iterrows():
        unit = opinion.units[int(unit_id) - EXPORT_UNIT_ID_OFFSET]
        assert (unit.label, unit.confidence) == (row["cascade_model_label"], row["cascade_confidence"])
    forest, linear = ur_copy.expected[FOREST], ur_copy.expected[LINEAR]
    neural = forest["prediction"] != "noise"
    assert np.allclose(saved["cascade_confidence"][neural], (forest["probability"] * linear["probability"])[neural])


def test_json_round_trip_and_the_guis_command(ur_dataset):
    opinion = find_opinion(ur_dataset.phy_dir, ur_dataset.models[FOREST], contributions=True)
    data = opinion.to_json()
    assert ModelOpinion.from_json(json.loads(json.dumps(data, allow_nan=False))).to_json() == data
    env = {"PYTHONPATH": str(REPO)}
    import os

    done = subprocess.run([sys.executable, "-m", "phy_bcreason", "unitrefine", str(ur_dataset.phy_dir), "--model",
                           str(ur_dataset.models[FOREST]), "--json"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == data  # stdout holds only the JSON


def test_cli_table_and_explain_json(ur_dataset, capsys):
    assert cli.main(["unitrefine", str(ur_dataset.phy_dir), "--model", str(ur_dataset.models[LINEAR]),
                     "--top", "2"]) == 0
    out = capsys.readouterr().out
    expected = expected_by_cluster(ur_dataset, LINEAR)
    lines = out.splitlines()
    assert lines[3].split()[:5] == ["cluster", "label", "confidence", "bombcell", "agrees"]
    rows = [line.split() for line in lines[4:]]
    assert {int(r[0]): (r[1], float(r[2])) for r in rows} == {c: (lab, round(p, 3)) for c, (lab, p) in
                                                                 expected.items()}
    assert any(r[3:5] == ["GOOD", "no"] for r in rows) and any(r[3:5] == ["GOOD", "yes"] for r in rows)
    assert cli.main(["explain", str(ur_dataset.phy_dir), "--json", "--model", str(ur_dataset.models[FOREST])]) == 0
    units = json.loads(capsys.readouterr().out)
    forest = expected_by_cluster(ur_dataset, FOREST)
    for unit in units:
        ur = unit["unitrefine"]
        assert (ur["label"], ur["model"]) == (forest[unit["cluster_id"]][0], FOREST)
        assert ur["confidence"] == pytest.approx(forest[unit["cluster_id"]][1], abs=1e-7)
        assert ur["agrees"] == model_agrees(ur["label"], unit["label"]) and len(ur["top"]) == 3
    assert cli.main(["explain", str(ur_dataset.phy_dir), "--json"]) == 0  # saved predictions: no contributions
    assert all(u["unitrefine"]["top"] is None for u in json.loads(capsys.readouterr().out))


def test_audit_carries_the_models_columns(ur_dataset, tmp_path, capsys):
    out = tmp_path / "audit"
    assert cli.main(["audit", str(ur_dataset.out_dir), "--out", str(out), "--no-report", "--model",
                     str(ur_dataset.models[LINEAR])]) == 0
    units = pd.read_csv(out / "units.tsv", sep="\t", keep_default_na=False)
    expected = expected_by_cluster(ur_dataset, LINEAR)
    assert {int(c): lab for c, lab in zip(units["cluster_id"], units["ur_label"])} == \
        {c: lab for c, (lab, _) in expected.items()}
    assert units["ur_top"].str.count(";").eq(2).all() and set(units["ur_agrees"].astype(str)) <= {"0", "1", ""}


def _one_line_refusal(capsys, args, opinion_args, kwargs, *words):
    with pytest.raises(UnitRefineError) as caught:
        find_opinion(*opinion_args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"phy-bcreason: {message}"
    return message


def test_a_model_folder_without_model_info_is_refused(ur_copy, capsys):
    (ur_copy.models[LINEAR] / "model_info.json").unlink()
    message = _one_line_refusal(capsys, ["unitrefine", str(ur_copy.phy_dir), "--model", str(ur_copy.models[LINEAR])],
                                (ur_copy.phy_dir, ur_copy.models[LINEAR]), {}, "model_info.json", "file not found")
    assert message.startswith(str(ur_copy.models[LINEAR] / "model_info.json"))


def test_a_model_needing_metrics_the_analyzer_lacks_is_refused(ur_copy, capsys):
    from spikeinterface.core import load_sorting_analyzer

    analyzer = load_sorting_analyzer(ur_copy.analyzer_dir)
    analyzer.delete_extension("template_metrics")  # an analyzer computed without template metrics
    message = _one_line_refusal(capsys, ["unitrefine", str(ur_copy.phy_dir), "--model", str(ur_copy.models[MLP])],
                                (ur_copy.phy_dir, ur_copy.models[MLP]), {}, "lacks", "peak_to_trough_duration")
    assert message.startswith(str(ur_copy.analyzer_dir))


def test_another_sortings_predictions_are_refused(ur_copy, capsys):
    path = ur_copy.out_dir / "unitrefine_predictions" / ur_copy.predictions_file(FOREST)
    table = pd.read_csv(path, index_col="unit_id")
    table.index = table.index - EXPORT_UNIT_ID_OFFSET  # the units as a Kilosort folder's analyzer numbers them
    shutil.rmtree(ur_copy.analyzer_dir)  # predictions alone: only the ids tell
    table.to_csv(path)
    message = _one_line_refusal(capsys, ["unitrefine", str(ur_copy.phy_dir)], (ur_copy.phy_dir,), {},
                                "cluster_si_unit_ids.tsv", "not for this Phy folder")
    assert message.startswith(str(path))
    # Phy's process gets one line and goes on: explain still explains, with a note
    assert cli.main(["explain", str(ur_copy.phy_dir), "--json"]) == 0
    captured = capsys.readouterr()
    assert "unitrefine" not in json.loads(captured.out)[0] and message in captured.err


def test_predictions_made_on_another_analyzer_are_refused(ur_copy):
    path = ur_copy.out_dir / "unitrefine_predictions" / ur_copy.predictions_file(FOREST)
    table = pd.read_csv(path, index_col="unit_id")
    table.index = table.index + 1000
    table.to_csv(path)
    with pytest.raises(UnitRefineError, match="are not units of the analyzer"):
        find_opinion(ur_copy.phy_dir)


def test_nothing_found_and_no_model_named_is_none(si_dataset):
    assert find_opinion(si_dataset().phy_dir) is None


@pytest.mark.parametrize("model, bombcell, classes, agrees", [
    ("noise", "NOISE", ["neural", "noise"], True), ("neural", "NOISE", ["neural", "noise"], False),
    ("neural", "MUA", ["neural", "noise"], True), ("neural", "NON-SOMA", ["neural", "noise"], True),
    ("good", "NON-SOMA MUA", ["good", "noise"], True), ("noise", "GOOD", ["good", "noise"], False),
    ("sua", "GOOD", ["mua", "sua"], True), ("mua", "GOOD", ["mua", "sua"], False),
    ("mua", "NON-SOMA MUA", ["mua", "sua"], True), ("sua", "NON-SOMA MUA", ["mua", "sua"], False),
    ("sua", "NON-SOMA", ["mua", "sua"], None), ("mua", "NOISE", ["mua", "sua"], None),
    ("good", "non_soma_good", None, True), ("MUA", "NOISE", ["good", "MUA", "noise"], False),
    ("noise", "NON-SOMA", ["good", "MUA", "noise"], False), ("good", "NON-SOMA", ["good", "MUA", "noise"], None),
    (None, "GOOD", None, None), ("neural", None, None, None),
])
def test_model_agrees(model, bombcell, classes, agrees):
    assert model_agrees(model, bombcell, classes=classes) is agrees


def test_three_way_lists_the_curators_disagreements_first(ur_copy, capsys):
    from phy_bcreason.api import explain_folder
    from phy_bcreason.tuning.concordance import three_way

    groups = {0: "good", 2: "mua", 15: "noise"}
    pd.DataFrame({"cluster_id": list(groups), "group": list(groups.values())}).to_csv(
        ur_copy.phy_dir / "cluster_group.tsv", sep="\t", index=False)
    opinion = find_opinion(ur_copy.phy_dir, ur_copy.models[LINEAR])
    table = three_way(explain_folder(ur_copy.phy_dir), groups, opinion)
    order = table["model_agrees"].map({False: 0, True: 2}).fillna(1).tolist()
    assert order == sorted(order) and order[0] == 0 and len(table) == 27
    row = table.set_index("cluster_id").loc[2]
    assert (row["user"], row["model"]) == ("mua", opinion.units[2].label)
    assert cli.main(["concordance", str(ur_copy.phy_dir), "--model", str(ur_copy.models[LINEAR])]) == 0
    out = capsys.readouterr().out
    assert f"UnitRefine's {LINEAR}" in out
    first = out.split("model disagree, first")[1].splitlines()[2].split()
    assert int(first[0]) == int(table["cluster_id"][0])


def test_an_analyzer_of_another_sorting_is_refused(ur_copy, capsys):
    spike_clusters = ur_copy.phy_dir / "spike_clusters.npy"
    clusters = np.load(spike_clusters)
    counts = np.bincount(clusters.ravel())
    np.save(spike_clusters, np.repeat(np.arange(len(counts)), counts[::-1]))  # cluster i has cluster N-1-i's count
    _one_line_refusal(capsys, ["unitrefine", str(ur_copy.phy_dir), "--model", str(ur_copy.models[LINEAR])],
                      (ur_copy.phy_dir, ur_copy.models[LINEAR]), {}, "another sorting", str(ur_copy.analyzer_dir))
    # saved predictions of that analyzer: its saved num_spikes tell, without SpikeInterface
    _one_line_refusal(capsys, ["unitrefine", str(ur_copy.phy_dir)], (ur_copy.phy_dir,), {}, "another sorting")


def test_saved_predictions_and_a_model_without_the_analyzer(ur_copy):
    shutil.rmtree(ur_copy.analyzer_dir)
    opinion = find_opinion(ur_copy.phy_dir, ur_copy.models[FOREST], contributions=True)
    assert_same_predictions(opinion, expected_by_cluster(ur_copy, FOREST))
    assert opinion.method is None and any("no SortingAnalyzer" in n for n in opinion.notes)
    with pytest.raises(UnitRefineError, match="no SortingAnalyzer found"):  # nothing saved for this model
        find_opinion(ur_copy.phy_dir, ur_copy.models[LINEAR])
