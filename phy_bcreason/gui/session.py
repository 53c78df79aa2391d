"""A Phy session's Bombcell explanation, without Qt: which explanation is shown (the run's, or the what-if edits'),
kept true through merges and splits. The other jobs are in their own rooms: the columns (`columns.py`), the rows
recomputed live (`live_rows.py`), the judges (`judgement.py`), the sentences (`status.py`) and the child process
(`child.py`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import Explanation
from ..core.judge import explain
from ..io.find import find_bombcell_dir, load_results
from ..io.results import BombcellResults, BombcellResultsError
from ..live.process import MetricsProcess
from ..tuning.whatif import describe_overrides, label_changes, same_value, save_parameters
from . import status
from .child import Child
from .columns import (  # noqa: F401  (the session's names, as tests and scripts import them)
    COLUMNS,
    COMPUTING_LABEL,
    FROM_LIVE,
    FROM_RUN,
    NO_ROW_LABEL,
    REPLACED_METADATA,
    ColumnCache,
    without_row,
)
from .judgement import Judgement
from .live_rows import LiveRows, LiveUpdate

logger = logging.getLogger("phy_bcreason")


class LiveReasons:
    """Bombcell's explanation for a Phy session; never raises on load (see ``error``)."""

    def __init__(self, explanation: Explanation | None = None, error: str | None = None,
                 results: BombcellResults | None = None, ks_dir: str | Path | None = None):
        self.ks_dir = Path(ks_dir) if ks_dir is not None else (results.folder.parent if results else None)
        self.explanation = explanation  # what the columns and the dock show (with what-if edits, if any)
        self.saved = explanation        # at the parameters Bombcell ran with
        self.overrides: dict = {}
        self.results = results
        self.error = error
        self.rows = LiveRows()
        self.cache = ColumnCache()
        self.judgement = Judgement()
        self.child = Child(self.ks_dir, results)
        self._refresh_columns()

    # the rows recomputed live, by their old names (tests and scripts read them)
    origins = property(lambda self: self.rows.origins)
    live_metrics = property(lambda self: self.rows.live_metrics)
    live_spikes = property(lambda self: self.rows.live_spikes)
    pending = property(lambda self: self.rows.pending)
    failed = property(lambda self: self.rows.failed)
    live_info = property(lambda self: self.rows.live_info)
    process = property(lambda self: self.child.process)
    _judged = property(lambda self: self.judgement.judged)

    @classmethod
    def load(cls, ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> LiveReasons:
        try:
            results = load_results(find_bombcell_dir(ks_dir, bombcell_dir), ks_dir=ks_dir)
            return cls(explain(results, check=False), results=results, ks_dir=ks_dir)
        except BombcellResultsError as exc:
            return cls(error=str(exc))
        except Exception:  # never let bad results break Phy
            logger.debug("phy-bcreason: could not explain the Bombcell results of %s", ks_dir, exc_info=True)
            return cls(error=f"{ks_dir}: the Bombcell results could not be explained; Phy works as usual "
                             "(details in phy.log at debug level; please report)")

    def _refresh_columns(self, cluster_ids=None) -> None:
        self.cache.refresh(self.explanation, self.live_spikes, cluster_ids)

    def status_line(self, cluster_ids=None) -> str:
        """``cluster_ids``: the clusters that exist in Phy now (every row of the explanation if None)."""
        return status.status_line(self, cluster_ids)

    def live_status(self, cluster_ids, existing=None) -> str:
        return status.live_status(self, cluster_ids, existing)

    def source_line(self, cluster_id: int) -> str | None:
        return status.source_line(self, cluster_id)

    def why_no_row(self, cluster_id: int) -> str:
        return status.why_no_row(self, cluster_id)

    def notes(self) -> list[str]:
        """What the loader and the engine worked around (the CLI prints them as 'note: ...')."""
        notes = list(self.saved.notes) if self.saved is not None else []
        if self.live_info is not None and self.live_spikes:
            notes += self.live_info.notes
        return notes

    # -- the judges ---------------------------------------------------------------------------------------

    def apply_judgement(self, judged) -> list[int]:
        """Apply Bombcell's own labels for the saved parameters (computed off the GUI thread); returns the
        cluster ids that changed."""
        judged = np.asarray(judged, dtype=object)
        self.judgement.record(dict(zip(self.saved.cluster_ids[: len(judged)].tolist(), judged.tolist())))
        before = self.saved.labels.copy()
        self.judgement.apply(self.saved, self.results)
        if not self.overrides:
            self._refresh_columns()
        return [int(c) for c in self.saved.cluster_ids[before != self.saved.labels]]

    # -- clusters Bombcell never saw: their metrics are recomputed live --------------------------------------

    def all_results(self, live_metrics: pd.DataFrame | None = None) -> BombcellResults:
        """Bombcell's rows followed by the rows recomputed live."""
        return self.rows.all_results(self.results, live_metrics)

    def to_compute(self, cluster_ids) -> list[int]:
        return self.rows.to_compute(self.results, cluster_ids, self.has_row)

    def start_computing(self, spikes: dict[int, np.ndarray]) -> None:
        self.rows.start_computing(spikes)

    def compute(self, spikes: dict[int, np.ndarray], overrides: dict) -> LiveUpdate:
        """Off the GUI thread: see `LiveRows.compute`."""
        return self.rows.compute(self.start_process, self.results, spikes, overrides)

    def start_process(self) -> MetricsProcess:
        """The process computing live metrics (started at most once; never from the GUI thread)."""
        return self.child.get()

    def close(self) -> None:
        self.child.close()

    def add_live(self, update: LiveUpdate) -> list[int]:
        """On the GUI thread: take in what `compute` returned. Returns the cluster ids whose columns changed."""
        if not self.rows.take(update):
            return update.cluster_ids
        self.judgement.record(update.judged)
        self.saved = update.saved
        self.judgement.apply(self.saved, self.results)
        if not self.overrides:
            self.explanation = self.saved
        elif self.overrides == update.overrides:
            self.explanation = update.what_if
        else:  # edited while the worker computed: explain again with the edits of now
            self.explanation = explain(self.all_results(), overrides=self.overrides, check=False)
            self._refresh_columns()
            return list(self.cache.columns)
        # Each unit is explained on its own: only the new rows change.
        self._refresh_columns(update.cluster_ids)
        return update.cluster_ids

    def record_clustering(self, descendants) -> list[int]:
        return self.rows.record_clustering(descendants, self.has_row)

    # -- what-if edits ----------------------------------------------------------------------------------------

    def set_overrides(self, overrides: dict) -> list[int]:
        """Re-explain every cluster with edited thresholds or switches ({} restores the saved run).

        Returns the cluster ids whose column values changed.
        """
        if self.results is None:
            return []
        before = self.cache.columns
        self.overrides = dict(overrides)
        self.explanation = explain(self.all_results(), overrides=self.overrides, check=False) if overrides \
            else self.saved
        self._refresh_columns()
        return [c for c, values in self.cache.columns.items() if before.get(c) != values]

    def whatif_line(self) -> str | None:
        """'what-if: maxRPVviolations 0.1 -> 0.2: 3 MUA -> GOOD' while edits are active."""
        if not self.overrides:
            return None
        changes, _ = label_changes(self.saved, self.explanation)
        return f"what-if: {describe_overrides(self.saved.params, self.overrides)}: {changes}"

    def changed_clusters(self) -> list[int]:
        return label_changes(self.saved, self.explanation)[1] if self.overrides else []

    def overrides_from(self, path: str | Path) -> dict:
        """Another run's parameters (its parameter parquet or CSV, the dock's Save… output, SpikeInterface's
        thresholds JSON) as what-if edits: the thresholds and switches the rules read that differ from this run's."""
        from ..core.backfill import repair_parameters
        from ..io.params import read_param_file
        from ..tuning.whatif import editable

        thresholds, switches = editable(self.results)
        other, _ = repair_parameters(read_param_file(Path(path)), switches, thresholds)
        saved = self.saved.params
        return {name: other[name] for name in (*thresholds, *switches)
                if name in other and not same_value(other[name], saved.get(name))}

    def save_overrides(self) -> Path:
        return save_parameters(self.results.folder, self.results.params, self.overrides, self.results.thresholds)

    def has_row(self, cluster_id: int) -> bool:
        return self.saved is not None and int(cluster_id) in self.saved.rows

    def row(self, cluster_id: int) -> int:
        return self.saved.row_of(cluster_id)

    def column_values(self, cluster_id: int) -> dict:
        """The plugin's columns for one cluster (NaN numbers where there is nothing to show)."""
        values = self.cache.get(cluster_id)
        if values is None:
            return without_row(int(cluster_id) in self.pending, self.why_no_row(cluster_id))
        return values

    def agrees(self, cluster_id: int, group) -> float | None:
        """bc_agrees: see `ColumnCache.agrees`."""
        return self.cache.agrees(self.explanation, cluster_id, group)
