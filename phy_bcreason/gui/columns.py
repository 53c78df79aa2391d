"""The plugin's cluster-view columns as plain values, without Qt: the bc_ columns of every cluster, built once per
explanation (Phy asks for every column of every cluster at start-up), and Bombcell's per-metric columns, which
show a merged or split cluster's live values instead of a parent's."""

from __future__ import annotations

import math

from ..live.metrics import MATLAB_TSV_NAMES, NOT_METRICS

COLUMNS = ("bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin", "bc_source", "bc_flag")
# Static files Bombcell (or an earlier export) leaves in the Kilosort folder whose columns these replace.
REPLACED_METADATA = ("bc_unitType", "bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin", "bc_flag")
AGREES = "bc_agrees"  # 1 where your Phy group agrees with Bombcell's label, 0 where not, empty elsewhere
NO_ROW_LABEL = "(no row)"
COMPUTING_LABEL = "(computing)"
# bc_source: where a cluster's metrics come from
FROM_RUN, FROM_LIVE = "bombcell", "live"


class ColumnCache:
    """The bc_ columns per cluster id, from plain dicts: rebuilt for every cluster when the explanation changes,
    for the new rows only when clusters are recomputed live."""

    def __init__(self):
        self.columns: dict[int, dict] = {}
        self._groups, self._groups_of = None, None  # Bombcell's Phy group per row, for bc_agrees

    def refresh(self, explanation, live_ids, cluster_ids=None) -> None:
        """``live_ids``: the clusters whose metrics were recomputed live (bc_source)."""
        if explanation is None:
            return
        rows = slice(None) if cluster_ids is None else [explanation.rows[int(c)] for c in cluster_ids]
        margins = [rounded_margin(m) for m in explanation.flip_margins[rows].tolist()]
        flags = [f"rules: {ours or '(empty)'}" if flagged else "" for ours, flagged in
                 zip(explanation.rule_labels[rows].tolist(), explanation.flagged[rows].tolist())]
        columns = {
            cluster_id: {"bc_label": label, "bc_classificationReason": reason, "bc_nFailed": n, "bc_margin": margin,
                         "bc_source": FROM_LIVE if cluster_id in live_ids else FROM_RUN, "bc_flag": flag}
            for cluster_id, label, reason, n, margin, flag in zip(
                explanation.cluster_ids[rows].tolist(), explanation.labels[rows].tolist(),
                explanation.reasons[rows].tolist(), explanation.n_decisive[rows].tolist(), margins, flags)
        }
        self.columns = columns if cluster_ids is None else {**self.columns, **columns}

    def get(self, cluster_id: int) -> dict | None:
        return self.columns.get(int(cluster_id))

    def agrees(self, explanation, cluster_id: int, group) -> float | None:
        """bc_agrees: 1 where the user's Phy group agrees with Bombcell's label, 0 where not, None (an empty cell:
        Phy's table shows None as nothing and sorts it above every value, NaN as "nan" in no order) where the
        cluster is not labelled good/mua/noise or has no Bombcell label."""
        from ..tuning.concordance import PHY_GROUPS, bombcell_groups

        row = explanation.rows.get(int(cluster_id)) if explanation is not None else None
        if row is None or group not in PHY_GROUPS or explanation.undetermined[row]:
            return None
        if self._groups_of is not explanation:  # once per explanation (what-if edits make a new one)
            self._groups, self._groups_of = bombcell_groups(explanation), explanation
        return float(self._groups[row] == group) if self._groups[row] else None


def rounded_margin(margin: float) -> float:
    """bc_margin: three decimals, more where a margin is smaller (a margin of 0.0004 read 0, and -0.0004 read -0,
    in Phy's table); NaN where there is none."""
    if not math.isfinite(margin):
        return math.nan
    if margin == 0:
        return 0.0
    return round(margin, max(3, 2 - math.floor(math.log10(abs(margin)))))


def without_row(computing: bool, why: str) -> dict:
    """The bc_ columns of a cluster without a row (NaN numbers where there is nothing to show)."""
    return {"bc_label": COMPUTING_LABEL if computing else NO_ROW_LABEL, "bc_classificationReason": why,
            "bc_nFailed": math.nan, "bc_margin": math.nan, "bc_source": FROM_LIVE if computing else "",
            "bc_flag": ""}


class MetricColumns:
    """Bombcell's per-metric columns, which Phy would otherwise read from the cluster_<metric>.tsv files and
    copy, on a merge, from the largest parent: the run's value (the file's) for clusters of Bombcell's run, the
    value recomputed live for clusters made in Phy, blank (None) while computing, where the metric is not
    recomputed live, and for clusters without a row. The files are never written."""

    def __init__(self, live, metadata: dict):
        self.live = live
        self.metrics: dict[str, str] = {}     # column name -> Bombcell's metric name
        self.run: dict[str, dict] = {}        # column name -> {cluster id: the run's value}
        self._live_rows: dict[int, dict] = {}
        self._live_table = None
        if live.results is None:  # nothing to contradict: Phy shows the files as they are
            return
        known = set(live.results.metrics.columns) - set(NOT_METRICS)
        for name in list(metadata):
            metric = name if name in known else MATLAB_TSV_NAMES.get(name)
            if metric in known and name not in REPLACED_METADATA:
                self.metrics[name] = metric
                self.run[name] = metadata.pop(name)

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    def value(self, name: str, cluster_id: int):
        cluster_id = int(cluster_id)
        live = self.live
        if cluster_id in live.live_spikes:
            value = self._live_row(cluster_id).get(self.metrics[name])
            return None if value is None or value != value else value  # NaN: not recomputed
        if cluster_id in live.pending or cluster_id in live.failed or not live.has_row(cluster_id):
            return None
        return self.run[name].get(cluster_id)

    def row(self, cluster_id: int) -> dict:
        return {name: self.value(name, cluster_id) for name in self.metrics}

    def _live_row(self, cluster_id: int) -> dict:
        table = self.live.live_metrics
        if table is not self._live_table:
            self._live_table = table
            self._live_rows = {int(row["phy_clusterID"]): row for row in table.to_dict("records")}
        return self._live_rows.get(cluster_id, {})


