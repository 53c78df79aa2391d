"""Find a Kilosort folder's results and read them with the loader of whoever wrote them.

`find_bombcell_dir` finds the results folder next to a Kilosort output; `load_results` tells a Bombcell run
(its metrics table: `bombcell.py`, Python or MATLAB) from a SpikeInterface one (its wide labelling table:
`spikeinterface.py`) and calls that dialect's loader. Either way one `BombcellResults` comes out, or a one-line
`BombcellResultsError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from .bombcell import METRICS_FILE, load_bombcell_results
from .results import BombcellResults, BombcellResultsError
from .spikeinterface import SI_WIDE_FILE, load_spikeinterface_results

CONVENTIONAL_DIRS = ("bombcell", "qMetrics")


def holds_results(folder: Path) -> bool:
    """A native results folder (the metrics table) or SpikeInterface's (its wide labelling table)."""
    return (folder / METRICS_FILE).is_file() or (folder / SI_WIDE_FILE).is_file()


def find_bombcell_dir(ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> Path:
    """The Bombcell folder for ``ks_dir``: the explicit one, else `bombcell/`, `qMetrics/`, then any direct
    subfolder holding results; for a SpikeInterface `sorter_output/` folder, also `bombcell/` beside it."""
    if bombcell_dir is not None:
        folder = Path(bombcell_dir)
        if not holds_results(folder):
            raise BombcellResultsError(f"{folder / METRICS_FILE}: file not found (nor {SI_WIDE_FILE})")
        return folder
    ks_dir = Path(ks_dir)
    if not ks_dir.is_dir():
        raise BombcellResultsError(f"{ks_dir}: not a folder")
    candidates = [ks_dir / name for name in CONVENTIONAL_DIRS]
    candidates += sorted(p for p in ks_dir.iterdir() if p.is_dir() and p not in candidates)
    if ks_dir.name == "sorter_output":
        candidates += [ks_dir.parent / name for name in CONVENTIONAL_DIRS]
    for folder in candidates:
        if holds_results(folder):
            return folder
    beside = ", or beside this sorter_output/ folder" if ks_dir.name == "sorter_output" else ""
    raise BombcellResultsError(
        f"{ks_dir}: no Bombcell results ({METRICS_FILE}, or SpikeInterface's {SI_WIDE_FILE}) in bombcell/, "
        f"qMetrics/ or any subfolder{beside}"
    )


def load_results(folder: str | Path, ks_dir: str | Path | None = None, classifier: str | None = None
                 ) -> BombcellResults:
    """Parameters (one row) and metrics (one row per unit) of a Bombcell run, with each row's Phy id, the
    classifier that labelled it (``classifier`` forces one) and the labels it saved.

    ``ks_dir`` is the Kilosort folder the results are for (default: the Bombcell folder's parent, where
    `find_bombcell_dir` finds it); its spike_clusters.npy is compared with the results when it has one.
    Without a parameter file the results still open when Bombcell's saved labels are there. A folder with
    SpikeInterface's wide labelling table and no Bombcell metrics table is read as SpikeInterface's.
    """
    folder = Path(folder)
    ks_dir = Path(ks_dir) if ks_dir is not None else folder.parent
    if not (folder / METRICS_FILE).is_file() and (folder / SI_WIDE_FILE).is_file():
        return load_spikeinterface_results(folder, ks_dir, classifier)
    return load_bombcell_results(folder, ks_dir, classifier)
