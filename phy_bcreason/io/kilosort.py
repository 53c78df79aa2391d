"""The Kilosort folder's spike files, found where Phy finds them: each spike's cluster, and each cluster's count.
Memory-mapped, never unpickled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import first_line

# Where Phy takes each spike's cluster from (spike_templates.npy when a folder was never curated).
SPIKE_FILES = ("spike_clusters.npy", "spike_templates.npy")


def find_spike_file(ks_dir: Path) -> Path:
    """The file Phy takes each spike's cluster from: spike_clusters.npy, else spike_templates.npy; when there is
    neither, FileNotFoundError naming both."""
    for name in SPIKE_FILES:
        if (ks_dir / name).is_file():
            return ks_dir / name
    raise FileNotFoundError(f"None of these files could be found in {ks_dir}: {', '.join(SPIKE_FILES)}.")


def spike_counts(ks_dir: Path, notes: list[str]) -> tuple[Path, np.ndarray, np.ndarray] | None:
    """(file, cluster ids, spike counts) of the Kilosort folder's spike_clusters.npy (else spike_templates.npy,
    as Phy reads them), or None when there is neither or it cannot be read. Memory-mapped, never unpickled."""
    try:
        path = find_spike_file(ks_dir)
    except FileNotFoundError:
        return None
    try:
        spikes = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False)).ravel()
        counts = np.bincount(spikes.astype(np.int64, copy=False))  # linear: this runs on Phy's start-up
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    except Exception as exc:
        notes.append(f"{path}: cannot read ({first_line(exc)}); cluster ids not checked against it")
        return None
    return path, ids, counts
