"""Engine speed as ratios against baselines measured in the same run (10,000 units by default).

    python benchmarks/bench_engine.py [--units 10000] [--repeats 7]

- engine: `evaluate` = labels, every rule's status and margin, decisive reasons and reason text;
- bombcell: Bombcell's classifier alone (`get_quality_unit_type`);
- seed loop: the seed notebooks' recipe (Bombcell's classifier, per-rule flags, then a per-unit Python loop
  building the reason string), copied from export_classification_reason_to_phy.ipynb;
- explain_folder on a 10,000-unit folder as Bombcell leaves it (its two tables, the labels it saved in them and
  in cluster_bc_unitType.tsv) against Bombcell's own `load_bc_results` + classifier; then the same with a
  spike_clusters.npy holding each cluster's nSpikes spikes, which explain_folder's sorting check counts, against
  Bombcell's load + classify alone and plus the same count of that file (`spike_counts`, np.bincount by slices:
  no check that counts the spikes costs less, and Bombcell's loader never opens the file).
Ratios repeat by repeat, interleaved (median, lowest-highest); the machine is shared, so only ratios mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

with contextlib.redirect_stdout(io.StringIO()):
    import bombcell as bc
    from bombcell.quality_metrics import get_quality_unit_type

from phy_bcreason import evaluate, explain_folder
from phy_bcreason.io.kilosort import spike_counts


def realistic_metrics(n_units: int, seed: int = 0) -> pd.DataFrame:
    """Metric distributions shaped like a Neuropixels session (a mix of good, MUA, noise, axonal units)."""
    rng = np.random.default_rng(seed)
    n_spikes = rng.lognormal(7.5, 1.5, n_units).round()
    table = {
        "phy_clusterID": np.arange(n_units),
        "nPeaks": rng.choice([1.0, 1.0, 1.0, 2.0, 3.0, np.nan], n_units, p=[0.5, 0.2, 0.1, 0.12, 0.05, 0.03]),
        "nTroughs": rng.choice([1.0, 1.0, 2.0, 3.0], n_units, p=[0.6, 0.25, 0.1, 0.05]),
        "waveformDuration_peakTrough": rng.normal(500, 250, n_units),
        "waveformBaselineFlatness": rng.beta(2, 8, n_units),
        "scndPeakToTroughRatio": rng.beta(2, 6, n_units),
        "spatialDecaySlope": rng.normal(0.05, 0.03, n_units),
        "troughToPeak2Ratio": rng.lognormal(1.5, 0.8, n_units),
        "mainPeak_before_width": rng.integers(1, 15, n_units).astype(float),
        "mainTrough_width": rng.integers(2, 20, n_units).astype(float),
        "peak1ToPeak2Ratio": rng.lognormal(0, 1, n_units),
        "mainPeakToTroughRatio": rng.lognormal(-1, 0.7, n_units),
        "percentageSpikesMissing_gaussian": rng.exponential(8, n_units),
        "nSpikes": n_spikes,
        "fractionRPVs_estimatedTauR": rng.beta(1, 8, n_units),
        "RPV_status": rng.choice([-1.0, 0.0, 1.0], n_units),
        "presenceRatio": rng.beta(8, 1, n_units),
        "rawAmplitude": np.where(rng.random(n_units) < 0.05, np.nan, rng.lognormal(4, 0.6, n_units)),
        "signalToNoiseRatio": rng.lognormal(1.5, 0.5, n_units),
        "maxDriftEstimate": rng.exponential(40, n_units),
        "isolationDistance": rng.lognormal(3, 0.5, n_units),
        "Lratio": rng.exponential(0.2, n_units),
    }
    return pd.DataFrame(table)


def seed_notebook_reasons(param: dict, quality_metrics: pd.DataFrame) -> list[str]:
    """The seed notebooks' per-unit recipe, kept as they wrote it (it is the baseline, not our logic)."""
    unit_type, unit_type_string = get_quality_unit_type(param, quality_metrics)
    qm_df = pd.DataFrame(quality_metrics).copy()
    qm_df["bombcell_label"] = unit_type_string

    def col(name):
        if name in qm_df.columns:
            return qm_df[name]
        return pd.Series(np.nan, index=qm_df.index)

    noise_fail = {
        "nPeaks>maxNPeaks": col("nPeaks") > param["maxNPeaks"],
        "nTroughs>maxNTroughs": col("nTroughs") > param["maxNTroughs"],
        "wvDuration<minWvDuration": col("waveformDuration_peakTrough") < param["minWvDuration"],
        "wvDuration>maxWvDuration": col("waveformDuration_peakTrough") > param["maxWvDuration"],
        "baselineFlatness>maxWvBaselineFraction": col("waveformBaselineFlatness") > param["maxWvBaselineFraction"],
        "scndPeakToTroughRatio>maxScndPeakToTroughRatio_noise":
            col("scndPeakToTroughRatio") > param["maxScndPeakToTroughRatio_noise"],
    }
    if bool(param.get("computeSpatialDecay", False)):
        if bool(param.get("spDecayLinFit", False)):
            noise_fail["spatialDecaySlope<minSpatialDecaySlope"] = (
                col("spatialDecaySlope") < param["minSpatialDecaySlope"])
        else:
            noise_fail["spatialDecaySlope<minSpatialDecaySlopeExp"] = (
                col("spatialDecaySlope") < param["minSpatialDecaySlopeExp"])
            noise_fail["spatialDecaySlope>maxSpatialDecaySlopeExp"] = (
                col("spatialDecaySlope") > param["maxSpatialDecaySlopeExp"])
    mua_fail = {
        "percentageSpikesMissing_gaussian>maxPercSpikesMissing":
            col("percentageSpikesMissing_gaussian") > param["maxPercSpikesMissing"],
        "nSpikes<minNumSpikes": col("nSpikes") < param["minNumSpikes"],
        "fractionRPVs_estimatedTauR>maxRPVviolations": col("fractionRPVs_estimatedTauR") > param["maxRPVviolations"],
        "presenceRatio<minPresenceRatio": col("presenceRatio") < param["minPresenceRatio"],
    }
    if bool(param.get("extractRaw", False)):
        mua_fail["rawAmplitude<minAmplitude"] = col("rawAmplitude") < param["minAmplitude"]
        mua_fail["signalToNoiseRatio<minSNR"] = col("signalToNoiseRatio") < param["minSNR"]
    non_soma_fail = {
        "troughToPeak2Ratio<minTroughToPeak2Ratio_nonSomatic":
            col("troughToPeak2Ratio") < param["minTroughToPeak2Ratio_nonSomatic"],
        "mainPeak_before_width<minWidthFirstPeak_nonSomatic":
            col("mainPeak_before_width") < param["minWidthFirstPeak_nonSomatic"],
        "mainTrough_width<minWidthMainTrough_nonSomatic":
            col("mainTrough_width") < param["minWidthMainTrough_nonSomatic"],
        "peak1ToPeak2Ratio>maxPeak1ToPeak2Ratio_nonSomatic":
            col("peak1ToPeak2Ratio") > param["maxPeak1ToPeak2Ratio_nonSomatic"],
        "mainPeakToTroughRatio>maxMainPeakToTroughRatio_nonSomatic":
            col("mainPeakToTroughRatio") > param["maxMainPeakToTroughRatio_nonSomatic"],
    }
    noise_fail_np = {k: np.asarray(v, dtype=bool) for k, v in noise_fail.items()}
    mua_fail_np = {k: np.asarray(v, dtype=bool) for k, v in mua_fail.items()}
    nonsoma_fail_np = {k: np.asarray(v, dtype=bool) for k, v in non_soma_fail.items()}
    labels_np = qm_df["bombcell_label"].astype(str).to_numpy()

    def get_main_reason(i: int) -> str:
        label = labels_np[i]
        noise_hits = [k for k, v in noise_fail_np.items() if bool(v[i])]
        mua_hits = [k for k, v in mua_fail_np.items() if bool(v[i])]
        nonsomatic_hits = [k for k, v in nonsoma_fail_np.items() if bool(v[i])]
        if label == "NOISE":
            return f"NOISE: {noise_hits[0]}" if noise_hits else "NOISE"
        if label in ("MUA", "NON-SOMA MUA"):
            return f"MUA: {mua_hits[0]}" if mua_hits else "MUA"
        if label in ("NON-SOMA", "NON-SOMA GOOD"):
            return f"NON-SOMA: {nonsomatic_hits[0]}" if nonsomatic_hits else "NON-SOMA"
        if label == "GOOD":
            return "GOOD: passed all thresholds"
        return f"{label}"

    return [get_main_reason(i) for i in range(len(qm_df))]


