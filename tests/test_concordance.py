"""The curator's labels against Bombcell's (issue #17, CLI and engine): the counts, the rules behind each
disagreement, and suggested thresholds whose claimed agreement the classifier's own code confirms."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd

from phy_bcreason.api import explain
from phy_bcreason.core.rules import SPIKEINTERFACE_LABELS, unflatten_thresholds
from phy_bcreason.io.bombcell import METRICS_FILE
from phy_bcreason.io.find import find_bombcell_dir, load_results
from phy_bcreason.tuning.concordance import LABEL_GROUPS, concordance, suggest, suggest_jointly


def curator(explanation, kept_rules: set[str], noise_rules: set[str] = frozenset()) -> dict[int, str]:
    """A labeller who agrees with Bombcell except: units rejected only by ``kept_rules`` are good to them, units
    kept by Bombcell but failing... none; units made noise only by ``noise_rules`` are mua to them."""
    groups = {}
    for row, cluster_id in enumerate(explanation.cluster_ids.tolist()):
        label = explanation.rule_labels[row]
        decisive = {explanation.rules[j].name for j in np.flatnonzero(explanation.status[row] == 0)}
        group = LABEL_GROUPS.get(label, "good" if label == "NON-SOMA" else "")
        if decisive and decisive <= kept_rules and label == "MUA":
            group = "good"
        if decisive and decisive <= noise_rules and label == "NOISE":
            group = "mua"
        if group:
            groups[cluster_id] = group
    return groups


def bombcell_groups(metrics: pd.DataFrame, params: dict, ids) -> list[str]:
    """Bombcell's own classifier, non-somatic units split, as Phy groups."""
    with contextlib.redirect_stdout(io.StringIO()):
        from bombcell.quality_metrics import get_quality_unit_type

        labels = get_quality_unit_type({**params, "splitGoodAndMua_NonSomatic": True}, metrics.copy())[1]
    return [LABEL_GROUPS.get(label, "") for label in labels]


def agreement(predicted: list[str], ids: list[int], groups: dict[int, str]) -> int:
    return sum(groups[c] == p for c, p in zip(ids, predicted) if c in groups)


def test_counts_rules_and_suggestions_are_bombcells(ks_dataset):
    results = load_results(find_bombcell_dir(ks_dataset), ks_dir=ks_dataset)
    explanation = explain(results, check=False)
    groups = curator(explanation, {"fractionRPVs_estimatedTauR>maxRPVviolations"},
                     {"waveformBaselineFlatness>maxWvBaselineFraction"})
    ids = explanation.cluster_ids.tolist()
    ours = bombcell_groups(results.metrics, results.params, ids)
    result = concordance(explanation, groups)
    assert result.agree == agreement(ours, ids, groups)
    for bombcell_group in ("good", "mua", "noise"):
        for user_group in ("good", "mua", "noise"):
            expected = sum(1 for c, p in zip(ids, ours) if c in groups and p == bombcell_group
                           and groups[c] == user_group)
            assert result.table.loc[bombcell_group, user_group] == expected
    assert result.disagreements, "the curator disagrees on chosen rules"
    for disagreement in result.disagreements:
        assert disagreement["rules"] in (["fractionRPVs_estimatedTauR>maxRPVviolations"],
                                         ["waveformBaselineFlatness>maxWvBaselineFraction"])

    suggestions = suggest(explanation, groups)
    assert {s.param for s in suggestions} >= {"maxRPVviolations"}
    for s in suggestions:  # each claim, checked by Bombcell's own classifier
        assert s.agree_after > s.agree_before == result.agree
        assert agreement(bombcell_groups(results.metrics, {**results.params, s.param: s.suggested}, ids), ids,
                         groups) == s.agree_after, s
    joint = suggest_jointly(results, groups)
    assert joint.agree_after >= max(s.agree_after for s in suggestions)
    assert agreement(bombcell_groups(results.metrics, {**results.params, **joint.overrides}, ids), ids,
                     groups) == joint.agree_after
    assert 0 <= joint.held_out_before <= 1 and 0 <= joint.held_out_after <= 1


def test_suggestions_for_spikeinterface_results_are_in_its_names_and_checked_by_it(si_dataset):
    dataset = si_dataset("default", "sorter_output")
    results = load_results(find_bombcell_dir(dataset.phy_dir), ks_dir=dataset.phy_dir)
    explanation = explain(results, check=False)
    groups = curator(explanation, {"presence_ratio<mua.presence_ratio.greater", "num_spikes<mua.num_spikes.greater"})
    suggestions = suggest(explanation, groups)
    assert suggestions and all(s.param.startswith(("noise.", "mua.", "non-somatic.")) for s in suggestions)
    ids = explanation.cluster_ids.tolist()
    for s in suggestions:
        thresholds = unflatten_thresholds(results.thresholds, {**results.params, s.param: s.suggested})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from spikeinterface.curation import bombcell_label_units

            labels = bombcell_label_units(external_metrics=results.metrics, thresholds=thresholds,
                                          split_non_somatic=True)["bombcell_label"]
        predicted = [LABEL_GROUPS.get(SPIKEINTERFACE_LABELS[label], "") for label in labels]
        assert agreement(predicted, ids, groups) == s.agree_after, s


