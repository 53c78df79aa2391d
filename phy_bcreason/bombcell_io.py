"""Find and read a Bombcell results folder next to a Kilosort output; map its rows to Phy cluster ids.

Reads only the parquet tables, never the pickles in `for_GUI/`. Every failure is a `BombcellResultsError`
whose message names the file and what is wrong with it, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

METRICS_FILE = "templates._bc_qMetrics.parquet"
PARAMS_FILE = "_bc_parameters._bc_qMetrics.parquet"
CONVENTIONAL_DIRS = ("bombcell", "qMetrics")


class BombcellResultsError(Exception):
    """Bombcell results that cannot be found or read; the message is one line for the user."""


@dataclass
class BombcellResults:
    folder: Path
    params: dict
    metrics: pd.DataFrame
    cluster_ids: np.ndarray
    notes: list[str] = field(default_factory=list)


def find_bombcell_dir(ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> Path:
    """The Bombcell folder for ``ks_dir``: the explicit one, else `bombcell/`, `qMetrics/`, then any direct
    subfolder holding the metrics table."""
    if bombcell_dir is not None:
        folder = Path(bombcell_dir)
        if not (folder / METRICS_FILE).is_file():
            raise BombcellResultsError(f"{folder / METRICS_FILE}: file not found")
        return folder
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise BombcellResultsError(f"{ks_dir}: not a folder")
    candidates = [ks_dir / name for name in CONVENTIONAL_DIRS]
    candidates += sorted(p for p in ks_dir.iterdir() if p.is_dir() and p not in candidates)
    for folder in candidates:
        if (folder / METRICS_FILE).is_file():
            return folder
    raise BombcellResultsError(
        f"{ks_dir}: no Bombcell results ({METRICS_FILE}) in bombcell/, qMetrics/ or any subfolder"
    )


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BombcellResultsError(f"{path}: file not found")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for truncated or foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BombcellResultsError(f"{path}: cannot read as parquet ({reason})") from None


def load_results(folder: str | Path) -> BombcellResults:
    """Parameters (one row) and metrics (one row per unit) of a Bombcell run, with each row's Phy id."""
    folder = Path(folder)
    metrics = _read_parquet(folder / METRICS_FILE)
    params_table = _read_parquet(folder / PARAMS_FILE)
    if len(params_table) == 0:
        raise BombcellResultsError(f"{folder / PARAMS_FILE}: the parameter table has no row")
    params = params_table.iloc[0].to_dict()
    notes = []
    if "phy_clusterID" in metrics.columns:
        ids = pd.to_numeric(metrics["phy_clusterID"], errors="coerce").to_numpy(dtype=float)
        if np.isnan(ids).any():
            raise BombcellResultsError(f"{folder / METRICS_FILE}: phy_clusterID has empty or bad cells")
        cluster_ids = ids.astype(np.int64)
    else:
        cluster_ids = np.arange(len(metrics), dtype=np.int64)
        notes.append(f"{folder / METRICS_FILE} has no phy_clusterID column: row i is taken as cluster i")
    return BombcellResults(folder, params, metrics.reset_index(drop=True), cluster_ids, notes)
