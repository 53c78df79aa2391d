"""What-if thresholds, judged by Bombcell's own classifier: in the dock of a real Phy GUI and on the CLI."""

import contextlib
import io
import json
import subprocess
import sys

import pandas as pd

from phy_bcreason.gui.dock import THRESHOLD_COLUMN
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from tests.test_plugin_gui import dock, select

with contextlib.redirect_stdout(io.StringIO()):
    from bombcell.quality_metrics import get_quality_unit_type


def bombcell_labels(bombcell_dir, overrides=None, params_file=PARAMS_FILE):
    params = pd.read_parquet(bombcell_dir / params_file).iloc[0].to_dict()
    metrics = pd.read_parquet(bombcell_dir / METRICS_FILE)
    with contextlib.redirect_stdout(io.StringIO()):
        labels = get_quality_unit_type({**params, **(overrides or {})}, metrics)[1]
    return dict(zip(metrics["phy_clusterID"].tolist(), labels))


def shown_labels(controller):
    view = controller.supervisor.cluster_view
    return {c: view.get(c)["bc_label"] for c in view.get_ids()}


def rule_item(view, metric):
    for b in range(view.tree.topLevelItemCount()):
        block = view.tree.topLevelItem(b)
        for i in range(block.childCount()):
            if block.child(i).text(0) == metric:
                return block.child(i)
    raise KeyError(metric)


def test_editing_a_threshold_in_the_dock_changes_exactly_bombcells_labels(ks_dataset_copy, open_phy):
    bombcell_dir = ks_dataset_copy / "bombcell"
    saved = bombcell_labels(bombcell_dir)
    edited = bombcell_labels(bombcell_dir, {"maxRPVviolations": 0.5})
    flipped = sorted(c for c in saved if saved[c] != edited[c])
    assert flipped  # the edit matters on this dataset

    controller, gui = open_phy(ks_dataset_copy)
    cluster_view = controller.supervisor.cluster_view
    cluster_view.sort_by("bc_label", "asc")
    select(controller, [flipped[0]])
    view = dock(gui)
    assert not view.banner.isVisibleTo(view)
    rule_item(view, "fractionRPVs_estimatedTauR").setText(THRESHOLD_COLUMN, "0.5")  # as a user's edit commits

    assert shown_labels(controller) == edited
    in_view_order = [cluster_view.get(c)["bc_label"] for c in cluster_view.get_ids()]
    assert in_view_order == sorted(in_view_order)  # the sort follows the edited labels
    assert view.banner.isVisibleTo(view) and "maxRPVviolations 0.1 -> 0.5" in view.whatif.text()
    assert f"{len(flipped)} MUA -> GOOD" in gui.status_message
    view.list_button.click()
    assert sorted(controller.supervisor.cluster_view.get_ids()) == flipped

    view.reset_button.click()
    assert shown_labels(controller) == saved
    assert not view.banner.isVisibleTo(view) and "what-if" not in gui.status_message


def test_toggling_a_switch_follows_bombcell(ks_dataset_copy, open_phy):
    bombcell_dir = ks_dataset_copy / "bombcell"
    edited = bombcell_labels(bombcell_dir, {"splitGoodAndMua_NonSomatic": True})
    controller, gui = open_phy(ks_dataset_copy)
    select(controller, [0])
    dock(gui).switches["splitGoodAndMua_NonSomatic"].setChecked(True)
    assert shown_labels(controller) == edited
    assert "NON-SOMA GOOD" in set(edited.values())


def test_saved_parameters_reproduce_the_edited_labels_in_bombcell(ks_dataset_copy, open_phy):
    bombcell_dir = ks_dataset_copy / "bombcell"
    original = (bombcell_dir / PARAMS_FILE).read_bytes()
    controller, gui = open_phy(ks_dataset_copy)
    select(controller, [0])
    view = dock(gui)
    rule_item(view, "presenceRatio").setText(THRESHOLD_COLUMN, "0.3")
    rule_item(view, "nSpikes").setText(THRESHOLD_COLUMN, "100")
    shown = shown_labels(controller)
    view.save_button.click()
    (saved_file,) = bombcell_dir.glob("_bc_parameters.whatif-*.parquet")
    assert (bombcell_dir / PARAMS_FILE).read_bytes() == original  # never over the original
    assert bombcell_labels(bombcell_dir, params_file=saved_file.name) == shown
    assert shown != bombcell_labels(bombcell_dir)


