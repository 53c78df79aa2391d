"""The robustness cases of ``test_robustness.py`` in a REAL Phy GUI (TemplateController + create_gui, offscreen),
plus exporting into a read-only Kilosort folder and opening a folder whose path has spaces and non-ASCII
characters.

For each damaged or odd Bombcell run: Phy opens and lists every cluster, the status bar carries the plugin's
line, selecting a cluster through Phy's supervisor updates the "why?" dock, the ``bc_label`` column says
``(no row)`` where there is no Bombcell row, and nothing in the Kilosort folder changes except Phy's own
``.phy/`` folder and ``phy.log``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pandas as pd
import pytest
from phy.gui.qt import QApplication

from phy_bcreason import explain_folder
from phy_bcreason.cli import AUDIT_FILE, REASON_FILE
from phy_bcreason.core.engine import STATUS_NAMES, STATUS_TEXT
from phy_bcreason.gui.dock import STATUS_COLUMN
from phy_bcreason.gui.session import FROM_LIVE, FROM_RUN, NO_ROW_LABEL
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from phy_bcreason.io.results import BombcellResultsError
from tests import dataset_builder as dsb
from tests.test_plugin_gui import dock, rows, select, wait_for_plugin
from tests.test_robustness import drop_saved_labels, edit_metrics, params_path, snapshot

PHY_OWN = (".phy", "phy.log")  # what Phy itself writes into the folder it opens

# ----------------------------------------------------------------------------------------------------------
# helpers


def listing(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` except Phy's own, as relative paths."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.relative_to(folder).parts[0] not in PHY_OWN}


def user_files(folder: Path) -> dict[str, bytes]:
    """Bytes of every file under ``folder`` except Phy's own ``.phy/`` and ``phy.log``."""
    return {name: data for name, data in snapshot(folder).items() if Path(name).parts[0] not in PHY_OWN}


def phy_cluster_ids(ks: Path) -> list[int]:
    return [int(c) for c in np.unique(np.load(ks / "spike_clusters.npy"))]


def close(controller, gui) -> None:
    """Close Phy as a user would (Phy writes .phy/ and its state on close), before checking the folder."""
    gui.close()
    controller.close()
    QApplication.processEvents()


def expect_folder_unchanged(ks: Path, before_files: dict[str, bytes], before_listing: set[str]) -> None:
    assert listing(ks) == before_listing
    after = user_files(ks)
    assert sorted(after) == sorted(before_files)
    changed = [name for name in after if after[name] != before_files[name]]
    assert changed == [], f"files changed by opening Phy: {changed}"


# ----------------------------------------------------------------------------------------------------------
# the cases (the same edits as test_robustness.py, on a private copy of a real Bombcell run, ids 0..26)


def zero_rows(ks: Path) -> None:
    edit_metrics(ks, lambda m: m.iloc[:0])


def duplicate_ids(ks: Path) -> None:
    def change(m):
        m.loc[5, "phy_clusterID"] = 3
        m.loc[9, "phy_clusterID"] = 7
        return m

    edit_metrics(ks, change)


def another_sorting(ks: Path) -> None:
    """Same ids, but the spike counts belong to other clusters."""
    edit_metrics(ks, lambda m: m.assign(nSpikes=m["nSpikes"].to_numpy()[::-1]))


def missing_parameter_file(ks: Path) -> None:
    """No parameter file and no saved labels (with saved labels the folder opens: test_every_folder.py)."""
    params_path(ks).unlink()
    drop_saved_labels(ks)


def snake_case_parameters(ks: Path) -> None:
    """Bombcell 0.31 (the last before 0.40) saved its parameter dict as it was: snake_case names."""
    old = {"max_n_peaks": 2, "max_n_troughs": 1, "min_wave_duration": 100, "max_wave_duration": 800,
           "max_wave_baseline_fraction": 0.3, "max_RPV": 0.1, "max_perc_spikes_missing": 20,
           "min_num_spikes_total": 300, "min_presence_ratio": 0.7, "extract_raw_waveforms": False,
           "split_good_and_mua_non_somatic": False, "ephys_kilosort_path": str(ks)}
    pd.DataFrame([old]).to_parquet(params_path(ks))


def missing_metric_columns(ks: Path) -> None:
    edit_metrics(ks, lambda m: m.drop(columns=["mainPeakToTroughRatio", "RPV_status"]))


def extra_and_missing_rows(ks: Path) -> None:
    """Rows 40, 41 (and an empty 42) that Phy does not have; cluster 12 without a row."""
    def change(m):
        extra = m.iloc[[0, 1]].assign(phy_clusterID=[40, 41])
        empty = m.iloc[[2]].assign(phy_clusterID=42, nSpikes=0.0)
        return pd.concat([m[~m["phy_clusterID"].isin([12])], extra, empty], ignore_index=True)

    edit_metrics(ks, change)


