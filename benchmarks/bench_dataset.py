"""A Neuropixels-scale benchmark folder: the bundled demo (27 units, 200 s, 32 channels, a real Bombcell run)
tiled in clusters, channels and time, then labelled by Bombcell itself. Cached outside the repository.

    python benchmarks/bench_dataset.py [--clusters 616] [--hours 1]      # prints the Kilosort folder's path

Copy k of the demo's units sits on shank k % 2 of a 64-channel, two-shank probe, its spikes shifted by k
samples; the recording is repeated in time (one second of silence between copies) up to ``--hours``. With
the defaults: 616 clusters, 18.3 million spikes, the two largest units 52,938 and 49,500 spikes. Bombcell
runs on the result with the parameters the tests use (its defaults for Kilosort 4) and writes its
``bombcell/`` folder and its per-metric ``cluster_*.tsv`` files, as for a user. The folder is built in a
temporary name and renamed when complete; delete ``~/.cache/phy-bcreason-bench`` to rebuild.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "phy_bcreason" / "demo_data"
CACHE = Path(os.environ.get("PHY_BCREASON_BENCH_CACHE", Path.home() / ".cache" / "phy-bcreason-bench"))
VERSION = 1  # bump when the folder's construction changes


def dataset_path(n_clusters: int = 616, hours: float = 1.0) -> Path:
    return CACHE / f"ks-{n_clusters}c-{hours:g}h-v{VERSION}"


def build(n_clusters: int = 616, hours: float = 1.0, quiet: bool = False) -> Path:
    """The cached folder, built (and labelled by Bombcell) if it is not there yet."""
    out = dataset_path(n_clusters, hours)
    if (out / "bombcell" / "templates._bc_qMetrics.parquet").is_file():
        return out
    tmp = out.with_name(out.name + f".building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    write_kilosort(tmp, n_clusters, hours)
    if not quiet:
        print(f"{tmp}: {len(np.load(tmp / 'spike_times.npy', mmap_mode='r')):,} spikes written "
              f"in {time.perf_counter() - start:.0f} s; running Bombcell", file=sys.stderr)
    start = time.perf_counter()
    sys.path.insert(0, str(REPO))
    from tests.dataset_builder import run_bombcell

    run_bombcell(tmp)
    (tmp / "bombcell_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def write_kilosort(out: Path, n_clusters: int, hours: float) -> None:
    templates = np.load(DEMO / "templates.npy")  # (27, 61, 32)
    n_units, n_samples, n_channels = templates.shape
    times = np.load(DEMO / "spike_times.npy").ravel().astype(np.int64)
    units = np.load(DEMO / "spike_templates.npy").ravel().astype(np.int64)
    amplitudes = np.load(DEMO / "amplitudes.npy").ravel()
    copies = -(-n_clusters // n_units)
    span = int(times.max()) + 30_000  # one second of silence between repeats in time
    repeats = max(1, round(hours * 3600 * 30_000 / span))

    # clusters: copy k of every unit, on shank k % 2, shifted by k samples
    big = np.zeros((copies * n_units, n_samples, 2 * n_channels), dtype=templates.dtype)
    for k in range(copies):
        shank = slice(0, n_channels) if k % 2 == 0 else slice(n_channels, 2 * n_channels)
        big[k * n_units:(k + 1) * n_units, :, shank] = templates
    big = big[:n_clusters]
    one_t = np.concatenate([times + k for k in range(copies)])
    one_u = np.concatenate([units + k * n_units for k in range(copies)])
    one_a = np.tile(amplitudes, copies)
    keep = one_u < n_clusters
    one_t, one_u, one_a = one_t[keep], one_u[keep], one_a[keep]
    order = np.argsort(one_t, kind="stable")
    one_t, one_u, one_a = one_t[order], one_u[order], one_a[order]
    # time: the whole thing repeated (already sorted within a repeat, repeats one after another)
    spike_times = np.concatenate([one_t + r * span for r in range(repeats)]).astype(np.uint64)
    spike_templates = np.tile(one_u, repeats).astype(np.int32)
    np.save(out / "spike_times.npy", spike_times)
    np.save(out / "spike_templates.npy", spike_templates)
    np.save(out / "spike_clusters.npy", spike_templates)
    np.save(out / "amplitudes.npy", np.tile(one_a, repeats))
    np.save(out / "templates.npy", big)
    n_all = 2 * n_channels
    positions = np.load(DEMO / "channel_positions.npy")
    np.save(out / "channel_positions.npy",
            np.concatenate([positions, positions + np.array([250.0, 0.0], dtype=positions.dtype)]))
    np.save(out / "channel_map.npy", np.arange(n_all, dtype=np.int32))
    np.save(out / "channel_groups.npy", np.repeat([0, 1], n_channels).astype(np.int64))
    np.save(out / "whitening_mat.npy", np.eye(n_all))
    np.save(out / "whitening_mat_inv.npy", np.eye(n_all))
    (out / "params.py").write_text(
        "dat_path = ''\nn_channels_dat = 64\ndtype = 'int16'\noffset = 0\nsample_rate = 30000.0\n"
        "hp_filtered = True\n")
    (out / "cluster_group.tsv").write_text(
        "cluster_id\tgroup\n" + "".join(f"{c}\tunsorted\n" for c in range(n_clusters)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=616)
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(build(args.clusters, args.hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
