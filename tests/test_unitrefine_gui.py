"""UnitRefine's model beside Bombcell in a real Phy GUI (TemplateController + GUI, offscreen), on a sorting exported
to Phy by SpikeInterface, labelled by Bombcell through run_bombcell_qc, with models trained by SpikeInterface's
train_model and their predictions made by model_based_label_units (tests/ur_builder.py)."""

import math
import time

import pytest

from phy_bcreason.gui.second_judge import NOT_SEEN, UR_COLUMNS
from phy_bcreason.unitrefine.opinion import find_opinion
from tests import ur_builder
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin

pytestmark = pytest.mark.filterwarnings("ignore")


def wait_for_model(controller, timeout: float = 180.0) -> None:
    """The model's child answers on a worker of its own; then the plugin's worker."""
    wait_for_plugin(controller, timeout, worker=controller.phy_bcreason.model_worker)
    wait_for_plugin(controller)


def configure(tmp_path, model_dir) -> None:
    """Phy's configuration, as a lab writes it: the model folder for the plugin."""
    config_dir = tmp_path / "phy-config"  # the folder conftest's open_phy gives Phy
    config_dir.mkdir(exist_ok=True)
    (config_dir / "phy_config.py").write_text(
        f"c = get_config()\nc.BombcellReasonPlugin.unitrefine_model = r\"{model_dir}\"\n", encoding="utf-8")


def si_predictions(data, name) -> dict[int, tuple[str, float]]:
    """SpikeInterface's own predictions (model_based_label_units), by Phy cluster id."""
    expected = data.expected[name]
    return {int(u) - ur_builder.si_builder.EXPORT_UNIT_ID_OFFSET: (str(row.prediction), float(row.probability))
            for u, row in expected.iterrows()}


@pytest.fixture
def data(ur_dataset, tmp_path):
    return ur_builder.ur_dataset_copy(ur_dataset, tmp_path / "data")


def test_saved_predictions_in_the_columns_and_the_dock(data, open_phy):
    """UnitRefine's saved predictions (no model configured): label and confidence of every cluster as SpikeInterface
    predicted, agreement with Bombcell's label, the dock's line and Model tab; no contributions without the model."""
    controller, gui = open_phy(data.phy_dir)
    wait_for_plugin(controller)
    expected = si_predictions(data, ur_builder.FOREST)
    columns = controller.supervisor.columns
    assert all(columns.count(name) == 1 for name in UR_COLUMNS)
    # the two judges' labels side by side, before the wide reason column (behind it they were out of view)
    assert columns[:3] == ["bc_label", "ur_label", "bc_classificationReason"]
    opinion = find_opinion(data.phy_dir)
    shown = rows(controller)
    assert sorted(shown) == sorted(expected)
    for cluster_id, row in shown.items():
        label, probability = expected[cluster_id]
        assert row["ur_label"] == label
        assert row["ur_confidence"] == pytest.approx(probability, abs=5e-4)
        agrees = opinion.agrees(cluster_id, row["bc_label"])
        assert row["ur_agrees"] == (None if agrees is None else float(agrees))
    assert {row["ur_agrees"] for row in shown.values()} >= {0.0, 1.0}  # the test data has both

    view = dock(gui)
    assert [view.tabs.tabText(i) for i in range(view.tabs.count())][-1] == "Model"
    disagree = next(c for c, row in shown.items() if row["ur_agrees"] == 0.0)
    select(controller, [disagree])
    line = view.model_line.text()
    assert line.startswith(f"UnitRefine ({ur_builder.FOREST}): {expected[disagree][0]}") and "disagrees" in line
    assert "name the model folder" in view.model.sum.text() and not view.model.table.isVisibleTo(view.model)
    assert line in view.text()

    # Your labels, three ways: the clusters where Bombcell and the model disagree first, your label beside them
    controller.supervisor.label("group", "good", cluster_ids=[disagree])
    wait_for_plugin(controller)
    view.tabs.setCurrentWidget(view.concordance)
    table = view.three_way.table
    disagreeing = sorted(c for c, row in shown.items() if row["ur_agrees"] == 0.0)
    listed = [int(table.item(r, 0).text()) for r in range(table.rowCount())]
    assert sorted(listed) == sorted(shown) and listed[:len(disagreeing)] == disagreeing
    row = listed.index(disagree)
    assert [table.item(row, k).text() for k in range(4)] == [str(disagree), "good", shown[disagree]["bc_label"],
                                                             expected[disagree][0]]
    assert f"disagree on {len(disagreeing)} of the" in view.three_way.heading.text()