def merged_after_bombcell(ks: Path) -> None:
    """Clusters 5 and 6 merged into 27 after Bombcell ran: rows 5, 6 have no cluster, 27 has no row."""
    path = ks / "spike_clusters.npy"
    spikes = np.load(path)
    spikes[np.isin(spikes, [5, 6])] = 27
    np.save(path, spikes)


def matlab_results(ks: Path) -> None:
    """MATLAB writes a 1-based clusterID beside phy_clusterID, and rows only for clusters with spikes."""
    edit_metrics(ks, lambda m: m.assign(clusterID=m["phy_clusterID"] + 1).drop(index=8))


def nan_and_inf_metrics(ks: Path) -> None:
    def change(m):
        for column, row, value in (("fractionRPVs_estimatedTauR", 1, np.inf), ("presenceRatio", 4, np.nan),
                                   ("waveformDuration_peakTrough", 2, -np.inf), ("mainPeakToTroughRatio", 5, np.inf)):
            m[column] = m[column].astype(float)
            m.loc[row, column] = value
        return m

    edit_metrics(ks, change)


@dataclass
class ErrorCase:
    build: object
    file: str
    fragments: tuple[str, ...]


@dataclass
class UsableCase:
    build: object
    notes: tuple[str, ...]
    live: list[int] = field(default_factory=list)  # Phy clusters without a Bombcell row: recomputed live
    missing_metrics: tuple[str, ...] = ()
    # What the status bar starts with: None = the plugin's label summary; else a fragment of its warning.
    status: str | None = None


ERROR_CASES = {
    "zero-rows": ErrorCase(zero_rows, METRICS_FILE, ("the metrics table has no rows",)),
    "duplicate-ids": ErrorCase(duplicate_ids, METRICS_FILE, ("phy_clusterID has duplicate ids (3, 7)",)),
    "another-sorting": ErrorCase(another_sorting, METRICS_FILE,
                                 ("these results do not match this Kilosort folder", "spike_clusters.npy")),
    "missing-parameter-file": ErrorCase(missing_parameter_file, PARAMS_FILE, ("file not found",)),
    "snake-case-parameters": ErrorCase(snake_case_parameters, PARAMS_FILE,
                                       ("parameters written by Bombcell < 0.40", "max_n_peaks",
                                        "re-run Bombcell 0.93 or later")),
}

USABLE_CASES = {
    "missing-metric-columns": UsableCase(
        missing_metric_columns, ("no column for metric(s) mainPeakToTroughRatio, RPV_status",),
        missing_metrics=("mainPeakToTroughRatio",)),
    "extra-and-missing-rows": UsableCase(
        extra_and_missing_rows, ("2 result rows have cluster ids not in spike_clusters.npy (40, 41)",
                                 "1 cluster in spike_clusters.npy has no Bombcell row (12)"), live=[12]),
    "matlab-results": UsableCase(
        matlab_results, ("1 cluster in spike_clusters.npy has no Bombcell row (8)",), live=[8]),
    "nan-and-inf-metrics": UsableCase(nan_and_inf_metrics, ()),
    "merged-after-bombcell": UsableCase(
        merged_after_bombcell, ("2 result rows have cluster ids not in spike_clusters.npy (5, 6)",
                                "1 cluster in spike_clusters.npy has no Bombcell row (27)"), live=[27]),
}


# ----------------------------------------------------------------------------------------------------------
# 1. errors: Phy works as usual, the status bar and the dock show the one line naming the file


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_error_cases_in_phy(name, ks_dataset_copy, open_phy):
    case = ERROR_CASES[name]
    ks = ks_dataset_copy
    case.build(ks)
    with pytest.raises(BombcellResultsError) as raised:
        explain_folder(ks)
    error = str(raised.value)
    assert "\n" not in error and error.startswith(f"{ks / 'bombcell' / case.file}: "), error
    assert all(fragment in error for fragment in case.fragments), error
    ids = phy_cluster_ids(ks)
    before_files, before_listing = user_files(ks), listing(ks)

    controller, gui = open_phy(ks)
    assert controller.supervisor is not None
    shown = rows(controller)
    assert sorted(shown) == ids == list(range(27))
    assert gui.status_message == f"phy-bcreason: {error}"

    assert {row["bc_label"] for row in shown.values()} == {NO_ROW_LABEL}
    assert {row["bc_classificationReason"] for row in shown.values()} == {f"no Bombcell results: {error}"}
    assert all(np.isnan(row["bc_nFailed"]) and np.isnan(row["bc_margin"]) for row in shown.values())

    view = dock(gui)
    for cluster_id in (3, 26):
        select(controller, [cluster_id])
        assert view.content.title == f"cluster {cluster_id}"
        assert view.content.reason == f"No Bombcell explanation: {error}"
        assert view.reason.text() == view.content.reason
        assert view.tree.topLevelItemCount() == 0

    close(controller, gui)
    expect_folder_unchanged(ks, before_files, before_listing)