def test_cli_set_explains_with_bombcells_labels_for_the_edit(ks_dataset):
    overrides = {"maxRPVviolations": 0.5, "minPresenceRatio": 0.5}
    args = [a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]
    result = subprocess.run([sys.executable, "-m", "phy_bcreason", "explain", str(ks_dataset), "--json", *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)
    expected = bombcell_labels(ks_dataset / "bombcell", overrides)
    assert {u["cluster_id"]: u["label"] for u in units} == expected
    assert "what-if: maxRPVviolations 0.1 -> 0.5, minPresenceRatio 0.7 -> 0.5" in result.stderr

    summary = subprocess.run([sys.executable, "-m", "phy_bcreason", "summary", str(ks_dataset), *args],
                             capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0 and summary.stdout.startswith("what-if: ")
    counts = pd.Series(list(expected.values())).value_counts()
    assert all(any(line.split() == [label, str(n)] for line in summary.stdout.splitlines())
               for label, n in counts.items())

    bad = subprocess.run([sys.executable, "-m", "phy_bcreason", "explain", str(ks_dataset), "--set", "maxRPV=1"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("phy-bcreason: maxRPV: not a Bombcell threshold")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_population_view_counts_rules_and_a_click_on_the_plot_moves_the_threshold(ks_dataset_copy, open_phy, qapp):
    from matplotlib.backend_bases import MouseEvent

    from phy_bcreason import explain_folder
    from phy_bcreason.gui.dock import POPULATION_HEADERS

    explanation = explain_folder(ks_dataset_copy, check=False)
    controller, gui = open_phy(ks_dataset_copy)
    gui.show()
    gui.resize(1800, 1000)
    select(controller, [10])
    view = dock(gui)
    view.tabs.setCurrentIndex(1)
    panel = view.population
    decides = POPULATION_HEADERS.index("decides")
    rule_column = POPULATION_HEADERS.index("rule")
    counts = (explanation.status == 0).sum(axis=0)
    assert [int(panel.table.item(j, decides).text()) for j in range(len(explanation.rules))] == list(counts)

    j = next(j for j, r in enumerate(explanation.rules) if r.param == "minPresenceRatio")
    assert panel.table.item(j, rule_column).text() == "presenceRatio<minPresenceRatio"
    panel.table.cellClicked.emit(j, 0)
    assert panel.axes.lines[0].get_xdata()[0] == explanation.thresholds[j]  # the threshold line
    qapp.processEvents()
    panel.canvas.draw()
    x, y = panel.axes.transData.transform((0.6, 1.0))
    MouseEvent("button_release_event", panel.canvas, x, y, button=1)._process()  # a click at 0.6
    moved = float(panel.threshold.text())
    assert abs(moved - 0.6) < 0.02
    assert shown_labels(controller) == bombcell_labels(ks_dataset_copy / "bombcell", {"minPresenceRatio": moved})
    assert shown_labels(controller)[10] == "GOOD"  # presence ratio 0.67 passes at 0.6


def test_another_runs_parameter_file_loads_as_a_what_if(ks_dataset_copy, bombcell_rerun, open_phy):
    """A re-run with other thresholds (Bombcell's own parameter file): loaded in the dock, the labels become the
    ones that run saved; Reset returns to this run's."""
    other = bombcell_rerun(ks_dataset_copy, {"maxRPVviolations": 0.5, "minPresenceRatio": 0.9}, "other_run")
    saved_by_other = pd.read_parquet(other / METRICS_FILE).set_index("phy_clusterID")["bc_unitType"].fillna("")
    controller, gui = open_phy(ks_dataset_copy)
    view = dock(gui)
    before = shown_labels(controller)
    view.load_parameters(other / PARAMS_FILE)
    assert set(controller.phy_bcreason.live.overrides) == {"maxRPVviolations", "minPresenceRatio"}
    assert shown_labels(controller) == saved_by_other.to_dict() != before
    assert "maxRPVviolations 0.1 -> 0.5" in view.whatif.text()
    view.reset_button.click()
    assert shown_labels(controller) == before
    view.load_parameters(ks_dataset_copy / "bombcell" / PARAMS_FILE)  # this run's own file: nothing to try
    assert "no threshold or switch the rules read differs from this run" in view.whatif.text()
