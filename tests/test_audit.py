"""`phy-bcreason audit`, `compare` and `methods` on a tree of folders labelled by real Bombcell runs.

The tree: copies of the default dataset (``ks_dataset``), one whose results are a re-run with other thresholds,
one holding a second run with other switches, one whose metrics table is truncated (unreadable), a MATLAB-written
results folder (the bundled demo with the MATLAB case ``demo``), and copies that must not be found (inside
Phy's ``.phy`` cache and a hidden folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.api import bombcell_labels
from phy_bcreason.batch.audit import discover, rule_names, run_audit
from phy_bcreason.batch.methods import methods_paragraph
from phy_bcreason.core.engine import DECISIVE
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE
from phy_bcreason.io.find import load_results
from phy_bcreason.tuning.whatif import save_parameters
from tests import dataset_builder as dsb
from tests.test_matlab import matlab_demo_folder

# Re-runs of the default dataset: other thresholds (as for Neuropixels 2.0 probes), and other switches.
NP2 = {"maxRPVviolations": 0.5, "minPresenceRatio": 0.9}
SPLIT = {"splitGoodAndMua_NonSomatic": True, "maxNPeaks": 3}
EXPECTED = {  # (folder, run) found, in order; the unreadable one included
    ("matlab/ks", "bombcell"),
    ("session1/kilosort4_A", "bombcell"),
    ("session1/kilosort4_B", "bombcell"),
    ("session2/deep/kilosort4_C", "bombcell"),
    ("session2/deep/kilosort4_C", "bombcell_split"),
    ("session2/kilosort4_D", "bombcell"),
}


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def runs(ks_dataset, bombcell_rerun):
    return {"default": ks_dataset / "bombcell", "np2": bombcell_rerun(ks_dataset, NP2, "bombcell_np2"),
            "split": bombcell_rerun(ks_dataset, SPLIT, "bombcell_split")}


@pytest.fixture(scope="module")
def tree(ks_dataset, runs, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audit") / "root"
    a = dsb.copy_dataset(ks_dataset, root / "session1" / "kilosort4_A")
    b = dsb.copy_dataset(ks_dataset, root / "session1" / "kilosort4_B")
    shutil.rmtree(b / "bombcell")
    shutil.copytree(runs["np2"], b / "bombcell")
    c = dsb.copy_dataset(ks_dataset, root / "session2" / "deep" / "kilosort4_C")
    shutil.copytree(runs["split"], c / "bombcell_split")
    d = dsb.copy_dataset(ks_dataset, root / "session2" / "kilosort4_D")
    metrics = d / "bombcell" / METRICS_FILE
    metrics.write_bytes(metrics.read_bytes()[:200])  # truncated: unreadable
    shutil.copytree(ks_dataset / "bombcell", a / ".phy" / "bombcell")  # never searched
    dsb.copy_dataset(ks_dataset, root / ".hidden" / "ks")
    (root / "matlab").mkdir()
    matlab_demo_folder(root / "matlab")
    return root


def snapshot(root: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if not p.is_symlink()}


@pytest.fixture(scope="module")
def audited(tree, tmp_path_factory):
    """The CLI run once on the tree (2 jobs, with a comparison of two runs in the report): (completed process,
    output folder)."""
    before = snapshot(tree)
    out = tmp_path_factory.mktemp("audit_out") / "out"
    result = run_cli("audit", tree, "--out", out, "--jobs", 2, "--compare", tree / "session1" / "kilosort4_A",
                     tree / "session1" / "kilosort4_B")
    assert snapshot(tree) == before, "the audit wrote into the data folders"
    return result, out


def test_discovery_finds_every_run_at_any_depth_and_skips_caches(tree):
    targets = discover([tree])
    assert [(t.folder, t.run) for t in targets] == sorted(EXPECTED)
    c = [t for t in targets if t.folder == "session2/deep/kilosort4_C"]
    assert [t.run for t in c] == ["bombcell", "bombcell_split"]  # find_bombcell_dir's choice first
    assert all(t.ks_dir == t.results_dir.parent for t in targets)
    # Two roots: the folders are named after their root.
    two = discover([tree / "session1", tree / "matlab"])
    assert [(t.folder, t.run) for t in two] == [("matlab/ks", "bombcell"), ("session1/kilosort4_A", "bombcell"),
                                               ("session1/kilosort4_B", "bombcell")]


def test_discovery_skips_windows_system_folders_and_hidden_ones(tmp_path):
    # `audit D:\` on a drive whose recycle bin holds a deleted copy of a sorting
    demo = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data"
    for where in ("data/ks", "$RECYCLE.BIN/S-1-5-21-1000/$R1X2Y3Z/ks", "System Volume Information/ks",
                  "$Recycle.Bin/ks", ".Trash-1000/files/ks"):
        shutil.copytree(demo, tmp_path / where)
    assert [(t.folder, t.run) for t in discover([tmp_path])] == [("data/ks", "bombcell")]


def test_audit_cli_reports_the_unreadable_folder_and_goes_on(audited, tree):
    result, out = audited
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    unreadable = [line for line in lines if "UNREADABLE" in line]
    assert len(unreadable) == 1 and unreadable[0].startswith("session2/kilosort4_D [bombcell]: UNREADABLE: ")
    assert METRICS_FILE in unreadable[0] and "cannot read as parquet" in unreadable[0]
    assert "5 of 6 runs audited (135 units), 1 unreadable" in result.stdout
    assert lines[0].split()[:4] == ["folder", "run", "units", "GOOD"]
    assert sorted(p.name for p in out.iterdir()) == ["folders.tsv", "report.html", "rules.tsv", "units.tsv"]
    folders = pd.read_csv(out / "folders.tsv", sep="\t")
    assert set(zip(folders["folder"], folders["run"])) == EXPECTED
    bad = folders[folders["status"] == "unreadable"]
    assert list(bad["folder"]) == ["session2/kilosort4_D"] and "cannot read as parquet" in bad["error"].iloc[0]
    good = folders[folders["status"] == "ok"]
    assert (good["units"] == 27).all()
    assert list(good.loc[good["run"] == "bombcell_split", "label:NON-SOMA GOOD"]) == [4]
    assert dict(zip(good["folder"] + "|" + good["run"], good["classifier"])) == {
        "matlab/ks|bombcell": "matlab", "session1/kilosort4_A|bombcell": "python",
        "session1/kilosort4_B|bombcell": "python", "session2/deep/kilosort4_C|bombcell": "python",
        "session2/deep/kilosort4_C|bombcell_split": "python"}


def test_tidy_tables_equal_explain_folder(audited, tree):
    _, out = audited
    units = pd.read_csv(out / "units.tsv", sep="\t", keep_default_na=False, na_values={"margin": [""]})
    rules = pd.read_csv(out / "rules.tsv", sep="\t", keep_default_na=False,
                        na_values={c: [""] for c in ("value", "threshold", "margin")})
    folders = pd.read_csv(out / "folders.tsv", sep="\t")
    checked = 0
    for _, folder in folders[folders["status"] == "ok"].iterrows():
        ks_dir, results_dir = Path(folder["ks_dir"]), Path(folder["results_dir"])
        explanation = explain_folder(ks_dir, results_dir)
        mine = units[(units["folder"] == folder["folder"]) & (units["run"] == folder["run"])].reset_index(drop=True)
        table = explanation.table().reset_index()
        assert mine["cluster_id"].tolist() == table["cluster_id"].tolist()
        assert mine["label"].tolist() == table["label"].tolist()
        assert mine["reason"].tolist() == table["reason"].tolist()
        assert mine["n_decisive"].tolist() == table["n_decisive"].tolist()
        np.testing.assert_array_equal(mine["margin"].to_numpy(float), table["margin"].to_numpy(float))
        for row in mine.itertuples():
            unit = explanation.unit(row.cluster_id)
            names = [f"{'|' + c['metric'] + '|' if c.get('abs') else c['metric']}{c['op']}{c['param']}"
                     if c["op"] != "isnan" else f"isnan({c['metric']})" for c in unit["decisive"]]
            assert sorted(filter(None, row.decisive.split("; "))) == sorted(names)
            assert row.label == unit["label"] and row.reason == unit["reason"]
            assert row.flagged == unit["flagged"]
        long = explanation.long_table()
        mine_long = rules[(rules["folder"] == folder["folder"]) & (rules["run"] == folder["run"])]
        mine_long = mine_long.drop(columns=["folder", "run"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine_long, long, check_dtype=False)
        checked += 1
    assert checked == 5


def test_parallel_and_sequential_audits_agree(tree):
    targets = discover([tree])
    one, two = run_audit(targets, jobs=1), run_audit(targets, jobs=2)
    pd.testing.assert_frame_equal(one.units, two.units)
    pd.testing.assert_frame_equal(one.folders, two.folders)
    assert [r.error for r in one.failed] == [r.error for r in two.failed] and len(one.failed) == 1


def test_output_inside_the_data_is_refused(tree):
    result = run_cli("audit", tree, "--out", tree / "session1" / "audit")
    assert result.returncode == 2 and "inside the data folder" in result.stderr
    assert not (tree / "session1" / "audit").exists()
    assert run_cli("audit", tree / "nowhere").returncode == 2


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(page: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", "--virtual-time-budget=10000", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")
def test_report_renders_every_plot_in_a_headless_browser(audited, tmp_path):
    _, out = audited
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html  # self-contained
    n_images = html.count("<img ")
    assert n_images >= 3 + 10  # labels, decisive rules, near threshold, and a distribution per rule
    dom = browse(out / "report.html", "--dump-dom").stdout
    assert f'data-images-decoded="{n_images}/{n_images}"' in dom
    for text in ("Unreadable folders", "session2/kilosort4_D", "Labels per folder", "Decisive rules per folder",
                 "Units within 10% of a threshold", "Metric distributions per folder", "Methods",
                 "Comparisons of two runs", "maxRPVviolations"):
        assert text in dom
    shot = tmp_path / "report.png"
    browse(out / "report.html", "--window-size=1400,3000", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 50_000


def labels_by_bombcell(results_dir: Path, params: dict | None = None) -> pd.Series:
    metrics = pd.read_parquet(results_dir / METRICS_FILE)
    saved = pd.read_parquet(results_dir / PARAMS_FILE).iloc[0].to_dict()
    labels = bombcell_labels(metrics, {**saved, **(params or {})})
    return pd.Series(labels, index=metrics["phy_clusterID"].astype(int))


def test_compare_lists_exactly_the_units_bombcell_labels_differently(ks_dataset, runs):
    result = run_cli("compare", runs["default"], runs["np2"], "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    a, b = labels_by_bombcell(runs["default"]), labels_by_bombcell(runs["np2"])
    expected = {int(c): (a[c], b[c]) for c in a.index if a[c] != b[c]}
    assert expected  # the re-run's thresholds change some labels
    assert {c["cluster_id"]: (c["from"], c["to"]) for c in comparison["changes"]} == expected
    changed = {p["name"]: (p["a"], p["b"]) for p in comparison["parameters"] if p["read_by_rules"]}
    assert changed == {"maxRPVviolations": (0.1, 0.5), "minPresenceRatio": (0.7, 0.9)}
    for change in comparison["changes"]:
        assert change["rules"], change
        for rule in change["rules"]:
            assert rule["param"] in NP2 and rule["a"]["fires"] != rule["b"]["fires"]
            assert "decisive" in (rule["a"]["status"], rule["b"]["status"])
    text = run_cli("compare", runs["default"], runs["np2"]).stdout
    assert "maxRPVviolations: 0.1 -> 0.5" in text
    assert f"Units whose label changed: {len(expected)}" in text
    some = next(iter(expected))
    assert f"cluster {some}: {expected[some][0]} -> {expected[some][1]}  because " in text


def test_compare_a_folder_with_a_saved_parameter_file(ks_dataset_copy, runs, tmp_path):
    results = load_results(ks_dataset_copy / "bombcell", ks_dir=ks_dataset_copy)
    path = save_parameters(tmp_path, results.params, {"maxRPVviolations": 0.3, "splitGoodAndMua_NonSomatic": True})
    result = run_cli("compare", ks_dataset_copy, path, "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    a = labels_by_bombcell(ks_dataset_copy / "bombcell")
    b = labels_by_bombcell(ks_dataset_copy / "bombcell", {"maxRPVviolations": 0.3, "splitGoodAndMua_NonSomatic": True})
    expected = {int(c): (a[c], b[c]) for c in a.index if a[c] != b[c]}
    assert {c["cluster_id"]: (c["from"], c["to"]) for c in comparison["changes"]} == expected
    split = [c for c in comparison["changes"] if c["to"].startswith("NON-SOMA ")]
    assert split and all(c["switches"][0]["name"] == "splitGoodAndMua_NonSomatic" for c in split if not c["rules"])
    html = tmp_path / "compare.html"
    assert run_cli("compare", ks_dataset_copy, path, "--html", html).returncode == 0
    assert "Units whose label changed" in html.read_text(encoding="utf-8")


def test_methods_paragraph(ks_dataset, tree):
    result = run_cli("methods", ks_dataset)
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    explanation = explain_folder(ks_dataset)
    assert text == methods_paragraph(explanation)
    assert text.startswith("Units were classified by Python Bombcell (get_quality_unit_type, 0.93-0.94) "
                           "(recognised from Python names such as")
    for j, rule in enumerate(explanation.rules):
        if rule.param and j not in explanation.inactive:
            assert f"({rule.param})" in text
    assert "fractionRPVs_estimatedTauR was above 0.1 (maxRPVviolations)" in text
    assert "waveformDuration_peakTrough was below 100 µs (minWvDuration)" in text
    assert "A unit was labelled non-somatic when all of (troughToPeak2Ratio was below 5" in text
    assert "Switches: " in text and "splitGoodAndMua_NonSomatic off" in text
    counts = pd.Series(explanation.labels).value_counts()
    assert f"Of {len(explanation.labels)} units, {counts['GOOD']} GOOD" in text
    matlab = run_cli("methods", tree / "matlab" / "ks").stdout
    assert matlab.startswith("Units were classified by MATLAB Bombcell")


def test_decisive_counts_in_the_summary(tree):
    audit = run_audit(discover([tree / "session1"]), jobs=1)
    folders = audit.folders
    for r in audit.ok:
        e = r.explanation
        row = folders[(folders["folder"] == r.target.folder) & (folders["run"] == r.target.run)].iloc[0]
        for name, n in zip(rule_names(e), (e.status == DECISIVE).sum(axis=0)):
            assert row.get(f"decisive:{name}", 0) == n


def test_audit_on_a_dask_cluster(tree, tmp_path):
    """The same jobs through joblib's dask backend, on a LocalCluster: in-process and from the CLI."""
    distributed = pytest.importorskip("dask.distributed")
    targets = discover([tree])
    local = run_audit(targets, jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            on_dask = run_audit(targets, backend="dask")
        assert on_dask.backend == "dask"
        pd.testing.assert_frame_equal(on_dask.units, local.units)
        pd.testing.assert_frame_equal(on_dask.folders, local.folders)
        result = run_cli("audit", tree, "--out", tmp_path / "out", "--dask-scheduler", cluster.scheduler_address,
                         "--no-report")
    assert result.returncode == 0, result.stderr
    assert "5 of 6 runs audited (135 units), 1 unreadable" in result.stdout and ", dask)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["folders.tsv", "rules.tsv", "units.tsv"]
    written = pd.read_csv(tmp_path / "out" / "units.tsv", sep="\t", keep_default_na=False, na_values={"margin": [""]})
    assert len(written) == len(local.units) and written["label"].tolist() == local.units["label"].tolist()


def test_spikeinterface_layouts_are_found_and_audited(si_dataset_copy, tmp_path):
    """Bombcell through SpikeInterface: results inside an export_to_phy folder, and beside a sorter_output/."""
    root = tmp_path / "si"
    export = si_dataset_copy("default", "export", dst=root / "probe_export")
    beside = si_dataset_copy("default", "sorter_output", dst=root / "probe_sorter")
    targets = discover([root])
    assert [(t.ks_dir, t.results_dir) for t in targets] == [(export.phy_dir, export.results_dir),
                                                           (beside.phy_dir, beside.results_dir)]
    assert targets[1].run == "../bombcell"
    audit = run_audit(targets, jobs=1)
    assert not audit.failed
    for result, dataset in zip(audit.ok, (export, beside)):
        expected = explain_folder(dataset.phy_dir).table().reset_index()
        mine = audit.units[audit.units["folder"] == result.target.folder].reset_index(drop=True)
        assert result.explanation.classifier == "spikeinterface"
        pd.testing.assert_frame_equal(mine[list(expected.columns)], expected)


def test_compare_refuses_runs_of_two_sortings(runs, tmp_path):
    other = tmp_path / "other" / "bombcell"
    shutil.copytree(runs["default"], other)
    metrics = pd.read_parquet(other / METRICS_FILE)
    metrics.assign(nSpikes=metrics["nSpikes"] + 100).to_parquet(other / METRICS_FILE)
    result = run_cli("compare", runs["default"], other)
    assert result.returncode == 2 and "not runs of one sorting" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