# ----------------------------------------------------------------------------------------------------------
# 2. usable with notes: the results are used; clusters without a row say so


@pytest.mark.parametrize("name", list(USABLE_CASES))
def test_usable_cases_in_phy(name, ks_dataset_copy, open_phy):
    case = USABLE_CASES[name]
    ks = ks_dataset_copy
    original = explain_folder(ks).table()["label"].to_dict()  # before the damage
    case.build(ks)
    expected = explain_folder(ks)  # with Bombcell's own classifier, as the plugin ends up
    for fragment in case.notes:
        assert any(fragment in note for note in expected.notes), (fragment, expected.notes)
    table = expected.table()
    ids = phy_cluster_ids(ks)
    before_files, before_listing = user_files(ks), listing(ks)

    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    assert controller.supervisor is not None
    shown = rows(controller)
    assert sorted(shown) == ids
    assert sorted(c for c, row in shown.items() if row["bc_source"] == FROM_LIVE) == case.live
    for cluster_id, row in shown.items():
        if cluster_id in case.live:  # its metrics recomputed from its spikes: Bombcell's label for it
            assert row["bc_label"] == original.get(cluster_id, row["bc_label"]) != NO_ROW_LABEL, cluster_id
            assert row["bc_classificationReason"].startswith(row["bc_label"]), cluster_id
        else:
            assert row["bc_source"] == FROM_RUN
            assert row["bc_label"] == table.loc[cluster_id, "label"], cluster_id
            assert row["bc_classificationReason"] == table.loc[cluster_id, "reason"], cluster_id
            assert row["bc_nFailed"] == table.loc[cluster_id, "n_decisive"], cluster_id

    # The status bar: the plugin's label summary pointing to the notes, or, where Bombcell's own classifier
    # cannot run on the table, the plugin's warning about that; the dock lists every note.
    status = gui.status_message
    notes = [n for n in expected.notes if "classifier could not check" not in n]
    assert all(any(fragment in n for n in notes) for fragment in case.notes)
    if case.status is None:  # the labels of the clusters Phy has, as their bc_label column shows them
        labels = pd.Series([shown[c]["bc_label"] for c in sorted(shown)], dtype=object)
        counts = labels.replace("", "(empty)").value_counts()  # row 42 has no spikes
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        summary += f"; {len(case.live)} recomputed live" if case.live else ""
        assert status.startswith(f"phy-bcreason: Python Bombcell labels from {expected.source}: {summary}")
        assert ("see the why? dock" in status) == bool(notes)
    else:
        assert status.startswith(case.status), status

    view = dock(gui)
    assert view.notes.isVisibleTo(view) == bool(notes)
    for note in notes:
        assert f"note: {note}" in view.notes.text()
    with_row = [c for c in ids if c not in case.live]
    for cluster_id in (with_row[0], with_row[-1]):
        select(controller, [cluster_id])
        assert view.content.title == f"cluster {cluster_id}: {table.loc[cluster_id, 'label']}"
        assert view.content.reason == table.loc[cluster_id, "reason"]
        assert view.reason.text() == view.content.reason
        assert view.tree.topLevelItemCount() == 3
        metrics = {}
        for i in range(view.tree.topLevelItemCount()):
            block = view.tree.topLevelItem(i)
            stack = [block.child(j) for j in range(block.childCount())]
            while stack:
                item = stack.pop()
                stack.extend(item.child(j) for j in range(item.childCount()))
                metrics.setdefault(item.text(0), set()).add(item.text(STATUS_COLUMN))
        for metric in case.missing_metrics:
            missing = STATUS_TEXT[STATUS_NAMES.index("missing")]
            assert metrics[metric] == {f"{missing}: {metric} is not in the metrics table"}, metrics
    for cluster_id in case.live:
        select(controller, [cluster_id])
        assert view.content.title == f"cluster {cluster_id}: {shown[cluster_id]['bc_label']} (recomputed live)"
        assert view.content.source.startswith("Recomputed live: not in Bombcell's run;")
        assert view.source.isVisibleTo(view) and view.tree.topLevelItemCount() == 3

    close(controller, gui)
    expect_folder_unchanged(ks, before_files, before_listing)


