"""Threshold suggestions at scale: every active threshold for 1,200 labelled units, and one joint fit.

    python benchmarks/bench_concordance.py [--units 1200] [--repeats 5]

The demo's Bombcell metrics (a real run) are tiled to ``--units`` rows with a little jitter so that values
differ; a curator who keeps units Bombcell rejects only for refractory-period violations labels every unit.
Reported: median of the repeats; the engine's own evaluation of the same table as the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from phy_bcreason.api import explain
from phy_bcreason.io.results import BombcellResults
from phy_bcreason.tuning.concordance import LABEL_GROUPS, suggest, suggest_jointly

DEMO = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data" / "bombcell"


def tiled(n_units: int, seed: int = 0) -> BombcellResults:
    metrics = pd.read_parquet(DEMO / "templates._bc_qMetrics.parquet")
    params = pd.read_parquet(DEMO / "_bc_parameters._bc_qMetrics.parquet").iloc[0].to_dict()
    rng = np.random.default_rng(seed)
    table = metrics.iloc[np.arange(n_units) % len(metrics)].reset_index(drop=True)
    for column in table.columns.drop(["phy_clusterID", "nSpikes", "nPeaks", "nTroughs", "bc_unitType"]):
        if table[column].dtype.kind == "f":
            table[column] = table[column] * rng.uniform(0.9, 1.1, n_units)
    table["phy_clusterID"] = np.arange(n_units)
    return BombcellResults(Path("tiled"), params, table, np.arange(n_units))


def median_time(job, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = tiled(args.units)
    explanation = explain(results, check=False)
    groups = {}
    for row, cluster_id in enumerate(explanation.cluster_ids.tolist()):
        decisive = {explanation.rules[j].param for j in np.flatnonzero(explanation.status[row] == 0)}
        label = explanation.rule_labels[row]
        groups[cluster_id] = "good" if label == "MUA" and decisive == {"maxRPVviolations"} else \
            LABEL_GROUPS.get(label, "good")
    engine = median_time(lambda: explain(results, check=False), args.repeats)
    single = median_time(lambda: suggest(explanation, groups), args.repeats)
    joint = median_time(lambda: suggest_jointly(results, groups, folds=5), max(1, args.repeats // 2))
    suggestions = suggest(explanation, groups)
    print(f"{args.units} units, all labelled; {len(suggestions)} thresholds would agree better")
    print(f"engine, one evaluation:                     {engine * 1e3:8.1f} ms")
    print(f"single-threshold suggestions, every active: {single * 1e3:8.1f} ms ({single / engine:.1f}x the engine)")
    print(f"joint suggestion with 5-fold held-out:      {joint * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