def test_the_model_run_off_the_gui_thread_gives_contributions_and_never_a_parents_prediction(data, tmp_path, open_phy):
    """With the model folder in Phy's config the model runs in a child process; its label and confidence are
    SpikeInterface's, the Model tab lists the contributions that add up to the model's output, and a merged cluster
    is 'not seen' (never a parent's prediction) until undo brings its parents back."""
    configure(tmp_path, data.models[ur_builder.FOREST])
    controller, gui = open_phy(data.phy_dir)
    wait_for_model(controller)
    judge = controller.phy_bcreason.judge
    assert judge.error is None and judge.opinion.method == "TreeSHAP"
    expected = si_predictions(data, ur_builder.FOREST)
    shown = rows(controller)
    for cluster_id, (label, probability) in expected.items():
        assert shown[cluster_id]["ur_label"] == label
        assert shown[cluster_id]["ur_confidence"] == pytest.approx(probability, abs=5e-4)

    view = dock(gui)
    view.tabs.setCurrentWidget(view.model)
    cluster_id = sorted(expected)[0]
    select(controller, [cluster_id])
    unit = judge.unit(cluster_id)
    table = view.model.table
    assert table.rowCount() == len(unit.contributions) > 0
    for row, c in enumerate(unit.contributions):
        assert table.item(row, 0).text() == c.feature
        assert float(table.item(row, 2).text()) == pytest.approx(c.contribution, rel=1e-3, abs=1e-4)
    total = unit.base_value + sum(c.contribution for c in unit.contributions)
    assert total == pytest.approx(unit.output, abs=1e-6)
    assert unit.output == pytest.approx(expected[cluster_id][1], abs=1e-6)  # the probability of its label
    assert "TreeSHAP" in view.model.sum.text()

    a, b = sorted(expected)[:2]
    controller.supervisor.merge([a, b])
    wait_for_plugin(controller)
    (merged,) = set(rows(controller)) - set(expected)
    assert rows(controller)[merged]["ur_label"] == NOT_SEEN
    assert math.isnan(rows(controller)[merged]["ur_confidence"]) and rows(controller)[merged]["ur_agrees"] is None
    select(controller, [merged])
    assert "not seen by the model" in view.model_line.text() and not table.isVisibleTo(view.model)
    controller.supervisor.undo()
    wait_for_plugin(controller)
    assert rows(controller)[a]["ur_label"] == expected[a][0]


def test_a_model_folder_that_cannot_be_used_says_so_in_one_line_and_phy_keeps_working(data, tmp_path, open_phy):
    broken = tmp_path / "broken_model"
    broken.mkdir()
    for name in ("best_model.skops", "training_data.csv", "labels.csv"):
        (broken / name).write_bytes((data.models[ur_builder.FOREST] / name).read_bytes())
    configure(tmp_path, broken)  # no model_info.json
    controller, gui = open_phy(data.phy_dir)
    wait_for_model(controller)
    judge = controller.phy_bcreason.judge
    assert judge.error and "model_info.json" in judge.error and "\n" not in judge.error
    assert "model_info.json" in gui.status_message
    shown = rows(controller)
    expected = si_predictions(data, ur_builder.FOREST)  # the saved predictions are still shown
    assert all(shown[c]["ur_label"] == label for c, (label, _) in expected.items())
    assert all(row["bc_label"] for row in shown.values())  # Bombcell's columns as ever
    select(controller, [sorted(expected)[0]])
    assert "model_info.json" in dock(gui).model_line.text()


def test_no_model_and_no_predictions_adds_nothing(ks_dataset_copy, open_phy):
    controller, gui = open_phy(ks_dataset_copy)
    assert not set(UR_COLUMNS) & set(controller.supervisor.columns)
    assert "Model" not in [dock(gui).tabs.tabText(i) for i in range(dock(gui).tabs.count())]


def test_the_models_process_ends_with_phy(data, tmp_path):
    """The model's child outlives neither a closed nor a killed Phy (it watches its stdin, a pipe Phy holds): a
    parent process that starts it as the plugin does is killed; the child is gone within 5 s."""
    import subprocess
    import sys

    import psutil

    parent = (
        "import sys, threading, time\n"
        "from phy_bcreason.gui.second_judge import SecondJudge\n"
        f"judge = SecondJudge(r'{data.phy_dir}', r'{data.models[ur_builder.FOREST]}')\n"
        "threading.Thread(target=judge.run_model, daemon=True).start()\n"
        "while judge.process is None: time.sleep(0.01)\n"
        "print(judge.process.pid, flush=True)\n"
        "time.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(process.stdout.readline()))
    time.sleep(1.0)
    assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE  # started, still working
    process.kill()
    process.wait()
    gone, alive = psutil.wait_procs([child], timeout=5)
    assert not alive, "the model's process outlived Phy"


def test_the_models_error_line_survives_a_console_code_page(data, tmp_path, monkeypatch):
    """Phy started from a cp932 (or cp1252) console: the child's one line still names the folder as it is."""
    from phy_bcreason.gui.second_judge import SecondJudge

    folder = tmp_path / "mödel µ"
    folder.mkdir()
    (folder / "best_model.skops").write_bytes((data.models[ur_builder.FOREST] / "best_model.skops").read_bytes())
    monkeypatch.setenv("PYTHONIOENCODING", "cp932")
    answer = SecondJudge(data.phy_dir, folder).run_model()
    assert isinstance(answer, str) and str(folder / "model_info.json") in answer
