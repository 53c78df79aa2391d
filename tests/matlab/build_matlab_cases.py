"""Build MATLAB-Bombcell test folders whose labels come from MATLAB Bombcell's own classifier.

For each case this script builds a MATLAB-style ``qMetric`` table and ``param`` struct, runs
``bc.qm.getQualityUnitType`` (Bombcell's MATLAB code, extracted from its git repository) under
GNU Octave through ``tests/matlab/run_classifier.m``, and writes the folder MATLAB's
``saveQMetrics.m`` / ``getQualityUnitType.m`` would have written, plus ``matlab_labels.tsv``
(the oracle, straight from Octave).

    python tests/matlab/build_matlab_cases.py --bombcell-repo /work/.mirror/Julie-Fabre+bombcell/repo \
        --out tests/data/matlab

No Bombcell code is copied here. The rule list at the bottom (``rule_masks``) is our own reading
of getQualityUnitType.m, used only to report which rules fired and to cross-check; the labels
written are Octave's.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
DEMO_PARQUET = REPO_ROOT / "phy_bcreason" / "demo_data" / "bombcell" / "templates._bc_qMetrics.parquet"
SEED = 20261128
N_UNITS = 300

# Kilosort folder and raw file recorded in the saved params (fictitious paths, as a user's would be).
KS_PATH = "/data/mouse01/2026-05-04/kilosort4"
RAW_FILE = "/data/mouse01/2026-05-04/mouse01_g0_t0.imec0.ap.bin"

# Columns MATLAB's runAllQualityMetrics.m creates, in creation order (fractionRPVs is replaced by
# fractionRPVs_estimatedTauR, appended last, in saveQMetrics.m). Optional groups are inserted by
# qmetric_columns().
CORE_COLUMNS = [
    "maxChannels", "phy_clusterID", "clusterID", "useTheseTimesStart", "useTheseTimesStop", "RPV_window_index",
    "percentageSpikesMissing_gaussian", "percentageSpikesMissing_symmetric", "ksTest_pValue", "estimatedTauR",
    "presenceRatio", "maxDriftEstimate", "cumDriftEstimate", "nSpikes", "nPeaks", "nTroughs", "spatialDecaySlope",
    "waveformBaselineFlatness", "scndPeakToTroughRatio", "mainPeakToTroughRatio", "peak1ToPeak2Ratio",
    "mainPeak_before_width", "troughToPeak2Ratio", "mainPeak_after_width", "mainTrough_width",
    "waveformDuration_peakTrough", "rawAmplitude",
]
DISTANCE_COLUMNS = ["isolationDistance", "Lratio", "silhouetteScore"]
RATIO_COLUMNS = ["scndPeakToTroughRatio", "mainPeakToTroughRatio", "peak1ToPeak2Ratio", "troughToPeak2Ratio"]
SIZE_COLUMNS = ["mainPeak_before_size", "mainPeak_after_size", "mainTrough_size"]

# saveQMetrics.m: metric TSVs written next to Kilosort's files when saveAsTSV == 1.
TSV_FIELDS = [
    ("percentageSpikesMissing_gaussian", "percentage_spikes_missing"), ("presenceRatio", "presence_ratio"),
    ("maxDriftEstimate", "max_drift"), ("nPeaks", "n_peaks"), ("nTroughs", "n_troughs"),
    ("waveformDuration_peakTrough", "waveform_duration"), ("spatialDecaySlope", "spatial_decay_slope"),
    ("waveformBaselineFlatness", "wv_baseline_flatness"), ("signalToNoiseRatio", "SNR"),
    ("fractionRPVs_estimatedTauR", "frac_RPVs"), ("scndPeakToTroughRatio", "peak_2_to_trough"),
    ("peak1ToPeak2Ratio", "peak_1_to_peak_2"), ("mainPeakToTroughRatio", "peak_main_to_trough"),
    ("isolationDistance", "isolation_distance"), ("Lratio", "L-ratio"), ("silhouetteScore", "silhouette_score"),
    ("useTheseTimesStart", "good_chunk_start"), ("useTheseTimesStop", "good_chunk_stop"),
]

MATLAB_LABELS = {"", "NOISE", "GOOD", "MUA", "NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA"}


@dataclasses.dataclass
class Case:
    name: str
    about: str
    ops: list = dataclasses.field(default_factory=list)  # ("set", name, value) / ("rename", old, new) / ("remove", n)
    kilosort_version: int = 2
    raw_file: str = RAW_FILE
    ks_path: str = KS_PATH
    gain_to_uV: float | None = None
    slopes: str = "exp"  # exp | linear | mostly_nan
    distance: bool = False  # computeDistanceMetrics: isolationDistance/Lratio/silhouetteScore columns
    is_somatic: bool = False  # add the pre-09/2024 isSomatic column
    old_names: bool = False  # isoD, RPV_tauR_estimate and peak/trough sizes instead of the four ratios
    raw_nan: bool = False  # many NaN rawAmplitude units, half of them with low SNR
    demo: bool = False  # the 27 demo units as they are
    zero_p1p2: bool = True  # saveQMetrics.m's peak1ToPeak2Ratio overwrite (a current-version run)
    seed_from: str = ""  # reuse another case's metrics (same seed)


OFF_TSV = [("set", "saveAsTSV", 0.0), ("set", "unitType_for_phy", 0.0)]

CASES = [
    Case("defaults", "qualityParamValues defaults (KS < 4: spikeWidth 83, standardSpikeWidth 82), exponential "
         "spatial decay (spDecayLinFit 0), extractRaw 1 (a raw file is given), numeric gain_to_uV, "
         "saveAsTSV 1 and unitType_for_phy 1 as qualityParamValues sets them, so ks_files/ holds the TSVs.",
         gain_to_uV=2.34375),
    Case("linear_fit", "spDecayLinFit 1: spatialDecaySlope is polyfit's slope (negative for decaying amplitude); "
         "NOISE when slope > minSpatialDecaySlope (-0.008).",
         ops=[("set", "spDecayLinFit", 1.0)] + OFF_TSV, slopes="linear"),
    Case("no_spatial_decay", "computeSpatialDecay 0 with spDecayLinFit 1: MATLAB's else-branch applies the "
         "exponential thresholds (0.01..0.1). Most slopes NaN (what MATLAB stores when it does not compute them), "
         "30% hold values (linear-style negatives and exponential-style positives) as after a re-run with the "
         "flag turned off.",
         ops=[("set", "computeSpatialDecay", 0.0), ("set", "spDecayLinFit", 1.0)] + OFF_TSV, slopes="mostly_nan"),
    Case("old_names", "Parameters under the names prettify_names maps (minTroughToPeakRatio 0.7, firstPeakRatio 2.5, "
         "minMainPeakToTroughRatio 0.9, minWidthFirstPeak 5, minWidthMainTrough 6: values that differ from both "
         "the current defaults and checkParameterFields' back-fill); metrics isoD and RPV_tauR_estimate; no ratio "
         "columns but mainPeak_before_size/mainPeak_after_size/mainTrough_size, so prettify_names recomputes the "
         "four ratios (mainPeakToTroughRatio without abs: negative trough sizes give negative ratios); "
         "computeDistanceMetrics 1.",
         ops=[("rename", "maxScndPeakToTroughRatio_noise", "minTroughToPeakRatio"),
              ("rename", "maxPeak1ToPeak2Ratio_nonSomatic", "firstPeakRatio"),
              ("rename", "maxMainPeakToTroughRatio_nonSomatic", "minMainPeakToTroughRatio"),
              ("rename", "minWidthFirstPeak_nonSomatic", "minWidthFirstPeak"),
              ("rename", "minWidthMainTrough_nonSomatic", "minWidthMainTrough"),
              ("set", "minTroughToPeakRatio", 0.7), ("set", "firstPeakRatio", 2.5),
              ("set", "minMainPeakToTroughRatio", 0.9), ("set", "minWidthFirstPeak", 5.0),
              ("set", "minWidthMainTrough", 6.0), ("set", "computeDistanceMetrics", 1.0)] + OFF_TSV,
         distance=True, old_names=True, zero_p1p2=False),
    Case("is_somatic", "Pre-09/2024 results: an isSomatic column (0/1, two NaN) and param.somatic 1. MATLAB passes a "
         "table, on which isfield() is false, so the saved labels ignore isSomatic; the struct run uses it.",
         ops=OFF_TSV, is_somatic=True),
    Case("split", "splitGoodAndMua_NonSomatic 1: NON-SOMA GOOD / NON-SOMA MUA.",
         ops=[("set", "splitGoodAndMua_NonSomatic", 1.0)] + OFF_TSV),
    Case("raw_nan_amplitude", "extractRaw 1 with ~15% NaN rawAmplitude units, half of them with SNR < minSNR: "
         "MATLAB makes those MUA (the SNR test is not gated on rawAmplitude).",
         ops=OFF_TSV, raw_nan=True),
    Case("distance", "computeDistanceMetrics 1, isoDmin 20, lratioMax 0.3; also computeDrift 1 (maxDrift 100).",
         ops=[("set", "computeDistanceMetrics", 1.0), ("set", "isoDmin", 20.0), ("set", "lratioMax", 0.3),
              ("set", "computeDrift", 1.0)] + OFF_TSV, distance=True),
    Case("distance_isod_nan", "Same metrics as distance, isoDmin NaN: the distance rule is skipped entirely "
         "(Lratio too).",
         ops=[("set", "computeDistanceMetrics", 1.0), ("set", "isoDmin", float("nan")), ("set", "lratioMax", 0.3),
              ("set", "computeDrift", 1.0)] + OFF_TSV, distance=True, seed_from="distance"),
    Case("defaults_whatif", "Same metrics as defaults, labelled with edited parameters (maxRPVviolations 0.3, "
         "minPresenceRatio 0.5, maxWvBaselineFraction 0.2, extractRaw 0, splitGoodAndMua_NonSomatic 1): the "
         "oracle for the same edits made as a what-if on `defaults`.",
         ops=[("set", "maxRPVviolations", 0.3), ("set", "minPresenceRatio", 0.5), ("set", "maxWvBaselineFraction", 0.2),
              ("set", "extractRaw", 0.0), ("set", "splitGoodAndMua_NonSomatic", 1.0)] + OFF_TSV,
         seed_from="defaults"),
    Case("backfill", "A parameter file from an old run: no spDecayLinFit, no non-somatic group thresholds "
         "(minTroughToPeak2Ratio_nonSomatic, minWidthFirstPeak_nonSomatic, minWidthMainTrough_nonSomatic, "
         "maxPeak1ToPeak2Ratio_nonSomatic), no maxMainPeakToTroughRatio_nonSomatic, maxScndPeakToTroughRatio_noise, "
         "splitGoodAndMua_NonSomatic, rpvMethod, tauR_values, contaminationValues, confidenceThreshold. "
         "checkParameterFields fills them (spDecayLinFit 1, so the linear rule applies to these linear-fit slopes; "
         "widths/ratios 0, 0, 0, Inf, so the non-somatic AND group can never fire). No peak1ToPeak2Ratio "
         "overwrite (the old run predates it).",
         ops=[("remove", k) for k in (
             "spDecayLinFit", "minTroughToPeak2Ratio_nonSomatic", "minWidthFirstPeak_nonSomatic",
             "minWidthMainTrough_nonSomatic", "maxPeak1ToPeak2Ratio_nonSomatic", "maxMainPeakToTroughRatio_nonSomatic",
             "maxScndPeakToTroughRatio_noise", "splitGoodAndMua_NonSomatic", "rpvMethod", "tauR_values",
             "contaminationValues", "confidenceThreshold")] + OFF_TSV,
         slopes="linear", zero_p1p2=False),
    Case("demo", "The 27 demo units unchanged (phy_clusterID, nSpikes and metrics as the Python run wrote them; "
         "RPV_status and bc_unitType dropped, clusterID added, ksTest_pValue and mainPeak_after_width NaN as the "
        "Python run has no such columns), MATLAB default params for Kilosort 4 "
         "(spikeWidth 61), no raw file (extractRaw 0), saveAsTSV 1 and unitType_for_phy 1.",
         kilosort_version=4, raw_file="NaN", ks_path="/data/phy_bcreason_demo", demo=True),
]


# ----------------------------------------------------------------------------------------------
# Metric generation (ours): resample the demo units, perturb, inject NaN / empty units, and put
# values exactly at and just either side of every threshold.
# ----------------------------------------------------------------------------------------------

def case_rng(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def log_uniform(rng, lo, hi, size):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def fill_missing(rng, values, lo, hi):
    values = np.asarray(values, dtype=float).copy()
    missing = np.isnan(values)
    values[missing] = log_uniform(rng, lo, hi, missing.sum())
    return values


def perturb(rng, values, lo, hi, wide_frac=0.08, factor=1.4):
    """Multiply by a log-uniform factor; replace a fraction by a wide log-uniform draw."""
    out = values * log_uniform(rng, 1 / factor, factor, len(values))
    wide = rng.random(len(values)) < wide_frac
    out[wide] = log_uniform(rng, lo, hi, wide.sum())
    return out


def straddle(rng, df, col, thr, taken, clean, k=6, integer=False):
    """Put k units exactly at, just below and just above thr (integers: thr and thr +- 1), preferably clean units
    (which pass every other rule, so the straddled rule alone decides their label)."""
    free = np.flatnonzero(~taken & clean)
    if len(free) < k:
        free = np.flatnonzero(~taken)
    idx = rng.choice(free, size=min(k, len(free)), replace=False)
    if col == "nSpikes":
        vals = [thr, thr - 1, thr + 1, thr // 2, thr - 2, thr // 6]
    elif integer:
        vals = [thr, thr + 1, thr - 1, thr + 1]
    else:
        eps = 1e-4 * max(abs(thr), 1e-3)
        vals = [thr, thr + eps, thr - eps, thr * 1.05 if thr else 0.01, thr * 0.95 if thr else -0.01]
    for j, i in enumerate(idx):
        df.iat[i, df.columns.get_loc(col)] = vals[j % len(vals)]
    taken[idx] = True


def generation_thresholds(case: Case) -> dict:
    """Thresholds the generator aims at (the classifier reads its own from param)."""
    thr = dict(maxNPeaks=2, maxNTroughs=1, minWvDuration=100, maxWvDuration=1150, maxWvBaselineFraction=0.3,
               maxScnd=0.8, minSpatialDecaySlope=-0.008, minExp=0.01, maxExp=0.1, maxPercSpikesMissing=20,
               minNumSpikes=300, maxRPVviolations=0.1, minPresenceRatio=0.7, isoDmin=20, lratioMax=0.3,
               minAmplitude=40, minSNR=5, maxDrift=100, minTroughToPeak2=5, minWidthFirstPeak=4.0,
               minWidthMainTrough=5.0, maxPeak1ToPeak2=3, maxMainPeakToTrough=0.8)
    if case.old_names:
        thr.update(maxScnd=0.7, maxPeak1ToPeak2=2.5, maxMainPeakToTrough=0.9, minWidthFirstPeak=5.0,
                   minWidthMainTrough=6.0)
    return thr


def make_units(case: Case, demo: pd.DataFrame) -> pd.DataFrame:
    rng = case_rng(case.seed_from or case.name)
    thr = generation_thresholds(case)
    n = N_UNITS
    base = demo.iloc[rng.integers(0, len(demo), n)].reset_index(drop=True)
    df = pd.DataFrame(index=range(n))
    df["maxChannels"] = base["maxChannels"].to_numpy(float)
    df["phy_clusterID"] = np.arange(n, dtype=float)
    df["clusterID"] = df["phy_clusterID"] + 1
    df["useTheseTimesStart"] = base["useTheseTimesStart"].to_numpy(float)
    df["useTheseTimesStop"] = base["useTheseTimesStop"].to_numpy(float)
    df["RPV_window_index"] = base["RPV_window_index"].to_numpy(float)
    df["percentageSpikesMissing_gaussian"] = perturb(rng, base["percentageSpikesMissing_gaussian"].to_numpy(float)
                                                     + 0.5, 0.05, 60)
    df["percentageSpikesMissing_symmetric"] = perturb(rng, base["percentageSpikesMissing_symmetric"].to_numpy(float)
                                                      + 0.5, 0.05, 60)
    df["ksTest_pValue"] = rng.uniform(0, 1, n)
    df["estimatedTauR"] = base["estimatedTauR"].to_numpy(float)
    df["presenceRatio"] = np.minimum(1.0, perturb(rng, base["presenceRatio"].to_numpy(float), 0.1, 1.0,
                                                  factor=1.3))
    drift = fill_missing(rng, base["maxDriftEstimate"], 5, 80)
    df["maxDriftEstimate"] = perturb(rng, drift, 2, 400)
    df["cumDriftEstimate"] = df["maxDriftEstimate"] * rng.uniform(1, 3, n)
    df["nSpikes"] = np.round(perturb(rng, base["nSpikes"].to_numpy(float), 20, 60000, factor=3))
    df["nPeaks"] = np.clip(base["nPeaks"].to_numpy(float) + rng.choice([0] * 22 + [1, 2, -1], n), 0, None)
    df["nTroughs"] = np.clip(base["nTroughs"].to_numpy(float) + rng.choice([0] * 23 + [1, 2], n), 1, None)
    if case.slopes == "exp":
        df["spatialDecaySlope"] = perturb(rng, base["spatialDecaySlope"].to_numpy(float), 0.002, 0.4)
    else:
        slope = -log_uniform(rng, 0.003, 0.06, n)
        pos = rng.random(n) < 0.12
        slope[pos] = log_uniform(rng, 1e-4, 0.02, pos.sum())
        if case.slopes == "mostly_nan":
            exp_like = rng.random(n) < 0.5
            slope[exp_like] = log_uniform(rng, 0.002, 0.4, exp_like.sum())
            slope[rng.random(n) < 0.7] = np.nan
        df["spatialDecaySlope"] = slope
    df["waveformBaselineFlatness"] = perturb(rng, base["waveformBaselineFlatness"].to_numpy(float), 0.005, 1.0)
    scnd = perturb(rng, base["scndPeakToTroughRatio"].to_numpy(float), 0.02, 2.0)
    df["scndPeakToTroughRatio"] = scnd
    df["mainPeakToTroughRatio"] = np.maximum(scnd, perturb(rng, base["mainPeakToTroughRatio"].to_numpy(float),
                                                           0.02, 2.0))
    df["peak1ToPeak2Ratio"] = perturb(rng, base["peak1ToPeak2Ratio"].to_numpy(float) + 0.01, 0.01, 30)
    df["mainPeak_before_width"] = perturb(rng, fill_missing(rng, base["mainPeak_before_width"], 2, 12), 0.5, 20)
    df["troughToPeak2Ratio"] = perturb(rng, base["troughToPeak2Ratio"].to_numpy(float), 0.3, 2000)
    df["mainPeak_after_width"] = log_uniform(rng, 2, 25, n)
    df["mainTrough_width"] = perturb(rng, base["mainTrough_width"].to_numpy(float), 0.5, 25)
    df["waveformDuration_peakTrough"] = perturb(rng, base["waveformDuration_peakTrough"].to_numpy(float), 30, 2000,
                                                factor=1.4)
    df["rawAmplitude"] = perturb(rng, fill_missing(rng, base["rawAmplitude"], 30, 250), 5, 500)
    df["signalToNoiseRatio"] = perturb(rng, fill_missing(rng, base["signalToNoiseRatio"], 4, 30), 0.5, 50)
    if case.distance:
        df["isolationDistance"] = perturb(rng, fill_missing(rng, base["isolationDistance"], 15, 150), 3, 300)
        df["Lratio"] = perturb(rng, fill_missing(rng, base["Lratio"], 0.005, 0.5), 0.001, 3)
        df["silhouetteScore"] = rng.uniform(-0.2, 0.9, n)
    df["fractionRPVs_estimatedTauR"] = perturb(rng, base["fractionRPVs_estimatedTauR"].to_numpy(float) + 0.005,
                                               0.001, 0.5)
    df.loc[rng.random(n) < 0.15, "fractionRPVs_estimatedTauR"] = 0.0

    # A non-somatic-looking group: all four AND conditions true (some broken by the straddles below).
    group = rng.random(n) < 0.12
    m = group.sum()
    df.loc[group, "troughToPeak2Ratio"] = rng.uniform(1.0, thr["minTroughToPeak2"] * 0.95, m)
    df.loc[group, "mainPeak_before_width"] = rng.uniform(0.5, thr["minWidthFirstPeak"] - 0.3, m)
    df.loc[group, "mainTrough_width"] = rng.uniform(0.5, thr["minWidthMainTrough"] - 0.3, m)
    df.loc[group, "peak1ToPeak2Ratio"] = log_uniform(rng, thr["maxPeak1ToPeak2"] * 1.05, 30, m)

    # Clean units: every metric safely passes (the straddles below then make single-reason units).
    clean = ~group & (rng.random(n) < 0.6)
    c = clean.sum()
    passing = {
        "nPeaks": rng.choice([1.0, 1.0, 2.0], c), "nTroughs": np.ones(c),
        "waveformDuration_peakTrough": rng.uniform(300, 900, c), "waveformBaselineFlatness": rng.uniform(0.01, 0.2, c),
        "scndPeakToTroughRatio": rng.uniform(0.1, 0.5, c), "percentageSpikesMissing_gaussian": rng.uniform(0.1, 10, c),
        "nSpikes": np.round(log_uniform(rng, 500, 20000, c)), "presenceRatio": rng.uniform(0.9, 1.0, c),
        "fractionRPVs_estimatedTauR": rng.choice([0.0, 0.01, 0.02, 0.05], c), "maxDriftEstimate": rng.uniform(5, 60, c),
        "rawAmplitude": log_uniform(rng, 60, 300, c), "signalToNoiseRatio": log_uniform(rng, 8, 40, c),
        "troughToPeak2Ratio": log_uniform(rng, 10, 1000, c), "mainTrough_width": rng.uniform(6.5, 10, c),
    }
    passing["mainPeakToTroughRatio"] = passing["scndPeakToTroughRatio"] + rng.uniform(0, 0.15, c)
    if case.slopes == "exp":
        passing["spatialDecaySlope"] = rng.uniform(0.02, 0.06, c)
    elif case.slopes == "linear":
        passing["spatialDecaySlope"] = -rng.uniform(0.012, 0.04, c)
    if case.distance:
        passing["isolationDistance"] = log_uniform(rng, 30, 150, c)
        passing["Lratio"] = log_uniform(rng, 0.001, 0.2, c)
    for col, values in passing.items():
        df.loc[clean, col] = values

    if case.raw_nan:
        nan_amp = rng.random(n) < 0.15
        df.loc[nan_amp, "rawAmplitude"] = np.nan
        low = nan_amp & (rng.random(n) < 0.5)
        df.loc[low, "signalToNoiseRatio"] = rng.uniform(0.5, thr["minSNR"] * 0.95, low.sum())
        df.loc[nan_amp & ~low, "signalToNoiseRatio"] = rng.uniform(thr["minSNR"] * 1.05, 30, (nan_amp & ~low).sum())

    # Threshold straddles: each unit is used for at most one straddle.
    taken = np.zeros(n, dtype=bool)
    if case.raw_nan:
        taken |= nan_amp
    specs = [("nPeaks", thr["maxNPeaks"], True), ("nTroughs", thr["maxNTroughs"], True),
             ("waveformDuration_peakTrough", thr["minWvDuration"], False),
             ("waveformDuration_peakTrough", thr["maxWvDuration"], False),
             ("waveformBaselineFlatness", thr["maxWvBaselineFraction"], False),
             ("scndPeakToTroughRatio", thr["maxScnd"], False),
             ("percentageSpikesMissing_gaussian", thr["maxPercSpikesMissing"], False),
             ("nSpikes", thr["minNumSpikes"], True), ("fractionRPVs_estimatedTauR", thr["maxRPVviolations"], False),
             ("presenceRatio", thr["minPresenceRatio"], False), ("rawAmplitude", thr["minAmplitude"], False),
             ("signalToNoiseRatio", thr["minSNR"], False), ("maxDriftEstimate", thr["maxDrift"], False),
             ("troughToPeak2Ratio", thr["minTroughToPeak2"], False),
             ("mainPeak_before_width", thr["minWidthFirstPeak"], False),
             ("mainTrough_width", thr["minWidthMainTrough"], False),
             ("peak1ToPeak2Ratio", thr["maxPeak1ToPeak2"], False),
             ("mainPeakToTroughRatio", thr["maxMainPeakToTrough"], False)]
    if case.slopes == "exp":
        specs += [("spatialDecaySlope", thr["minExp"], False), ("spatialDecaySlope", thr["maxExp"], False)]
    elif case.slopes == "linear":
        specs += [("spatialDecaySlope", thr["minSpatialDecaySlope"], False)]
    if case.distance:
        specs += [("isolationDistance", thr["isoDmin"], False), ("Lratio", thr["lratioMax"], False)]
    for col, value, integer in specs:
        straddle(rng, df, col, value, taken, clean, integer=integer)
    # Straddles inside the non-somatic group: break exactly one AND condition, at the threshold.
    for col, key in [("troughToPeak2Ratio", "minTroughToPeak2"), ("mainPeak_before_width", "minWidthFirstPeak"),
                     ("mainTrough_width", "minWidthMainTrough"), ("peak1ToPeak2Ratio", "maxPeak1ToPeak2")]:
        members = np.flatnonzero(group & ~taken)
        pick = rng.choice(members, size=min(3, len(members)), replace=False)
        df.loc[pick, col] = thr[key]
        taken[pick] = True
    df["mainPeakToTroughRatio"] = np.maximum(df["mainPeakToTroughRatio"], 0)

    # Missing values: 3% per metric.
    for col in df.columns:
        if col in ("maxChannels", "phy_clusterID", "clusterID", "nSpikes"):
            continue
        df.loc[rng.random(n) < 0.03, col] = np.nan

    # Empty units (nSpikes == 0), filled as runAllQualityMetrics.m fills them.
    empty = rng.choice(np.flatnonzero(~taken), size=6, replace=False)
    keep = {"maxChannels", "phy_clusterID", "clusterID"}
    for col in df.columns:
        if col not in keep:
            df.loc[empty, col] = np.nan
    df.loc[empty, "nSpikes"] = 0.0
    df.loc[empty, "estimatedTauR"] = 0.0  # not assigned for empty units: MATLAB's array growth zero-fills it

    # Six significant digits (keeps the files small; the straddles need five).
    df = df.apply(lambda c: c.map(lambda x: float(f"{x:.6g}")))

    if case.is_somatic:
        som = (rng.random(n) > 0.2).astype(float)
        som[rng.choice(n, size=2, replace=False)] = np.nan
        df.insert(df.columns.get_loc("nTroughs") + 1, "isSomatic", som)
    return df


def old_names_table(rng, df: pd.DataFrame, thr: dict) -> pd.DataFrame:
    """Replace the four ratios by peak/trough sizes (an old run's columns) and rename isoD / RPV_tauR_estimate."""
    n = len(df)
    trough = log_uniform(rng, 20, 400, n)
    after = trough * df["scndPeakToTroughRatio"].fillna(0.3).to_numpy()
    before = after * df["peak1ToPeak2Ratio"].fillna(0.5).to_numpy()
    # Units aimed at the non-somatic AND group: trough/before < threshold and before/after > threshold.
    group = df["troughToPeak2Ratio"].to_numpy() < thr["minTroughToPeak2"]
    before[group] = trough[group] / df.loc[group, "troughToPeak2Ratio"].to_numpy()
    after[group] = before[group] / np.maximum(df.loc[group, "peak1ToPeak2Ratio"].fillna(4).to_numpy(), 1e-3)
    # Straddle the recomputed ratios exactly at their thresholds for a few units.
    idx = rng.choice(np.flatnonzero(df["nSpikes"].to_numpy() > 0), size=16, replace=False)
    after[idx[:4]] = trough[idx[:4]] * np.array([thr["maxScnd"]] * 2 + [thr["maxScnd"] * 1.01] * 2)
    before[idx[4:8]] = trough[idx[4:8]] * np.array([thr["maxMainPeakToTrough"], thr["maxMainPeakToTrough"] * 1.01,
                                                    thr["maxMainPeakToTrough"] * 0.99, thr["maxMainPeakToTrough"]])
    after[idx[4:8]] = np.minimum(after[idx[4:8]], before[idx[4:8]] * 0.5)
    # Negative trough sizes (findpeaks found no trough and min() was used), with a large peak: the recomputed
    # mainPeakToTroughRatio is below -0.9 (not non-somatic) where an abs() would make it non-somatic.
    neg = idx[8:16]
    before[neg] = trough[neg] * rng.uniform(1.0, 1.5, len(neg))
    after[neg] = trough[neg] * rng.uniform(0.1, 0.5, len(neg))
    trough[neg] = -trough[neg]
    nan_rows = df["scndPeakToTroughRatio"].isna().to_numpy() & df["nSpikes"].eq(0).to_numpy()
    for arr in (trough, after, before):
        arr[nan_rows] = np.nan
    out = df.drop(columns=RATIO_COLUMNS)
    pos = out.columns.get_loc("mainPeak_before_width")
    out.insert(pos, "mainTrough_size", trough)
    out.insert(pos, "mainPeak_after_size", after)
    out.insert(pos, "mainPeak_before_size", before)
    return out.rename(columns={"isolationDistance": "isoD", "RPV_window_index": "RPV_tauR_estimate"})


def demo_table(demo: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame(index=range(len(demo)))
    for col in CORE_COLUMNS + ["signalToNoiseRatio", "fractionRPVs_estimatedTauR"]:
        if col == "clusterID":
            df[col] = demo["phy_clusterID"].to_numpy(float) + 1
        elif col in demo.columns:
            df[col] = demo[col].to_numpy(float)
        else:  # ksTest_pValue, mainPeak_after_width: not in the Python run's output
            df[col] = np.nan
    return df


def order_columns(df: pd.DataFrame, extract_raw: bool) -> pd.DataFrame:
    """MATLAB's column order: SNR right after rawAmplitude when extractRaw is 0, after the distance metrics (it is
    assigned after the unit loop) when extractRaw is 1; fractionRPVs_estimatedTauR last."""
    cols = [c for c in df.columns if c not in ("signalToNoiseRatio", "fractionRPVs_estimatedTauR")]
    if not extract_raw:
        cols.insert(cols.index("rawAmplitude") + 1, "signalToNoiseRatio")
    else:
        cols.append("signalToNoiseRatio")
    cols.append("fractionRPVs_estimatedTauR")
    return df[cols]


# ----------------------------------------------------------------------------------------------
# Octave
# ----------------------------------------------------------------------------------------------

def fmt(x) -> str:
    return "NaN" if isinstance(x, float) and np.isnan(x) else repr(float(x))


def write_spec(case: Case, path: Path) -> None:
    lines = [f"qpv\trawFile\tstr\t{case.raw_file}", f"qpv\tephysKilosortPath\tstr\t{case.ks_path}",
             "qpv\tgain_to_uV\tempty\t" if case.gain_to_uV is None else f"qpv\tgain_to_uV\tnum\t{fmt(case.gain_to_uV)}",
             f"qpv\tkilosortVersion\tnum\t{case.kilosort_version}"]
    for op in case.ops:
        if op[0] == "set":
            value = op[2]
            if value is None:
                lines.append(f"set\t{op[1]}\tempty\t")
            elif isinstance(value, str):
                lines.append(f"set\t{op[1]}\tstr\t{value}")
            else:
                lines.append(f"set\t{op[1]}\tnum\t{fmt(value)}")
        else:
            lines.append("\t".join(op))
    path.write_text("\n".join(lines) + "\n")


def run_octave(bc_matlab: Path, work: Path) -> str:
    cmd = ["octave-cli", "--no-gui", "--norc", "--eval",
           f"addpath('{HERE}'); run_classifier('{bc_matlab}', '{work}')"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or "run_classifier: using" not in res.stdout:
        sys.stderr.write(res.stdout + res.stderr)
        raise RuntimeError(f"Octave failed for {work}")
    return res.stdout


def read_param_dump(path: Path) -> list[tuple[str, str, int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        name, cls, r, c, *rest = line.split("\t")
        rows.append((name, cls, int(r), int(c), rest[0] if rest else ""))
    return rows


def param_values(dump) -> dict:
    out = {}
    for name, cls, r, c, text in dump:
        if cls == "char":
            out[name] = text
        elif r * c == 1:
            out[name] = float(text)
        else:
            out[name] = [float(v) for v in text.split(",")] if text else []
    return out


# ----------------------------------------------------------------------------------------------
# Writers (what MATLAB would write)
# ----------------------------------------------------------------------------------------------

def matlab_num(x: float) -> str:
    """How we write a double in a MATLAB writetable text file: '%.15g', NaN as NaN."""
    if np.isnan(x):
        return "NaN"
    if np.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    return f"{x:.15g}"


def write_param_files(dump, out: Path) -> None:
    """struct2table(param, 'AsArray', true) + parquetwrite / writetable, one row.

    numeric scalar -> float64; logical -> bool; char -> string; any other numeric size ([] or a vector, held in a
    cell by struct2table) -> list<double>."""
    arrays, fields, csv = [], [], []
    for name, cls, r, c, text in dump:
        if cls == "char":
            arrays.append(pa.array([text], pa.string()))
            csv.append(text)
        elif cls == "logical" and r * c == 1:
            arrays.append(pa.array([text not in ("0", "")], pa.bool_()))
            csv.append("true" if text not in ("0", "") else "false")
        elif r * c == 1:
            arrays.append(pa.array([float(text)], pa.float64()))
            csv.append(matlab_num(float(text)))
        else:
            vals = [float(v) for v in text.split(",")] if text else []
            arrays.append(pa.array([vals], pa.list_(pa.float64())))
            csv.append(",".join(matlab_num(v) for v in vals))
        fields.append(name)
    pq.write_table(pa.Table.from_arrays(arrays, names=fields), out / "_bc_parameters._bc_qMetrics.parquet",
                   write_statistics=False)
    with open(out / "_bc_parameters._bc_qMetrics.csv", "w", newline="") as fh:
        fh.write(",".join(fields) + "\n")
        fh.write(",".join(f'"{v}"' if "," in v else v for v in csv) + "\n")


def write_text_table(df: pd.DataFrame, path: Path, sep: str) -> None:
    with open(path, "w", newline="") as fh:
        fh.write(sep.join(df.columns) + "\n")
        for row in df.itertuples(index=False):
            fh.write(sep.join(v if isinstance(v, str) else matlab_num(float(v)) for v in row) + "\n")


def write_metric_tsvs(table: pd.DataFrame, p: dict, ks_dir: Path) -> list[str]:
    use = list(range(13))
    if p.get("computeDistanceMetrics"):
        use += [13, 14, 15]
    if p.get("computeDrift"):
        use += [16, 17]
    written = []
    for i, (field, renamed) in enumerate(TSV_FIELDS):
        if i in use:
            out = pd.DataFrame({"cluster_id": table["phy_clusterID"], renamed: table[field]})
            write_text_table(out, ks_dir / f"cluster_{renamed}.tsv", "\t")
            written.append(f"cluster_{renamed}.tsv")
    return written


# ----------------------------------------------------------------------------------------------
# Coverage report (our reading of getQualityUnitType.m; not used for any label)
# ----------------------------------------------------------------------------------------------

def rule_masks(q: pd.DataFrame, p: dict) -> tuple[dict, dict, dict]:
    def col(name):
        return q[name].to_numpy(float) if name in q else np.full(len(q), np.nan)

    noise = {
        "noise: nPeaks is NaN": np.isnan(col("nPeaks")),
        "noise: nPeaks > maxNPeaks": col("nPeaks") > p["maxNPeaks"],
        "noise: nTroughs > maxNTroughs": col("nTroughs") > p["maxNTroughs"],
        "noise: waveformDuration < minWvDuration": col("waveformDuration_peakTrough") < p["minWvDuration"],
        "noise: waveformDuration > maxWvDuration": col("waveformDuration_peakTrough") > p["maxWvDuration"],
        "noise: baselineFlatness > maxWvBaselineFraction": col("waveformBaselineFlatness") > p["maxWvBaselineFraction"],
        "noise: scndPeakToTroughRatio > max_noise": col("scndPeakToTroughRatio") > p["maxScndPeakToTroughRatio_noise"],
    }
    slope = col("spatialDecaySlope")
    if p["computeSpatialDecay"] == 1 and p["spDecayLinFit"] == 1:
        noise["noise: spatialDecaySlope > minSpatialDecaySlope (linear)"] = slope > p["minSpatialDecaySlope"]
    else:
        noise["noise: spatialDecaySlope < minSpatialDecaySlopeExp"] = slope < p["minSpatialDecaySlopeExp"]
        noise["noise: spatialDecaySlope > maxSpatialDecaySlopeExp"] = slope > p["maxSpatialDecaySlopeExp"]
    mua = {
        "mua: percentageSpikesMissing > max": col("percentageSpikesMissing_gaussian") > p["maxPercSpikesMissing"],
        "mua: nSpikes < minNumSpikes": col("nSpikes") < p["minNumSpikes"],
        "mua: fractionRPVs_estimatedTauR > maxRPVviolations": col("fractionRPVs_estimatedTauR") > p["maxRPVviolations"],
        "mua: presenceRatio < minPresenceRatio": col("presenceRatio") < p["minPresenceRatio"],
    }
    if p["computeDistanceMetrics"] and not np.isnan(p["isoDmin"]):
        mua["mua: isolationDistance < isoDmin"] = col("isolationDistance") < p["isoDmin"]
        mua["mua: Lratio > lratioMax"] = col("Lratio") > p["lratioMax"]
    if p["extractRaw"]:
        mua["mua: rawAmplitude < minAmplitude"] = col("rawAmplitude") < p["minAmplitude"]
        mua["mua: signalToNoiseRatio < minSNR"] = col("signalToNoiseRatio") < p["minSNR"]
    if p["computeDrift"]:
        mua["mua: maxDriftEstimate > maxDrift"] = col("maxDriftEstimate") > p["maxDrift"]
    parts = {
        "non-soma: troughToPeak2Ratio < min": col("troughToPeak2Ratio") < p["minTroughToPeak2Ratio_nonSomatic"],
        "non-soma: mainPeak_before_width < min": col("mainPeak_before_width") < p["minWidthFirstPeak_nonSomatic"],
        "non-soma: mainTrough_width < min": col("mainTrough_width") < p["minWidthMainTrough_nonSomatic"],
        "non-soma: peak1ToPeak2Ratio > max": col("peak1ToPeak2Ratio") > p["maxPeak1ToPeak2Ratio_nonSomatic"],
    }
    nonsoma = dict(parts)
    nonsoma["non-soma: all four of the above (AND group)"] = np.logical_and.reduce(list(parts.values()))
    nonsoma["non-soma: mainPeakToTroughRatio > max"] = (col("mainPeakToTroughRatio")
                                                       > p["maxMainPeakToTroughRatio_nonSomatic"])
    return noise, mua, nonsoma


def predict_table_labels(q: pd.DataFrame, p: dict) -> np.ndarray:
    """Our reading of the table run (isfield() is false on a table: no isSomatic path, no empty-unit reset)."""
    noise, mua, nonsoma = rule_masks(q, p)
    is_noise = np.logical_or.reduce(list(noise.values()))
    is_mua = ~is_noise & np.logical_or.reduce(list(mua.values()))
    ns = nonsoma["non-soma: all four of the above (AND group)"] | nonsoma["non-soma: mainPeakToTroughRatio > max"]
    labels = np.where(is_noise, "NOISE", np.where(is_mua, "MUA", "GOOD")).astype(object)
    if p["splitGoodAndMua_NonSomatic"]:
        labels[ns & (labels == "GOOD")] = "NON-SOMA GOOD"
        labels[ns & (labels == "MUA")] = "NON-SOMA MUA"
    else:
        labels[ns & ((labels == "GOOD") | (labels == "MUA"))] = "NON-SOMA"
    return labels


def coverage_lines(q: pd.DataFrame, p: dict, labels: pd.Series) -> list[str]:
    noise, mua, nonsoma = rule_masks(q, p)
    any_noise = np.logical_or.reduce(list(noise.values()))
    n_noise = np.sum(list(noise.values()), axis=0)
    n_mua = np.sum(list(mua.values()), axis=0)
    lines = ["| rule | true for | decisive for |", "|---|---:|---:|"]
    for name, m in noise.items():
        lines.append(f"| {name} | {m.sum()} | {(m & (n_noise == 1)).sum()} |")
    for name, m in mua.items():
        lines.append(f"| {name} | {m.sum()} | {(m & ~any_noise & (n_mua == 1)).sum()} |")
    somatic_pool = labels.isin(["NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA"]).to_numpy()
    for name, m in nonsoma.items():
        lines.append(f"| {name} | {m.sum()} | {(m & somatic_pool).sum()} (labelled non-soma) |")
    empty = q["nSpikes"].to_numpy(float) == 0
    lines.append(f"| empty unit (nSpikes == 0) | {empty.sum()} | - |")
    lines.append("")
    lines.append("'decisive': the only noise rule that is true (noise rules), the only MUA rule true on a unit no "
                 "noise rule caught (MUA rules); for non-soma rules, true on a unit labelled non-soma.")
    return lines


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def build_case(case: Case, demo: pd.DataFrame, bc_matlab: Path, out_root: Path, tmp: Path) -> dict:
    work = tmp / case.name
    work.mkdir()
    write_spec(case, work / "spec.tsv")
    run_octave(bc_matlab, work)  # first pass: the param only
    saved = param_values(read_param_dump(work / "param_saved.tsv"))

    if case.demo:
        table = demo_table(demo)
    else:
        table = make_units(case, demo)
        if case.old_names:
            table = old_names_table(case_rng(case.name + "/sizes"), table, generation_thresholds(case))
    table = order_columns(table, bool(saved["extractRaw"]))
    if case.zero_p1p2:  # saveQMetrics.m, before it saves the table and classifies it
        invalid = ((table["troughToPeak2Ratio"] > saved["minTroughToPeak2Ratio_nonSomatic"])
                   | (table["mainPeak_before_width"] > saved["minWidthFirstPeak_nonSomatic"])
                   | (table["mainTrough_width"] > saved["minWidthMainTrough_nonSomatic"]))
        table.loc[invalid, "peak1ToPeak2Ratio"] = 0.0
    table = table.astype("float64")
    table.to_csv(work / "qmetric.csv", index=False, na_rep="NaN", float_format="%.17g")
    log = run_octave(bc_matlab, work)

    labels = pd.read_csv(work / "labels.tsv", sep="\t", keep_default_na=False, dtype=str)
    used_p = param_values(read_param_dump(work / "param_used.tsv"))
    used_q = pd.read_csv(work / "qmetric_used.csv")

    out = out_root / case.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False).replace_schema_metadata(None)  # no pandas metadata
    pq.write_table(arrow, out / "templates._bc_qMetrics.parquet", compression="zstd")
    write_param_files(read_param_dump(work / "param_saved.tsv"), out)
    all_csv = table.copy()
    all_csv["bc_unitType"] = labels["unitType_string_table"].to_numpy()
    write_text_table(all_csv, out / "templates._bc_qMetrics_all.csv", ",")
    oracle = pd.DataFrame({
        "phy_clusterID": table["phy_clusterID"].astype(int),
        "unitType": labels["unitType_table"].replace("NaN", ""),
        "unitType_string": labels["unitType_string_table"],
        "unitType_struct": labels["unitType_struct"].replace("NaN", ""),
        "unitType_string_struct": labels["unitType_string_struct"],
    })
    oracle.to_csv(out / "matlab_labels.tsv", sep="\t", index=False)

    ks_written = []
    if saved.get("saveAsTSV") == 1:
        ks = out / "ks_files"
        ks.mkdir()
        ks_written = write_metric_tsvs(table, saved, ks)
        if (work / "ks_files" / "cluster_bc_unitType.tsv").exists():
            shutil.copy(work / "ks_files" / "cluster_bc_unitType.tsv", ks / "cluster_bc_unitType.tsv")
            ks_written.insert(0, "cluster_bc_unitType.tsv (written by getQualityUnitType under Octave)")

    old_names_checks = {}
    if case.old_names:  # how much the old names and the missing abs matter (our reading of the rules)
        q_abs = used_q.assign(mainPeakToTroughRatio=used_q["mainPeakToTroughRatio"].abs())
        p_new = dict(used_p, maxScndPeakToTroughRatio_noise=0.8, maxPeak1ToPeak2Ratio_nonSomatic=3.0,
                     maxMainPeakToTroughRatio_nonSomatic=0.8, minWidthFirstPeak_nonSomatic=4.0,
                     minWidthMainTrough_nonSomatic=5.0)
        truth = labels["unitType_string_table"].to_numpy()
        old_names_checks = {"abs": int((predict_table_labels(q_abs, used_p) != truth).sum()),
                            "defaults": int((predict_table_labels(used_q, p_new) != truth).sum())}
    predicted = predict_table_labels(used_q, used_p)
    mismatch = int((predicted != labels["unitType_string_table"].to_numpy()).sum())
    counts = labels["unitType_string_table"].replace("", "'' (empty unit)").value_counts().sort_index()
    counts_struct = labels["unitType_string_struct"].replace("", "'' (empty unit)").value_counts().sort_index()
    return dict(case=case, n=len(table), counts=counts, counts_struct=counts_struct,
                coverage=coverage_lines(used_q, used_p, labels["unitType_string_table"]),
                mismatch=mismatch, ks_written=ks_written, old_names_checks=old_names_checks,
                octave_log=log.strip().splitlines(),
                differs=int((labels["unitType_string_table"] != labels["unitType_string_struct"]).sum()))


def octave_version() -> str:
    res = subprocess.run(["octave-cli", "--version"], capture_output=True, text=True)
    return res.stdout.splitlines()[0].strip()


def write_source_md(results: list[dict], out_root: Path, commit: str) -> None:
    extra = next(r["old_names_checks"] for r in results if r["case"].old_names)
    lines = [
        "# MATLAB Bombcell test cases (labels from MATLAB Bombcell's own classifier, run under GNU Octave)",
        "",
        "Generated by `tests/matlab/build_matlab_cases.py`; do not edit by hand.",
        "",
        f"* Bombcell commit: `{commit}` (`matlab/+bc/+qm/getQualityUnitType.m`, `qualityParamValues.m`, "
        "`checkParameterFields.m`, `prettify_names.m`, `addMissingFieldsWithDefault.m` run unmodified).",
        f"* Octave: {octave_version()}.",
        "* Command: `python tests/matlab/build_matlab_cases.py --bombcell-repo "
        "/work/.mirror/Julie-Fabre+bombcell/repo --out tests/data/matlab`",
        f"* Seed {SEED}; {N_UNITS} units per generated case, resampled from the 27 demo units "
        "(`phy_bcreason/demo_data/bombcell/templates._bc_qMetrics.parquet`) and perturbed.",
        "",
        "## How the labels are made",
        "",
        "1. `param` = Bombcell's `bc.qm.qualityParamValues([], rawFile, ephysKilosortPath, gain_to_uV, "
        "kilosortVersion)`, then the case's edits (set / rename / remove), then `ephysKilosortPath` / `gain_to_uV` "
        "set to `'NaN'` when empty, as `saveQMetrics.m` does before saving and classifying.",
        "2. The metrics table is built in Python; `peak1ToPeak2Ratio` is overwritten with 0 where "
        "`troughToPeak2Ratio > minTroughToPeak2Ratio_nonSomatic | mainPeak_before_width > "
        "minWidthFirstPeak_nonSomatic | mainTrough_width > minWidthMainTrough_nonSomatic` (saveQMetrics.m) before "
        "it is saved and classified (not in `old_names` and `backfill`, which stand for older runs).",
        "3. Octave calls `bc.qm.getQualityUnitType(param, T, savePath)` with `T` a table: MATLAB's saveQMetrics.m "
        "passes the table it just saved, and loadSavedMetrics.m returns `parquetread`'s table. Octave 7 has no "
        "table class, so `tests/matlab/shims/@mtable` stands in (dot access, `Properties.VariableNames`, "
        "renaming; `isfield` is false on it, as on a MATLAB table). These labels are the oracle "
        "(`matlab_labels.tsv` columns `unitType`, `unitType_string`; `templates._bc_qMetrics_all.csv` "
        "`bc_unitType`; `ks_files/cluster_bc_unitType.tsv`).",
        "4. Octave also calls it with a struct of column vectors (columns `unitType_struct`, "
        "`unitType_string_struct`). On a table, `isfield(qMetric, 'isSomatic')` and `isfield(qMetric, 'nSpikes')` "
        "are false, so MATLAB's saved labels never use the legacy isSomatic path and never reset empty units "
        "(nSpikes == 0) to NaN / '': those stay NOISE (their nPeaks is NaN). With a struct both happen.",
        "",
        "## Files per case",
        "",
        "* `templates._bc_qMetrics.parquet`: every qMetric column as float64 in MATLAB's creation order "
        "(runAllQualityMetrics.m), `clusterID` 1-based, `phy_clusterID` 0-based, `fractionRPVs_estimatedTauR` last; "
        "no `bc_unitType`.",
        "* `_bc_parameters._bc_qMetrics.parquet` / `.csv`: one row, as `struct2table(param, 'AsArray', true)` + "
        "`parquetwrite` / `writetable`: numeric scalars float64; char string; logical bool (none occur: "
        "Bombcell's params are all doubles); a non-scalar numeric (`contaminationValues = []`; `tauR_values` "
        "when a vector) sits in a cell in the table and is written as list<double> (empty list for `[]`; MathWorks "
        "documents that parquetwrite maps cell arrays to Parquet LIST columns); in the "
        "CSV as its values joined by ',' (empty for `[]`). `gain_to_uV` is a string 'NaN' when empty, float64 when "
        "given; `ephysKilosortPath` 'NaN' when empty.",
        "* `templates._bc_qMetrics_all.csv`: the metrics plus `bc_unitType` (MATLAB's strings; '' for none). "
        "Numbers written '%.15g', NaN as `NaN` (our assumption about writetable's text formatting).",
        "* `matlab_labels.tsv`: `phy_clusterID`, `unitType` (numeric code, empty for NaN), `unitType_string`, "
        "`unitType_struct`, `unitType_string_struct`: straight from Octave.",
        "* `ks_files/` (cases with saveAsTSV 1): `cluster_bc_unitType.tsv` written by getQualityUnitType itself "
        "(`cluster_id = clusterID - 1`; our `table`/`writetable` shims; we point `param.ephysKilosortPath` at this "
        "folder for the call, the saved param keeps the case's path) and the renamed per-metric TSVs of "
        "saveQMetrics.m keyed by `phy_clusterID` (written by this script: fields 1-13 always, 14-16 with "
        "computeDistanceMetrics, 17-18 (good_chunk_start/stop) with computeDrift).",
        "* Not written: `templates._bc_fractionRefractoryPeriodViolationsPerTauR.parquet`, "
        "`templates.qualityMetricDetailsforGUI.mat`, `templates._bc_medianSpikeDepth.parquet` (need data we do "
        "not have; the classifier does not read them).",
        "",
        "## MATLAB behaviour these cases pin down",
        "",
        "* **Table, not struct.** Every MATLAB call site that classifies saved results passes a table "
        "(saveQMetrics.m: `getQualityUnitType(param, qMetricTable, ...)`; runAllQualityMetrics.m: the table "
        "saveQMetrics returns; loadSavedMetrics.m: `parquetread`). `isfield` is false for a table, so in saved "
        "MATLAB results (a) empty units (nSpikes == 0) are NOT reset to NaN / '': they stay NOISE (nPeaks is NaN); "
        "(b) the legacy `isSomatic` path never runs; the ratio/width rule is used even when an isSomatic column "
        "exists (so an old table that lacks those columns, and the peak/trough sizes to recompute them from, cannot "
        "be classified at all: the table access errors). Both only happen when a struct is passed by hand "
        "(`unitType_struct` columns).",
        "* `prettify_names` recomputes `mainPeakToTroughRatio = max(before, after) ./ trough` without `abs` "
        "(waveformShape.m applies abs); a negative trough size gives a negative ratio that never exceeds the "
        f"non-somatic threshold ({extra['abs']} units in `old_names` would change label with an abs). MATLAB's "
        "`max` ignores NaN.",
        "* Old parameter names win over the back-fill: checkParameterFields renames first, then fills only what "
        f"is still missing ({extra['defaults']} units in `old_names` would change label if the renamed values were "
        "ignored and the current qualityParamValues defaults used).",
        "* `isoDmin = NaN` switches off the whole distance rule, Lratio included (`distance_isod_nan`).",
        "* The SNR test runs on units whose rawAmplitude is NaN (`raw_nan_amplitude`).",
        "* `computeSpatialDecay = 0` still applies the exponential thresholds to any non-NaN slope "
        "(`no_spatial_decay`).",
        "* Back-filled params (`backfill`): spDecayLinFit 1 and non-somatic widths/ratios 0, 0, 0, Inf, so only "
        "`mainPeakToTroughRatio > 0.8` can make a unit non-somatic.",
        "* qualityParamValues at 30 kHz with kilosortVersion < 4 gives spikeWidth 83 (calculateSpikeWidth rounds "
        "81.99 to 82, then makes it odd) against standardSpikeWidth 82; the width thresholds still round to 4 "
        "and 5 samples. With kilosortVersion 4: 61 and 61.",
        "* getQualityUnitType writes `cluster_bc_unitType.tsv` into `param.ephysKilosortPath` whenever that field "
        "exists, even when saveQMetrics has set it to the placeholder 'NaN' (the write then fails inside a "
        "try/catch, with a warning); saveQMetrics' metric TSVs fall back to the save path instead.",
        "* Labels are strings 'NOISE', 'GOOD', 'MUA', 'NON-SOMA' or, with splitGoodAndMua_NonSomatic, "
        "'NON-SOMA GOOD' / 'NON-SOMA MUA'; '' only for empty units in a struct call.",
        "",
        "## Using the `demo` case in Phy",
        "",
        "Copy `phy_bcreason/demo_data/`, delete its `bombcell/` folder and the Python-written `cluster_*.tsv` "
        "files except `cluster_group.tsv`, copy the `demo` case's top-level files (without `matlab_labels.tsv`) "
        "into a new `bombcell/` folder and `demo/ks_files/*.tsv` next to the Kilosort files.",
        "",
        "## Cases",
        "",
    ]
    totals: dict[str, int] = {}
    for r in results:
        case = r["case"]
        lines += [f"### `{case.name}` ({r['n']} units)", "", case.about, ""]
        if case.ops:
            lines.append("Param edits after qualityParamValues (kilosortVersion "
                         f"{case.kilosort_version}): " + "; ".join(
                             f"{op[0]} {' '.join(str(x) for x in op[1:])}" for op in case.ops) + ".")
        else:
            lines.append(f"No param edits after qualityParamValues (kilosortVersion {case.kilosort_version}).")
        lines += ["", "Labels (table run = oracle): " + ", ".join(f"{k} {v}" for k, v in r["counts"].items()) + ".",
                  "Struct run: " + ", ".join(f"{k} {v}" for k, v in r["counts_struct"].items())
                  + f" ({r['differs']} units differ from the table run).", ""]
        for k, v in r["counts"].items():
            totals[k] = totals.get(k, 0) + int(v)
        if r["ks_written"]:
            lines += ["ks_files: " + ", ".join(r["ks_written"]) + ".", ""]
        lines += r["coverage"]
        lines += ["", f"Cross-check: our reading of the rules predicts the table-run label for all but "
                  f"{r['mismatch']} units.", ""]
    lines += ["## Labels over all cases", "", ", ".join(f"{k} {v}" for k, v in sorted(totals.items())), ""]
    (out_root / "SOURCE.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bombcell-repo", required=True, type=Path, help="Bombcell git dir (bare is fine)")
    ap.add_argument("--out", required=True, type=Path, help="output folder, e.g. tests/data/matlab")
    ap.add_argument("--cases", nargs="*", help="only these cases (default: all)")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(args.bombcell_repo), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    demo = pd.read_parquet(DEMO_PARQUET)
    cases = [c for c in CASES if not args.cases or c.name in args.cases]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bc_matlab_") as tmp_name:
        tmp = Path(tmp_name)
        archive = subprocess.run(["git", "-C", str(args.bombcell_repo), "archive", "HEAD", "matlab"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        bc_matlab = tmp / "matlab"
        results = []
        for case in cases:
            r = build_case(case, demo, bc_matlab, args.out, tmp)
            print(f"{case.name}: " + ", ".join(f"{k} {v}" for k, v in r["counts"].items())
                  + f"; cross-check mismatches {r['mismatch']}")
            results.append(r)
    if not args.cases:
        write_source_md(results, args.out, commit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
