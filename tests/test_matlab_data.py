"""The committed MATLAB-Bombcell test folders (tests/data/matlab) are complete and self-consistent.

They are built by tests/matlab/build_matlab_cases.py, whose labels come from MATLAB Bombcell's own
classifier run under GNU Octave. Octave is not needed here, except for the last test, which rebuilds
the folders and is skipped when Octave or Bombcell's repository is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "matlab"
BUILDER = REPO / "tests" / "matlab" / "build_matlab_cases.py"
DEMO_PARQUET = REPO / "phy_bcreason" / "demo_data" / "bombcell" / "templates._bc_qMetrics.parquet"
BOMBCELL_REPO = Path(os.environ.get("BOMBCELL_REPO", "/work/.mirror/Julie-Fabre+bombcell/repo"))

CASES = [
    "defaults", "linear_fit", "no_spatial_decay", "old_names", "is_somatic", "split", "raw_nan_amplitude",
    "distance", "distance_isod_nan", "backfill", "demo",
]
FILES = [
    "templates._bc_qMetrics.parquet", "_bc_parameters._bc_qMetrics.parquet", "_bc_parameters._bc_qMetrics.csv",
    "templates._bc_qMetrics_all.csv", "matlab_labels.tsv",
]
# getQualityUnitType.m: code -> string (3 is NON-SOMA, or NON-SOMA GOOD with splitGoodAndMua_NonSomatic)
CODES = {"": {""}, "0": {"NOISE"}, "1": {"GOOD"}, "2": {"MUA"}, "3": {"NON-SOMA", "NON-SOMA GOOD"},
         "4": {"NON-SOMA MUA"}}
LABELS = set().union(*CODES.values())
WITH_KS_FILES = {"defaults", "demo"}


def labels(case: str) -> pd.DataFrame:
    return pd.read_csv(DATA / case / "matlab_labels.tsv", sep="\t", keep_default_na=False, dtype=str)


def metrics(case: str) -> pd.DataFrame:
    return pd.read_parquet(DATA / case / "templates._bc_qMetrics.parquet")


def params(case: str) -> pa.Table:
    return pq.read_table(DATA / case / "_bc_parameters._bc_qMetrics.parquet")


def test_source_md_describes_every_case():
    text = (DATA / "SOURCE.md").read_text()
    assert re.search(r"Bombcell commit: `[0-9a-f]{40}`", text)
    assert "GNU Octave" in text
    for case in CASES:
        assert f"### `{case}`" in text


@pytest.mark.parametrize("case", CASES)
def test_case_folder_has_the_files(case):
    for name in FILES:
        assert (DATA / case / name).is_file(), name
    assert (DATA / case / "ks_files").is_dir() == (case in WITH_KS_FILES)


@pytest.mark.parametrize("case", CASES)
def test_metrics_parquet_is_matlab_shaped(case):
    q = metrics(case)
    assert all(dtype == np.float64 for dtype in q.dtypes), q.dtypes[q.dtypes != np.float64]
    assert "bc_unitType" not in q.columns
    assert q.columns[-1] == "fractionRPVs_estimatedTauR"
    assert (q["clusterID"] == q["phy_clusterID"] + 1).all()
    assert q["phy_clusterID"].is_unique


@pytest.mark.parametrize("case", CASES)
def test_labels_match_the_parquet_and_matlab_label_set(case):
    lab = labels(case)
    q = metrics(case)
    assert list(lab.columns) == ["phy_clusterID", "unitType", "unitType_string", "unitType_struct",
                                 "unitType_string_struct"]
    assert lab["phy_clusterID"].astype(int).tolist() == q["phy_clusterID"].astype(int).tolist()
    for code_col, str_col in [("unitType", "unitType_string"), ("unitType_struct", "unitType_string_struct")]:
        assert set(lab[str_col]) <= LABELS
        for code, text in zip(lab[code_col], lab[str_col]):
            assert text in CODES[code], (code, text)
    # The table run (MATLAB's saved labels) never resets empty units; the struct run does, and nothing else differs
    # except through isSomatic.
    empty = q["nSpikes"].to_numpy() == 0
    assert (lab.loc[empty, "unitType_string_struct"] == "").all()
    assert (lab.loc[empty, "unitType_string"] == "NOISE").all()
    if "isSomatic" not in q.columns:
        assert (lab.loc[~empty, "unitType_string"] == lab.loc[~empty, "unitType_string_struct"]).all()


@pytest.mark.parametrize("case", CASES)
def test_all_csv_carries_the_matlab_labels(case):
    allcsv = pd.read_csv(DATA / case / "templates._bc_qMetrics_all.csv", keep_default_na=False,
                         dtype={"bc_unitType": str})
    q = metrics(case)
    assert list(allcsv.columns) == list(q.columns) + ["bc_unitType"]
    assert allcsv["bc_unitType"].tolist() == labels(case)["unitType_string"].tolist()
    values = allcsv.drop(columns="bc_unitType").replace("NaN", np.nan).astype(float)
    np.testing.assert_allclose(values.to_numpy(), q.to_numpy(), rtol=1e-14, equal_nan=True)


@pytest.mark.parametrize("case", sorted(WITH_KS_FILES))
def test_ks_files(case):
    ks = DATA / case / "ks_files"
    q = metrics(case)
    ut = pd.read_csv(ks / "cluster_bc_unitType.tsv", sep="\t", keep_default_na=False, dtype={"bc_unitType": str})
    assert list(ut.columns) == ["cluster_id", "bc_unitType"]
    assert ut["cluster_id"].tolist() == (q["clusterID"] - 1).astype(int).tolist()
    assert ut["bc_unitType"].tolist() == labels(case)["unitType_string"].tolist()
    frac = pd.read_csv(ks / "cluster_frac_RPVs.tsv", sep="\t")
    assert frac["cluster_id"].tolist() == q["phy_clusterID"].astype(int).tolist()
    np.testing.assert_allclose(frac["frac_RPVs"], q["fractionRPVs_estimatedTauR"], rtol=1e-14)
    assert not (ks / "cluster_fractionRPVs_estimatedTauR.tsv").exists()  # Python's name, not MATLAB's


def test_every_label_occurs():
    table_run = set().union(*(set(labels(c)["unitType_string"]) for c in CASES))
    struct_run = set().union(*(set(labels(c)["unitType_string_struct"]) for c in CASES))
    assert table_run == LABELS - {""}  # MATLAB's saved labels: isfield() on a table never sees nSpikes
    assert struct_run == LABELS


def test_param_files():
    p = params("defaults")
    types = {f.name: f.type for f in p.schema}
    assert types["rpvMethod"] == pa.string() and p["rpvMethod"][0].as_py() == "hill"
    assert types["contaminationValues"] == pa.list_(pa.float64()) and p["contaminationValues"][0].as_py() == []
    assert types["gain_to_uV"] == pa.float64()
    assert types["spDecayLinFit"] == pa.float64() and p["spDecayLinFit"][0].as_py() == 0
    assert p["spikeWidth"][0].as_py() == 83 and p["standardSpikeWidth"][0].as_py() == 82
    assert {str(t) for t in types.values()} == {"double", "string", "list<element: double>"}
    assert params("linear_fit")["gain_to_uV"][0].as_py() == "NaN"  # saveQMetrics: empty -> 'NaN'
    demo = params("demo")
    assert demo["spikeWidth"][0].as_py() == 61 and demo["extractRaw"][0].as_py() == 0
    csv = pd.read_csv(DATA / "defaults" / "_bc_parameters._bc_qMetrics.csv", keep_default_na=False, dtype=str)
    assert list(csv.columns) == p.column_names and len(csv) == 1


def test_case_specific_shapes():
    old = params("old_names").column_names
    for name in ("minTroughToPeakRatio", "firstPeakRatio", "minMainPeakToTroughRatio", "minWidthFirstPeak",
                 "minWidthMainTrough"):
        assert name in old
    assert "maxScndPeakToTroughRatio_noise" not in old
    q = metrics("old_names")
    assert {"isoD", "RPV_tauR_estimate", "mainPeak_before_size", "mainPeak_after_size", "mainTrough_size"} <= set(q)
    assert not {"mainPeakToTroughRatio", "scndPeakToTroughRatio", "peak1ToPeak2Ratio", "troughToPeak2Ratio",
                "isolationDistance"} & set(q)
    back = params("backfill").column_names
    for name in ("spDecayLinFit", "minTroughToPeak2Ratio_nonSomatic", "minWidthFirstPeak_nonSomatic",
                 "minWidthMainTrough_nonSomatic", "maxPeak1ToPeak2Ratio_nonSomatic", "maxScndPeakToTroughRatio_noise",
                 "splitGoodAndMua_NonSomatic"):
        assert name not in back
    assert set(metrics("is_somatic")["isSomatic"].dropna()) == {0.0, 1.0}
    assert np.isnan(params("distance_isod_nan")["isoDmin"][0].as_py())
    assert {"isolationDistance", "Lratio"} <= set(metrics("distance"))


def test_demo_case_is_the_demo():
    demo = pd.read_parquet(DEMO_PARQUET)
    q = metrics("demo")
    assert q["phy_clusterID"].astype(int).tolist() == demo["phy_clusterID"].astype(int).tolist()
    assert q["nSpikes"].tolist() == demo["nSpikes"].tolist()
    lab = labels("demo").set_index("phy_clusterID")["unitType_string"]
    # Hand-checked against getQualityUnitType.m with the KS4 defaults:
    assert lab["0"] == "GOOD"
    assert lab["8"] == "MUA"  # nSpikes 168 < minNumSpikes 300
    assert lab["22"] == "NOISE"  # nPeaks NaN
    assert lab["24"] == "NON-SOMA"  # mainPeakToTroughRatio 1.11 > 0.8
    assert lab["25"] == "NON-SOMA"  # troughToPeak2 1.84 < 5, widths 1.83 < 4 and 2.46 < 5, peak1ToPeak2 5.46 > 3


def _bombcell_commit_in_source() -> str:
    match = re.search(r"Bombcell commit: `([0-9a-f]{40})`", (DATA / "SOURCE.md").read_text())
    return match.group(1) if match else ""


def assert_same_table(rebuilt: Path, kept: Path) -> None:
    """The same table as numbers: text cells equal, numbers to 1e-12 relative (another Octave prints the last of
    17 digits differently: 7.3 and 8 differ in one digit of templates._bc_qMetrics_all.csv)."""
    sep = "\t" if kept.suffix == ".tsv" else ","
    a, b = (pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False) for path in (rebuilt, kept))
    assert list(a.columns) == list(b.columns) and a.shape == b.shape, (rebuilt, kept)
    for column in b.columns:
        x, y = pd.to_numeric(a[column], errors="coerce"), pd.to_numeric(b[column], errors="coerce")
        numbers = y.notna() | (b[column].str.lower() == "nan")
        assert (a[column][~numbers] == b[column][~numbers]).all(), (kept, column)
        np.testing.assert_allclose(x[numbers].to_numpy(float), y[numbers].to_numpy(float), rtol=1e-12,
                                   equal_nan=True, err_msg=f"{kept}: {column}")


def test_same_table_compares_numbers_as_numbers(tmp_path):
    kept, close, other = (tmp_path / f"{n}.csv" for n in ("kept", "close", "other"))
    kept.write_text("id,value,label\n0,0.12345678901234567,GOOD\n1,NaN,MUA\n", encoding="utf-8")
    close.write_text("id,value,label\n0,0.12345678901234568,GOOD\n1,NaN,MUA\n", encoding="utf-8")
    other.write_text("id,value,label\n0,0.1234567,GOOD\n1,NaN,MUA\n", encoding="utf-8")
    assert_same_table(close, kept)
    with pytest.raises(AssertionError):
        assert_same_table(other, kept)


@pytest.mark.skipif(shutil.which("octave-cli") is None, reason="GNU Octave not installed")
@pytest.mark.skipif(not BOMBCELL_REPO.exists(), reason="Bombcell repository not available")
def test_rebuild_with_octave_gives_identical_data(tmp_path):
    head = subprocess.run(["git", "-C", str(BOMBCELL_REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0 or head.stdout.strip() != _bombcell_commit_in_source():
        pytest.skip("Bombcell repository is not at the commit the data was built from")
    subprocess.run([sys.executable, str(BUILDER), "--bombcell-repo", str(BOMBCELL_REPO), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for case in CASES:
        for name in ["matlab_labels.tsv", "templates._bc_qMetrics_all.csv", "_bc_parameters._bc_qMetrics.csv"]:
            assert_same_table(tmp_path / case / name, DATA / case / name)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / case / "templates._bc_qMetrics.parquet"),
                                      metrics(case))
        rebuilt = pq.read_table(tmp_path / case / "_bc_parameters._bc_qMetrics.parquet")
        assert rebuilt.schema == params(case).schema
        assert repr(rebuilt.to_pylist()) == repr(params(case).to_pylist())  # repr: NaN == NaN
        for f in sorted((DATA / case).glob("ks_files/*.tsv")):
            assert_same_table(tmp_path / case / "ks_files" / f.name, f)
    assert (tmp_path / "SOURCE.md").read_text() == (DATA / "SOURCE.md").read_text()