def write_folder(metrics: pd.DataFrame, params: dict, ks_dir: Path, spikes: bool = True) -> Path:
    """The folder as Bombcell leaves it: its two parquet tables (the metrics with the bc_unitType it saved), the
    Kilosort folder's cluster_bc_unitType.tsv and, with ``spikes``, a spike_clusters.npy (int32, as Kilosort
    writes it) holding each cluster's nSpikes spikes in a random order, which the sorting check counts."""
    save = ks_dir / "bombcell"
    save.mkdir(parents=True)
    labels = np.asarray(get_quality_unit_type(params, metrics)[1], dtype=object)
    metrics.assign(bc_unitType=labels).to_parquet(save / "templates._bc_qMetrics.parquet")
    pd.DataFrame({"cluster_id": metrics["phy_clusterID"], "bc_unitType": labels}).to_csv(
        ks_dir / "cluster_bc_unitType.tsv", sep="\t", index=False)
    if spikes:
        counts = metrics["nSpikes"].to_numpy().astype(np.int64)
        clusters = np.repeat(metrics["phy_clusterID"].to_numpy().astype(np.int32), counts)
        np.random.default_rng(1).shuffle(clusters)
        np.save(ks_dir / "spike_clusters.npy", clusters)
    scalars = {k: v for k, v in params.items() if np.ndim(v) == 0 and not isinstance(v, (dict, Path))}
    pd.DataFrame([{k: (str(v) if isinstance(v, Path) else v) for k, v in scalars.items()}]).to_parquet(
        save / "_bc_parameters._bc_qMetrics.parquet")
    return ks_dir


