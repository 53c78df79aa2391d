"""Clusters Bombcell never saw (merged or split in Phy): where they came from, which are being computed or
failed, and their metrics recomputed live in the child process (`live/`), without Qt."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.engine import Explanation
from ..core.errors import first_line
from ..core.judge import explain
from ..core.rules import PYTHON
from ..live.metrics import append_rows
from ..live.recording import LiveInfo, LiveMetricsError

logger = logging.getLogger("phy_bcreason")


@dataclass
class LiveUpdate:
    """What the worker hands back to the GUI thread after recomputing clusters live."""

    cluster_ids: list[int]
    overrides: dict
    error: str | None = None
    judged: dict[int, str] = field(default_factory=dict)  # Bombcell's own labels for them
    live_metrics: pd.DataFrame | None = None                # every row recomputed live so far
    saved: Explanation | None = None                        # every cluster, at the run's parameters
    what_if: Explanation | None = None                      # every cluster, with ``overrides``
    info: LiveInfo | None = None


class LiveRows:
    """The rows recomputed live and the state of each cluster made in Phy."""

    def __init__(self):
        self.origins: dict[int, tuple[int, ...]] = {}  # new cluster id -> Bombcell clusters it came from
        self.live_metrics: pd.DataFrame | None = None   # rows recomputed live for clusters Bombcell never saw
        self.live_spikes: dict[int, int] = {}            # cluster id -> its spike count, live rows only
        self.pending: dict[int, int] = {}                # cluster id -> spike count, being computed
        self.failed: dict[int, str] = {}                 # cluster id -> why it could not be recomputed
        self.live_info: LiveInfo | None = None           # what the live computation rebuilt and left out
        self._computed: pd.DataFrame | None = None       # the worker's copy of live_metrics

    def all_results(self, results, live_metrics: pd.DataFrame | None = None):
        """Bombcell's rows followed by the rows recomputed live."""
        return append_rows(results, self.live_metrics if live_metrics is None else live_metrics)

    def to_compute(self, results, cluster_ids, has_row) -> list[int]:
        """Those of ``cluster_ids`` that have no row and are not being computed or known to fail. MATLAB
        Bombcell's metrics come from MATLAB code (other names, other conventions): none are recomputed here."""
        if results is None or results.classifier != PYTHON:
            return []
        return [int(c) for c in cluster_ids
                if not has_row(c) and int(c) not in self.pending and int(c) not in self.failed]

    def start_computing(self, spikes: dict[int, np.ndarray]) -> None:
        self.pending.update({int(c): len(s) for c, s in spikes.items()})

    def compute(self, process, results, spikes: dict[int, np.ndarray], overrides: dict) -> LiveUpdate:
        """Off the GUI thread: Bombcell's metrics for these clusters ({id: spike ids}), Bombcell's own labels for
        them, and every cluster explained again (with ``overrides``, the what-if edits of the moment)."""
        update = LiveUpdate([int(c) for c in spikes], overrides=dict(overrides))
        try:
            table, update.info = process().table(spikes)
        except LiveMetricsError as exc:
            update.error = first_line(exc)
            return update
        except Exception:
            logger.debug("phy-bcreason: live metrics failed", exc_info=True)
            update.error = "Bombcell's metric functions failed on it (details in phy.log at debug level)"
            return update
        try:
            if results.classifier == PYTHON:  # Bombcell's classifier, in the child: never imported here
                update.judged = dict(zip(update.cluster_ids, process().labels(table)))
        except Exception:
            pass  # the rule table's labels stand, as for Bombcell's own rows when the classifier cannot run
        # Jobs run one at a time on the worker: this table is the worker's, the GUI thread adopts a copy.
        self._computed = table if self._computed is None else pd.concat([self._computed, table], ignore_index=True)
        update.live_metrics = self._computed
        everything = self.all_results(results, self._computed)
        update.saved = explain(everything, check=False)
        update.what_if = explain(everything, overrides=overrides, check=False) if overrides else None
        for explanation in (update.saved, update.what_if):
            if explanation is not None:
                explanation.rows  # noqa: B018  (build the id -> row map here, not on the GUI thread)
        return update

    def take(self, update: LiveUpdate) -> bool:
        """On the GUI thread: take in what `compute` returned; False if it failed."""
        for cluster_id in update.cluster_ids:
            self.pending.pop(cluster_id, None)
        if update.error is not None:
            self.failed.update(dict.fromkeys(update.cluster_ids, update.error))
            return False
        self.live_metrics, self.live_info = update.live_metrics, update.info
        self.live_spikes.update(zip(update.live_metrics["phy_clusterID"].astype(int).tolist(),
                                    update.live_metrics["nSpikes"].tolist()))
        return True

    def record_clustering(self, descendants, has_row) -> list[int]:
        """Remember, for clusters created by a merge or split, the Bombcell clusters they came from.

        ``descendants`` are Phy's (old id, new id) pairs. Returns the new ids.
        """
        new_ids = []
        for old, new in descendants:
            old, new = int(old), int(new)
            sources = (old,) if has_row(old) else self.origins.get(old, ())
            self.origins[new] = tuple(sorted(set(self.origins.get(new, ())) | set(sources)))
            new_ids.append(new)
        return sorted(set(new_ids))
