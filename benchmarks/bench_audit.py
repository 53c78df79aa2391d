"""Audit throughput: `phy-bcreason audit` over many folders (folders per second) with 1 and 2 joblib jobs, and
the same jobs on a `dask.distributed.LocalCluster` through joblib's dask backend.

    python benchmarks/bench_audit.py [--folders 200] [--repeats 3] [--workers 2] [--no-dask]

The folders are made cheaply: sessions of six probes (`session_000/kilosort4_A` ... `_F`), each a copy of the
bundled demo's Bombcell results (27 units) with its `params.py` and `spike_clusters.npy` (so the sorting check
runs as on real data); every third probe carries a re-run's parameters (maxRPVviolations 0.2, minPresenceRatio
0.8). Each audit is the CLI's: discovery, every folder explained by the engine with Bombcell's classifier judging
(`check=True`), the tables built. The first run of each mode includes starting its workers (cold); the median is
over the repeats after it. Writing the tables and the HTML report is timed once, separately.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

DEMO = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data"
PROBES = "ABCDEF"
RERUN = {"maxRPVviolations": 0.2, "minPresenceRatio": 0.8}


def make_tree(root: Path, n_folders: int) -> Path:
    from phy_bcreason.io.bombcell import PARAMS_FILE

    params = pd.read_parquet(DEMO / "bombcell" / PARAMS_FILE)
    rerun = params.assign(**RERUN)
    for i in range(n_folders):
        ks = root / f"session_{i // len(PROBES):03d}" / f"kilosort4_{PROBES[i % len(PROBES)]}"
        ks.mkdir(parents=True)
        for name in ("params.py", "spike_clusters.npy", "cluster_bc_unitType.tsv"):
            shutil.copy(DEMO / name, ks / name)
        shutil.copytree(DEMO / "bombcell", ks / "bombcell")
        if i % 3 == 2:
            rerun.to_parquet(ks / "bombcell" / PARAMS_FILE)
    return root


def timed(run, repeats: int) -> tuple[float, float, object]:
    """(cold seconds, median warm seconds, last result)."""
    start = time.perf_counter()
    result = run()
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        warm.append(time.perf_counter() - start)
    return cold, statistics.median(warm), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (one thread each)")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args(argv)

    from phy_bcreason.batch.audit import discover, run_audit
    from phy_bcreason.batch.report import write_audit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_tree(Path(tmp) / "archive", args.folders)
        start = time.perf_counter()
        targets = discover([root])
        discovery = time.perf_counter() - start
        assert len(targets) == args.folders, len(targets)
        print(f"{len(targets)} folders, discovery {discovery * 1000:.0f} ms")

        def mode(name, **kwargs):
            cold, warm, audit = timed(lambda: run_audit(discover([root]), **kwargs), args.repeats)
            assert len(audit.ok) == args.folders
            rows.append((name, cold, warm))
            print(f"{name:<28} cold {cold:6.2f} s ({args.folders / cold:6.1f} folders/s)   "
                  f"warm median {warm:6.2f} s ({args.folders / warm:6.1f} folders/s)")
            return audit

        audit = mode("joblib, 1 job", jobs=1)
        mode("joblib (loky), 2 jobs", jobs=2)
        if not args.no_dask:
            from dask.distributed import Client, LocalCluster

            with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster):
                mode(f"dask LocalCluster, {args.workers} workers", backend="dask")

        start = time.perf_counter()
        write_audit(audit, Path(tmp) / "out")
        report = time.perf_counter() - start
        size = (Path(tmp) / "out" / "report.html").stat().st_size
        print(f"tables + HTML report for {args.folders} folders: {report:.1f} s ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