def interleaved_times(functions: dict, repeats: int) -> dict[str, list[float]]:
    times = {name: [] for name in functions}
    for _ in range(repeats):  # interleaved, so load on the shared machine hits all alike
        for name, func in functions.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return times


def bombcell_load_and_classify(folder: Path) -> None:
    param, quality_metrics, _ = bc.load_bc_results(str(folder))
    get_quality_unit_type(param, quality_metrics)


def ratio(times: dict[str, list[float]], over: str, under: str) -> tuple[float, float, float]:
    """Median, lowest and highest of the ratio of two functions' times, repeat by repeat (run side by side)."""
    ratios = [a / b for a, b in zip(times[over], times[under])]
    return statistics.median(ratios), min(ratios), max(ratios)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    params = bc.get_default_parameters("/nonexistent", kilosort_version=4)
    metrics = realistic_metrics(args.units)
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(metrics, params, Path(tmp) / "ks")
        no_spikes = write_folder(metrics, params, Path(tmp) / "ks-no-spike-file", spikes=False)
        explanation = evaluate(metrics, params)
        judged = get_quality_unit_type(params, metrics)[1]
        assert list(explanation.labels) == list(judged), "engine labels differ from Bombcell's"
        for ks in (folder, no_spikes):
            loaded = explain_folder(ks)
            assert list(loaded.labels) == list(judged) and not loaded.flagged.any(), f"{ks}: labels differ"
        n_spikes = int(metrics["nSpikes"].sum())
        times = interleaved_times(
            {
                "engine": lambda: evaluate(metrics, params),
                "bombcell classifier": lambda: get_quality_unit_type(params, metrics),
                "seed loop": lambda: seed_notebook_reasons(params, metrics),
                "explain_folder": lambda: explain_folder(no_spikes),
                "explain_folder+spikes": lambda: explain_folder(folder),
                "bombcell load+classify": lambda: bombcell_load_and_classify(folder / "bombcell"),
                "our count": lambda: spike_counts(folder, []),
                "bombcell+our count": lambda: (bombcell_load_and_classify(folder / "bombcell"),
                                               spike_counts(folder, [])),
            },
            args.repeats,
        )
    rows = [
        ("engine / Bombcell classifier", ratio(times, "engine", "bombcell classifier"), "<= 5"),
        ("seed loop / engine", ratio(times, "seed loop", "engine"), ">= 50"),
        ("explain_folder / Bombcell load+classify", ratio(times, "explain_folder", "bombcell load+classify"),
         "<= 2"),
        ("  the same with the sorting check", ratio(times, "explain_folder+spikes", "bombcell load+classify"),
         ""),
        ("  our count alone / Bombcell load+classify", ratio(times, "our count", "bombcell load+classify"), ""),
        ("  with the check / (Bombcell + our count)", ratio(times, "explain_folder+spikes", "bombcell+our count"),
         "<= 2"),
    ]
    print(f"{args.units} units, median of {args.repeats} interleaved repeats (labels agree with Bombcell on every "
          "unit); folder as Bombcell leaves it: its two tables, bc_unitType saved in both")
    print(f"  explain_folder+spikes: the same folder with a spike_clusters.npy of {n_spikes / 1e6:.1f} M spikes "
          "(each cluster's nSpikes), which the sorting check counts and Bombcell's loader does not read;\n"
          "  our count: the sorting check's own count of that file (np.bincount by slices), its floor")
    for name, values in times.items():
        print(f"  {name:<24} {statistics.median(values) * 1000:9.2f} ms")
    for name, (middle, low, high), target in rows:
        print(f"  {name:<42} {middle:7.2f}x  ({low:.2f}-{high:.2f}){f'  (target {target})' if target else ''}")
    middle, low, high = rows[2][1]
    print(f"{args.units:,}-unit ratio, explain_folder / Bombcell load+classify: {middle:.2f}x ({low:.2f}-{high:.2f}); "
          f"with the sorting check of {n_spikes / 1e6:.1f} M spikes {rows[3][1][0]:.2f}x, of which counting them "
          f"alone is {rows[4][1][0]:.2f}x; against Bombcell's load+classify plus the same count {rows[5][1][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
