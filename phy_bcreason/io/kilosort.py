"""The Kilosort folder's spike files, found where Phy finds them: each spike's cluster, and each cluster's count.
Memory-mapped, never unpickled."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..core.errors import first_line

# Where Phy takes each spike's cluster from (spike_templates.npy when a folder was never curated).
SPIKE_FILES = ("spike_clusters.npy", "spike_templates.npy")
SPIKES_AT_ONCE = 1 << 18  # spikes counted at a time


def foreign_name(path: str) -> str:
    """The file name of a path written on any OS: ``D:\\x\\r.bin`` and ``/x/r.bin`` are both ``r.bin`` here (on
    POSIX, ``Path(r"D:\\x\\r.bin").name`` is the whole string)."""
    return (PureWindowsPath(path) if _windows_shaped(path) else PurePosixPath(path)).name


def _windows_shaped(path: str) -> bool:
    return "\\" in path or re.match(r"^[A-Za-z]:", path) is not None


def dat_paths(ks_dir: Path) -> list[str]:
    """params.py's ``dat_path`` (a string or a list of them) as written, without running the file; [] when
    there is none or it cannot be read."""
    try:
        tree = ast.parse((ks_dir / "params.py").read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "dat_path"
                                                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            values = value if isinstance(value, list | tuple) else [value]
            return [v for v in values if isinstance(v, str) and v]
    return []


def find_raw_file(ks_dir: Path, written: str) -> tuple[Path | None, list[str]]:
    """The raw recording Bombcell named ``written`` (its ``raw_data_file``, as written on the machine it ran on),
    found on this one: as written, then by file name in the Kilosort folder, then beside each of params.py's
    ``dat_path`` (relative ones from the Kilosort folder). (path or None, every place tried)."""
    tried: list[str] = []

    def seen(candidate: Path) -> bool:
        tried.append(str(candidate))
        try:
            return candidate.is_file()
        except OSError:
            return False

    if seen(Path(written)):
        return Path(written), tried
    name = foreign_name(written)
    if not name:
        return None, tried
    folders = [ks_dir]
    for dat in dat_paths(ks_dir):
        pure = PureWindowsPath(dat) if _windows_shaped(dat) else PurePosixPath(dat)
        folder = Path(os.path.normpath(pure.parent if pure.is_absolute() else ks_dir.joinpath(*pure.parent.parts)))
        if folder not in folders and folder.is_dir():   # a Windows folder on POSIX never is
            folders.append(folder)
    for folder in folders:
        if seen(folder / name):
            return folder / name, tried
    return None, tried


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
        counts = np.zeros(0, dtype=np.int64)
        # linear, as this runs on Phy's start-up, and by slices: the int64 copy bincount counts stays in the
        # CPU's cache (a third faster than all at once) and takes a few MB, not 8 bytes a spike
        for start in range(0, len(spikes), SPIKES_AT_ONCE):
            part = np.bincount(spikes[start:start + SPIKES_AT_ONCE].astype(np.int64, copy=False))
            if len(part) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(part) - len(counts), dtype=np.int64)])
            counts[:len(part)] += part
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    except Exception as exc:
        notes.append(f"{path}: cannot read ({first_line(exc)}); cluster ids not checked against it")
        return None
    return path, ids, counts
