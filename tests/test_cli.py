"""The command line, run as a user runs it (a subprocess), on folders Bombcell labelled."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from phy_bcreason import explain_folder
from phy_bcreason.io.bombcell import METRICS_FILE, PARAMS_FILE


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "phy_bcreason", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def explained(ks_dataset):
    return explain_folder(ks_dataset)


def test_explain_json_is_the_only_stdout_and_matches_bombcell(ks_dataset, explained):
    result = run_cli("explain", ks_dataset, "--json")
    assert result.returncode == 0, result.stderr
    units = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    saved = pd.read_parquet(ks_dataset / "bombcell" / METRICS_FILE).set_index("phy_clusterID")["bc_unitType"]
    assert [u["cluster_id"] for u in units] == list(saved.index)
    assert [u["label"] for u in units] == list(saved)
    keys = {"block", "metric", "op", "param", "value", "threshold", "margin"}
    for unit in units:
        assert set(unit) == {"cluster_id", "label", "reason", "classifier", "rules_label", "flagged", "decisive",
                             "also_failed", "threshold_missing"}
        for failure in unit["decisive"] + unit["also_failed"]:
            assert keys <= set(failure) and failure["block"] in {"noise", "nonsomatic", "mua"}
    by_id = {u["cluster_id"]: u for u in units}
    few_spikes = next(u for u in units if u["reason"].startswith("NOISE: too few spikes"))
    assert {"block": "noise", "metric": "nPeaks", "op": "isnan", "param": None, "value": None,
            "threshold": None, "margin": None} in few_spikes["decisive"]
    # The peak1/peak2 comparisons appear, all four with their group, only where the whole group holds.
    for unit in by_id.values():
        grouped = [f for f in unit["decisive"] + unit["also_failed"] if f.get("group") == "peak1ToPeak2"]
        assert len(grouped) in (0, 4)
    axon_b = by_id[24]  # mainPeakToTroughRatio alone: the group must not be listed
    assert [f["metric"] for f in axon_b["decisive"]] == ["mainPeakToTroughRatio"]
    assert len([f for f in by_id[25]["decisive"] if f.get("group")]) == 4


def test_explain_text_for_chosen_clusters(ks_dataset, explained):
    result = run_cli("explain", ks_dataset, "--cluster", 14, 0)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cluster 14: MUA  |  MUA: ")
    decided = [line for line in lines if line.strip().startswith("decided:")]
    assert len(decided) == len(explained.unit(14)["decisive"]) >= 2
    assert any("maxRPVviolations" in line for line in decided)
    assert "cluster 0: GOOD  |  GOOD: passed all thresholds" in lines


def test_summary_counts_labels_and_decisive_rules(ks_dataset, explained):
    result = run_cli("summary", ks_dataset)
    assert result.returncode == 0, result.stderr
    counts = pd.Series(explained.labels).value_counts()
    for label, count in counts.items():
        assert any(line.split() == [label, str(count)] for line in result.stdout.splitlines()), label
    assert "fractionRPVs_estimatedTauR>maxRPVviolations" in result.stdout


def test_export_writes_reason_column_and_audit_table(ks_dataset_copy, explained):
    result = run_cli("export", ks_dataset_copy)
    assert result.returncode == 0, result.stderr
    reasons = pd.read_csv(ks_dataset_copy / "cluster_bc_classificationReason.tsv", sep="\t")
    assert list(reasons.columns) == ["cluster_id", "bc_classificationReason"]
    assert list(reasons["bc_classificationReason"]) == list(explained.reasons)
    audit = pd.read_csv(ks_dataset_copy / "bombcell" / "phy_bcreason_audit.tsv", sep="\t")
    assert len(audit) == len(explained.cluster_ids) * len(explained.rules)
    assert {"cluster_id", "rule", "value", "threshold", "status", "margin"} <= set(audit.columns)
    decisive = audit[audit["status"] == "decisive"]
    assert set(decisive["cluster_id"]) == {c for c, n in zip(explained.cluster_ids, explained.n_decisive) if n}


@pytest.mark.parametrize("case", ["no_folder", "no_results", "corrupt_metrics", "no_params", "unknown_cluster"])
def test_errors_exit_2_with_one_line_naming_the_file(ks_dataset_copy, tmp_path, case):
    args = ["explain", ks_dataset_copy]
    if case == "no_folder":
        args = ["explain", tmp_path / "nowhere"]
    elif case == "no_results":
        shutil.rmtree(ks_dataset_copy / "bombcell")
    elif case == "corrupt_metrics":
        path = ks_dataset_copy / "bombcell" / METRICS_FILE
        path.write_bytes(path.read_bytes()[:200])
    elif case == "no_params":  # and no saved labels (with them the folder opens: test_every_folder.py)
        (ks_dataset_copy / "bombcell" / PARAMS_FILE).unlink()
        (ks_dataset_copy / "cluster_bc_unitType.tsv").unlink()
        path = ks_dataset_copy / "bombcell" / METRICS_FILE
        pd.read_parquet(path).drop(columns=["bc_unitType"]).to_parquet(path)
    elif case == "unknown_cluster":
        args += ["--cluster", "999"]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phy-bcreason: "), result.stderr
    named = {"no_folder": "nowhere", "no_results": str(ks_dataset_copy), "corrupt_metrics": METRICS_FILE,
             "no_params": PARAMS_FILE, "unknown_cluster": "999"}[case]
    assert named in lines[0]
