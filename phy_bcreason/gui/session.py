"""What the plugin shows, without Qt: column values per cluster, including clusters Bombcell never saw
(merged or split in Phy), whose metrics are recomputed live (`live_metrics.py`) and explained by the same
engine."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import Explanation
from ..core.errors import first_line, listed
from ..core.judge import apply_judgement, explain
from ..core.rules import MATLAB, PYTHON, SPIKEINTERFACE
from ..io.find import find_bombcell_dir, load_results
from ..io.results import BombcellResults, BombcellResultsError
from ..live.metrics import LiveInfo, LiveMetricsError, MetricsProcess, append_rows
from ..tuning.whatif import describe_overrides, label_changes, same_value, save_parameters

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


COLUMNS = ("bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin", "bc_source", "bc_flag")
# Static files Bombcell (or an earlier export) leaves in the Kilosort folder whose columns these replace.
REPLACED_METADATA = ("bc_unitType", "bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin", "bc_flag")
NO_ROW_LABEL = "(no row)"
COMPUTING_LABEL = "(computing)"
CLASSIFIER_NAMES = {PYTHON: "Python", MATLAB: "MATLAB", SPIKEINTERFACE: "SpikeInterface's"}
# Why clusters made in Phy are not recomputed live for these classifiers (Python Bombcell's are).
NOT_RECOMPUTED = {
    MATLAB: "MATLAB Bombcell computes its metrics in MATLAB, so they are not recomputed here: re-run MATLAB "
            "Bombcell on the curated folder to label it",
    SPIKEINTERFACE: "SpikeInterface computed these metrics from its SortingAnalyzer, so they are not recomputed "
                    "here: re-run bombcell.run_bombcell_qc on the curated sorting to label it",
}
# bc_source: where a cluster's metrics come from
FROM_RUN, FROM_LIVE = "bombcell", "live"


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
        self.origins: dict[int, tuple[int, ...]] = {}  # new cluster id -> Bombcell clusters it came from
        self.live_metrics: pd.DataFrame | None = None   # rows recomputed live for clusters Bombcell never saw
        self.live_spikes: dict[int, int] = {}            # cluster id -> its spike count, live rows only
        self.pending: dict[int, int] = {}                # cluster id -> spike count, being computed
        self.failed: dict[int, str] = {}                 # cluster id -> why it could not be recomputed
        self.live_info: LiveInfo | None = None           # what the live computation rebuilt and left out
        self.process: MetricsProcess | None = None       # computes the live metrics
        self._computed: pd.DataFrame | None = None       # the worker's copy of live_metrics
        self._judged: dict[int, str] = {}                # Bombcell's own label per cluster id, where known
        self._columns: dict[int, dict] = {}
        self._groups, self._groups_of = None, None  # Bombcell's Phy group per row, for bc_agrees
        self._refresh_columns()

    def _refresh_columns(self, cluster_ids=None) -> None:
        """Phy asks for every column of every cluster at start-up: answer from plain dicts, built once (for
        ``cluster_ids`` only, when just those changed)."""
        explanation = self.explanation
        if explanation is None:
            return
        rows = slice(None) if cluster_ids is None else [explanation.rows[int(c)] for c in cluster_ids]
        margins = [round(m, 3) if math.isfinite(m) else math.nan for m in explanation.flip_margins[rows].tolist()]
        flags = [f"rules: {ours or '(empty)'}" if flagged else "" for ours, flagged in
                 zip(explanation.rule_labels[rows].tolist(), explanation.flagged[rows].tolist())]
        columns = {
            cluster_id: {"bc_label": label, "bc_classificationReason": reason, "bc_nFailed": n, "bc_margin": margin,
                         "bc_source": FROM_LIVE if cluster_id in self.live_spikes else FROM_RUN, "bc_flag": flag}
            for cluster_id, label, reason, n, margin, flag in zip(
                explanation.cluster_ids[rows].tolist(), explanation.labels[rows].tolist(),
                explanation.reasons[rows].tolist(), explanation.n_decisive[rows].tolist(), margins, flags)
        }
        self._columns = columns if cluster_ids is None else {**self._columns, **columns}

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

    def status_line(self) -> str:
        if self.explanation is None:
            return f"phy-bcreason: {self.error}"
        if self.overrides:
            return f"phy-bcreason: {self.whatif_line()}"
        run_labels = self.explanation.labels[: len(self.results.cluster_ids)]  # Bombcell's own rows
        counts = pd.Series(run_labels).replace("", "(empty)").value_counts()
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        notes = self.notes()
        more = f" ({len(notes)} note{'s' if len(notes) > 1 else ''}: see the why? dock)" if notes else ""
        live = f"; {len(self.live_spikes)} recomputed live" if self.live_spikes else ""
        flagged = int(self.explanation.flagged.sum())
        flags = f"; {flagged} flagged (bc_flag): the rules give another label than Bombcell's" if flagged else ""
        who = CLASSIFIER_NAMES[self.explanation.classifier]
        return f"phy-bcreason: {who} Bombcell labels from {self.explanation.source}: {summary}{live}{flags}{more}"

    def notes(self) -> list[str]:
        """What the loader and the engine worked around (the CLI prints them as 'note: ...')."""
        notes = list(self.saved.notes) if self.saved is not None else []
        if self.live_info is not None and self.live_spikes:
            notes += self.live_info.notes
        return notes

    def apply_judgement(self, judged) -> list[int]:
        """Apply Bombcell's own labels for the saved parameters (computed off the GUI thread); returns the
        cluster ids that changed."""
        judged = np.asarray(judged, dtype=object)
        self._judged.update(zip(self.saved.cluster_ids[: len(judged)].tolist(), judged.tolist()))
        before = self.saved.labels.copy()
        self._judge()
        if not self.overrides:
            self._refresh_columns()
        return [int(c) for c in self.saved.cluster_ids[before != self.saved.labels]]

    def _judge(self) -> None:
        """Bombcell's installed classifier's labels where known, then the saved ones, judge ``saved``."""
        ids = self.saved.cluster_ids.tolist()
        judged = np.array([self._judged.get(c, label) for c, label in zip(ids, self.saved.rule_labels.tolist())],
                          dtype=object) if self._judged else None
        apply_judgement(self.saved, judged, self.results.saved_labels_for(ids))

    # -- clusters Bombcell never saw: their metrics are recomputed live --------------------------------------

    def all_results(self, live_metrics: pd.DataFrame | None = None) -> BombcellResults:
        """Bombcell's rows followed by the rows recomputed live."""
        return append_rows(self.results, self.live_metrics if live_metrics is None else live_metrics)

    def to_compute(self, cluster_ids) -> list[int]:
        """Those of ``cluster_ids`` that have no row and are not being computed or known to fail. MATLAB
        Bombcell's metrics come from MATLAB code (other names, other conventions): none are recomputed here."""
        if self.results is None or self.results.classifier != PYTHON:
            return []
        return [int(c) for c in cluster_ids
                if not self.has_row(c) and int(c) not in self.pending and int(c) not in self.failed]

    def start_computing(self, spikes: dict[int, np.ndarray]) -> None:
        self.pending.update({int(c): len(s) for c, s in spikes.items()})

    def compute(self, spikes: dict[int, np.ndarray], overrides: dict) -> LiveUpdate:
        """Off the GUI thread: Bombcell's metrics for these clusters ({id: spike ids}), Bombcell's own labels for
        them, and every cluster explained again (with ``overrides``, the what-if edits of the moment)."""
        update = LiveUpdate([int(c) for c in spikes], overrides=dict(overrides))
        try:
            table, update.info = self.start_process().table(spikes)
        except LiveMetricsError as exc:
            update.error = first_line(exc)
            return update
        except Exception:
            logger.debug("phy-bcreason: live metrics failed", exc_info=True)
            update.error = "Bombcell's metric functions failed on it (details in phy.log at debug level)"
            return update
        try:
            if self.results.classifier == PYTHON:  # Bombcell's classifier, in the child: never imported here
                update.judged = dict(zip(update.cluster_ids, self.start_process().labels(table)))
        except Exception:
            pass  # the rule table's labels stand, as for Bombcell's own rows when the classifier cannot run
        # Jobs run one at a time on the worker: this table is the worker's, the GUI thread adopts a copy.
        self._computed = table if self._computed is None else pd.concat([self._computed, table], ignore_index=True)
        update.live_metrics = self._computed
        results = self.all_results(self._computed)
        update.saved = explain(results, check=False)
        update.what_if = explain(results, overrides=overrides, check=False) if overrides else None
        for explanation in (update.saved, update.what_if):
            if explanation is not None:
                explanation.rows  # noqa: B018  (build the id -> row map here, not on the GUI thread)
        return update

    def start_process(self) -> MetricsProcess:
        """The process computing live metrics (started at most once; from the worker thread)."""
        if self.process is None:
            self.process = MetricsProcess(self.ks_dir, self.results.folder)
        return self.process

    def close(self) -> None:
        if self.process is not None:
            self.process.close()

    def add_live(self, update: LiveUpdate) -> list[int]:
        """On the GUI thread: take in what `compute` returned. Returns the cluster ids whose columns changed."""
        for cluster_id in update.cluster_ids:
            self.pending.pop(cluster_id, None)
        if update.error is not None:
            self.failed.update(dict.fromkeys(update.cluster_ids, update.error))
            return update.cluster_ids
        self.live_metrics, self.live_info = update.live_metrics, update.info
        self.live_spikes.update(zip(update.live_metrics["phy_clusterID"].astype(int).tolist(),
                                    update.live_metrics["nSpikes"].tolist()))
        self._judged.update(update.judged)
        self.saved = update.saved
        self._judge()
        if not self.overrides:
            self.explanation = self.saved
        elif self.overrides == update.overrides:
            self.explanation = update.what_if
        else:  # edited while the worker computed: explain again with the edits of now
            self.explanation = explain(self.all_results(), overrides=self.overrides, check=False)
            self._refresh_columns()
            return list(self._columns)
        # Each unit is explained on its own: only the new rows change.
        self._refresh_columns(update.cluster_ids)
        return update.cluster_ids

    def live_status(self, cluster_ids) -> str:
        """Status-bar line once clusters were recomputed live."""
        cluster_ids = [int(c) for c in cluster_ids]
        failed = [c for c in cluster_ids if c in self.failed]
        if failed:
            return f"phy-bcreason: could not recompute cluster {', '.join(map(str, failed))} live: " \
                   f"{self.failed[failed[0]]}"
        shown = listed((f"{c} {self.column_values(c)['bc_label'] or '(empty)'}" for c in cluster_ids), 5)
        return f"phy-bcreason: recomputed live from Bombcell's metrics: cluster {shown}"

    def source_line(self, cluster_id: int) -> str | None:
        """For a cluster recomputed live: what was computed, from what, and what was not."""
        cluster_id = int(cluster_id)
        if cluster_id not in self.live_spikes or self.live_info is None:
            return None
        parents = self.origins.get(cluster_id)
        made = f"made in Phy from cluster(s) {', '.join(map(str, parents))}" if parents else \
            "not in Bombcell's run"
        parts = [f"Recomputed live: {made}; Bombcell's metric functions on its {self.live_spikes[cluster_id]:,.0f} "
                 "spikes and the mean of its Kilosort templates, as Bombcell does for a curated folder."]
        parts += [f"{caveat[0].upper()}{caveat[1:]}." for caveat in self.live_info.caveats()]
        return " ".join(parts)

    def set_overrides(self, overrides: dict) -> list[int]:
        """Re-explain every cluster with edited thresholds or switches ({} restores the saved run).

        Returns the cluster ids whose column values changed.
        """
        if self.results is None:
            return []
        before = self._columns
        self.overrides = dict(overrides)
        self.explanation = explain(self.all_results(), overrides=self.overrides, check=False) if overrides \
            else self.saved
        self._refresh_columns()
        return [c for c, values in self._columns.items() if before.get(c) != values]

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
        from ..batch.audit import read_param_file
        from ..core.backfill import repair_parameters
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
        values = self._columns.get(int(cluster_id))
        if values is None:
            computing = int(cluster_id) in self.pending
            return {"bc_label": COMPUTING_LABEL if computing else NO_ROW_LABEL,
                    "bc_classificationReason": self.why_no_row(cluster_id), "bc_nFailed": math.nan,
                    "bc_margin": math.nan, "bc_source": FROM_LIVE if computing else "", "bc_flag": ""}
        return values

    def agrees(self, cluster_id: int, group) -> float:
        """bc_agrees: 1 where the user's Phy group agrees with Bombcell's label, 0 where not, NaN where the
        cluster is not labelled good/mua/noise or has no Bombcell label."""
        from ..tuning.concordance import PHY_GROUPS, bombcell_groups

        row = self.explanation.rows.get(int(cluster_id)) if self.explanation is not None else None
        if row is None or group not in PHY_GROUPS or self.explanation.undetermined[row]:
            return math.nan
        if self._groups_of is not self.explanation:  # once per explanation (what-if edits make a new one)
            self._groups, self._groups_of = bombcell_groups(self.explanation), self.explanation
        return float(self._groups[row] == group) if self._groups[row] else math.nan

    def why_no_row(self, cluster_id: int) -> str:
        if self.explanation is None:
            return f"no Bombcell results: {self.error}"
        cluster_id = int(cluster_id)
        parents = self.origins.get(cluster_id)
        origin = f"new in this session, from cluster(s) {', '.join(map(str, parents))}" if parents else \
            "not in Bombcell's run"
        if cluster_id in self.pending:
            return f"computing Bombcell's metrics from {self.pending[cluster_id]:,} spikes…"
        if cluster_id in self.failed:
            return f"no Bombcell row ({origin}); could not recompute live: {self.failed[cluster_id]}"
        if parents and self.results is not None and self.results.classifier in NOT_RECOMPUTED:
            return f"no Bombcell row: {origin}; {NOT_RECOMPUTED[self.results.classifier]}"
        if parents:
            return f"no Bombcell row: {origin}; Bombcell did not label it"
        return "no Bombcell row for this cluster id"

    def record_clustering(self, descendants) -> list[int]:
        """Remember, for clusters created by a merge or split, the Bombcell clusters they came from.

        ``descendants`` are Phy's (old id, new id) pairs. Returns the new ids.
        """
        new_ids = []
        for old, new in descendants:
            old, new = int(old), int(new)
            sources = (old,) if self.has_row(old) else self.origins.get(old, ())
            self.origins[new] = tuple(sorted(set(self.origins.get(new, ())) | set(sources)))
            new_ids.append(new)
        return sorted(set(new_ids))