def test_the_cli_reads_phys_cluster_group_file(ks_dataset_copy):
    explanation = explain(load_results(find_bombcell_dir(ks_dataset_copy), ks_dir=ks_dataset_copy), check=False)
    groups = curator(explanation, {"fractionRPVs_estimatedTauR>maxRPVviolations"})
    pd.DataFrame({"cluster_id": list(groups), "group": list(groups.values())}).to_csv(
        ks_dataset_copy / "cluster_group.tsv", sep="\t", index=False)
    result = subprocess.run([sys.executable, "-m", "phy_bcreason", "concordance", str(ks_dataset_copy), "--json"],
                            capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labelled"] == len(groups) and report["agree"] == concordance(explanation, groups).agree
    assert report["suggestions"][0]["param"] == "maxRPVviolations"
    text = subprocess.run([sys.executable, "-m", "phy_bcreason", "concordance", str(ks_dataset_copy)],
                          capture_output=True, text=True, encoding="utf-8", timeout=300).stdout
    assert "maxRPVviolations 0.1 -> " in text and "on labels held out of the fit" in text


def test_no_labels_is_one_line(ks_dataset_copy):
    result = subprocess.run([sys.executable, "-m", "phy_bcreason", "concordance", str(ks_dataset_copy)],
                            capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "cluster_group.tsv" in result.stderr


def test_against_bombcells_own_suggestions(ks_dataset):
    """Bombcell's suggest_parameter_adjustments on the same labels, both judged by Bombcell's classifier: the
    agreement its suggestions reach (it needs 20 labelled units per class and a 5% held-out gain, so on small
    label sets it often suggests nothing) against ours."""
    from bombcell.manual_analysis import analyze_classification_concordance, suggest_parameter_adjustments

    results = load_results(find_bombcell_dir(ks_dataset), ks_dir=ks_dataset)
    explanation = explain(results, check=False)
    groups = curator(explanation, {"fractionRPVs_estimatedTauR>maxRPVviolations"})
    ids = explanation.cluster_ids.tolist()
    metrics = pd.read_parquet(ks_dataset / "bombcell" / METRICS_FILE)
    manual = pd.DataFrame({"unit_id": list(groups), "manual_classification":
                           [{"noise": 0, "good": 1, "mua": 2}[g] for g in groups.values()]})
    table = metrics.assign(Bombcell_unit_type=explanation.rule_labels)
    with contextlib.redirect_stdout(io.StringIO()):
        merged, _, _ = analyze_classification_concordance(manual, table, param=dict(results.params))
        theirs = suggest_parameter_adjustments(merged, table, dict(results.params))
    their_params = {text.split(":")[0].strip(): float(text.split("→")[-1]) for text in theirs}
    current = agreement(bombcell_groups(results.metrics, results.params, ids), ids, groups)
    with_theirs = agreement(bombcell_groups(results.metrics, {**results.params, **their_params}, ids), ids, groups)
    joint = suggest_jointly(results, groups)
    print(f"labels {len(groups)}: agree now {current}, with Bombcell's suggestions {with_theirs} "
          f"({their_params}), with ours {joint.agree_after} ({joint.overrides})")
    assert joint.agree_after > current and joint.agree_after >= with_theirs


def test_labelling_in_phy_updates_agreement_and_a_suggestion_applies_as_a_what_if(ks_dataset_copy, open_phy):
    from phy.gui.qt import QApplication

    from tests.test_plugin_gui import dock, rows, wait_for_plugin

    explanation = explain(load_results(find_bombcell_dir(ks_dataset_copy), ks_dir=ks_dataset_copy), check=False)
    groups = curator(explanation, {"fractionRPVs_estimatedTauR>maxRPVviolations"})
    rescued = [c for c, g in groups.items() if g == "good" and explanation.rule_labels[explanation.rows[c]] == "MUA"]
    assert rescued
    controller, gui = open_phy(ks_dataset_copy)
    wait_for_plugin(controller)
    supervisor = controller.supervisor
    assert all(row["bc_agrees"] is None for row in rows(controller).values())  # nothing labelled: empty
    for group in ("good", "mua", "noise"):
        ids = [c for c, g in groups.items() if g == group]
        supervisor.move(group, ids)
        supervisor.block()
    shown = rows(controller)
    expected = concordance(explanation, groups)
    disagreeing = {d["cluster_id"] for d in expected.disagreements}
    assert {c for c, row in shown.items() if row["bc_agrees"] == 0} == disagreeing == set(rescued)
    assert sum(row["bc_agrees"] == 1 for row in shown.values()) == expected.agree

    view = dock(gui)
    view.tabs.setCurrentWidget(view.concordance)
    QApplication.processEvents()
    panel = view.concordance
    assert panel.summary.text().startswith(f"<b>{expected.agree} of {len(groups)}</b>")
    assert panel.disagreements.rowCount() == len(disagreeing)
    assert panel.suggestions[0][0] == "maxRPVviolations"
    panel.apply(0)  # a what-if: the rescued units become GOOD, and agree
    shown = rows(controller)
    assert all(shown[c]["bc_label"] == "GOOD" and shown[c]["bc_agrees"] == 1 for c in rescued)
    assert "maxRPVviolations" in view.whatif.text()
    view.reset_button.click()
    shown = rows(controller)
    assert all(shown[c]["bc_label"] == "MUA" and shown[c]["bc_agrees"] == 0 for c in rescued)

    # undo the last move (noise): the cells and the tab follow it (Phy 2.1.0 leaves the row's old group shown)
    noise = [c for c, g in groups.items() if g == "noise"]
    supervisor.undo()
    supervisor.block()
    QApplication.processEvents()
    shown = rows(controller)
    assert noise and all(shown[c]["bc_agrees"] is None for c in noise)
    assert all(shown[c]["bc_agrees"] == 0 for c in rescued)
    left = {c: g for c, g in groups.items() if g != "noise"}
    assert panel.summary.text().startswith(f"<b>{concordance(explanation, left).agree} of {len(left)}</b>")