# ----------------------------------------------------------------------------------------------------------
# 3. a path with spaces and non-ASCII characters


def test_path_with_spaces_and_non_ascii_characters_in_phy(ks_dataset, tmp_path, open_phy):
    ks = dsb.copy_dataset(ks_dataset, tmp_path / "données ks 1")
    expected = explain_folder(ks)
    table = expected.table()
    assert expected.notes == []
    before_files, before_listing = user_files(ks), listing(ks)

    controller, gui = open_phy(ks)
    wait_for_plugin(controller)
    shown = rows(controller)
    assert sorted(shown) == phy_cluster_ids(ks) == sorted(table.index)
    for cluster_id, row in shown.items():
        assert row["bc_label"] == table.loc[cluster_id, "label"]
        assert row["bc_classificationReason"] == table.loc[cluster_id, "reason"]
    assert gui.status_message.startswith(f"phy-bcreason: Python Bombcell labels from {expected.source}: ")
    assert "données ks 1" in gui.status_message
    mua = int(table.index[table["label"] == "MUA"][0])
    select(controller, [mua])
    assert dock(gui).content.title == f"cluster {mua}: MUA"
    assert dock(gui).content.reason == table.loc[mua, "reason"]

    close(controller, gui)
    expect_folder_unchanged(ks, before_files, before_listing)


# ----------------------------------------------------------------------------------------------------------
# 4. export into a read-only Kilosort folder


def _without_write_rights(python: str, env: dict) -> tuple[list[str], int] | None:
    """How to run ``python`` so that it cannot write into ``ks``: (command prefix, mode for ``ks``), or None.

    Not root: chmod 0o555 is enough. Root ignores chmod: run as user ``nobody`` (the folder stays root's,
    0o755); if nobody cannot run this Python (e.g. it lives under /root), run as root without
    CAP_DAC_OVERRIDE (setpriv), for whom chmod 0o555 holds again.
    """
    if os.geteuid() != 0:
        return [], 0o555
    runuser = shutil.which("runuser")
    if runuser:
        prefix = [runuser, "-u", "nobody", "--"]
        probe = subprocess.run([*prefix, python, "-c", "import phy_bcreason"],
                               capture_output=True, text=True, env=env, timeout=120)
        if probe.returncode == 0:
            return prefix, 0o755
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix = [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override", "--"]
        probe_dir = Path(tempfile.mkdtemp(prefix="phy-bcreason-probe-"))
        try:
            os.chmod(probe_dir, 0o555)
            probe = subprocess.run([*prefix, python, "-c",
                                    f"import phy_bcreason; open({str(probe_dir / 'x')!r}, 'w')"],
                                   capture_output=True, text=True, env=env, timeout=120)
            if probe.returncode != 0 and "PermissionError" in probe.stderr:
                return prefix, 0o555
        finally:
            os.chmod(probe_dir, 0o755)
            shutil.rmtree(probe_dir, ignore_errors=True)
    return None


def test_export_into_a_read_only_folder_writes_nothing(ks_dataset):
    tmp = Path(tempfile.mkdtemp(prefix="phy-bcreason-ro-"))
    try:
        os.chmod(tmp, 0o755)
        ks = dsb.copy_dataset(ks_dataset, tmp / "ks")
        for folder in [ks, *[p for p in ks.rglob("*") if p.is_dir()]]:
            os.chmod(folder, 0o755)
        home = tmp / "home"  # matplotlib (imported by Bombcell) wants a writable config folder
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(home)}
        python = sys.executable
        how = _without_write_rights(python, env)
        if how is None:
            pytest.skip("running as root, user nobody cannot run this Python (runuser missing or the "
                        f"interpreter {python} not reachable by nobody) and setpriv cannot drop "
                        "CAP_DAC_OVERRIDE: cannot make the folder read-only for the CLI")
        prefix, mode = how
        os.chmod(home, 0o777)
        os.chmod(ks, mode)
        before_files, before_listing = snapshot(ks), listing(ks)
        try:
            result = subprocess.run([*prefix, python, "-m", "phy_bcreason", "export", str(ks)],
                                    capture_output=True, text=True, encoding="utf-8", env=env, timeout=300)
        finally:
            os.chmod(ks, 0o755)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"phy-bcreason: {ks / REASON_FILE}: cannot write"), lines[0]
        assert snapshot(ks) == before_files and listing(ks) == before_listing
        assert not (ks / REASON_FILE).exists() and not (ks / "bombcell" / AUDIT_FILE).exists()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
