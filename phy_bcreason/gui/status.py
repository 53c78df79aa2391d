"""The sentences the plugin shows about a session, without Qt: the status bar's line, a cluster's origin and
why a cluster has no row."""

from __future__ import annotations

import pandas as pd

from ..core.errors import listed
from ..core.rules import MATLAB, PYTHON, SPIKEINTERFACE

CLASSIFIER_NAMES = {PYTHON: "Python", MATLAB: "MATLAB", SPIKEINTERFACE: "SpikeInterface's"}
# Why clusters made in Phy are not recomputed live for these classifiers (Python Bombcell's are).
NOT_RECOMPUTED = {
    MATLAB: "MATLAB Bombcell computes its metrics in MATLAB, so they are not recomputed here: re-run MATLAB "
            "Bombcell on the curated folder to label it",
    SPIKEINTERFACE: "SpikeInterface computed these metrics from its SortingAnalyzer, so they are not recomputed "
                    "here: re-run bombcell.run_bombcell_qc on the curated sorting to label it",
}

# What the dock cannot show for these classifiers' results, and why: one line where the pictures would be.
NOT_AVAILABLE = {
    MATLAB: "Not available for MATLAB Bombcell results: pictures of what Bombcell measured, and labels for merged or "
            "split clusters (both need Python Bombcell's metric functions; MATLAB Bombcell computed its metrics in "
            "MATLAB).",
    SPIKEINTERFACE: "Not available for SpikeInterface's Bombcell results: pictures of what Bombcell measured, and "
                    "labels for merged or split clusters (both need Python Bombcell's metric functions; "
                    "SpikeInterface computed its metrics from its SortingAnalyzer).",
}


def counts(live, cluster_ids=None) -> str:
    """'8 GOOD, 7 NOISE, 6 MUA, 4 NON-SOMA; 1 recomputed live': the bc_label column of these clusters (the ones
    that exist in Phy now; every row of the explanation if None), counted, and how many were recomputed live."""
    if cluster_ids is None:
        cluster_ids = live.explanation.cluster_ids
    cluster_ids = [int(c) for c in cluster_ids]
    labels = pd.Series([live.column_values(c)["bc_label"] for c in cluster_ids], dtype=object)
    summary = ", ".join(f"{n} {label}" for label, n in labels.replace("", "(empty)").value_counts().items())
    recomputed = sum(c in live.live_spikes for c in cluster_ids)
    return summary + (f"; {recomputed} recomputed live" if recomputed else "")

def status_line(live, cluster_ids=None) -> str:
    """The status bar's line: who labelled, from where, and the labels of ``cluster_ids`` (Phy's clusters of now:
    a cluster merged away is no longer counted, one recomputed live is)."""
    if live.explanation is None:
        return f"phy-bcreason: {live.error}"
    if live.overrides:
        return f"phy-bcreason: {live.whatif_line()}"
    ids = live.explanation.cluster_ids if cluster_ids is None else cluster_ids
    notes = live.notes()
    more = f" ({len(notes)} note{'s' if len(notes) > 1 else ''}: see the why? dock)" if notes else ""
    flagged = sum(bool(live.column_values(c)["bc_flag"]) for c in ids)
    flags = f"; {flagged} flagged (bc_flag): the rules give another label than Bombcell's" if flagged else ""
    who = CLASSIFIER_NAMES[live.explanation.classifier]
    return f"phy-bcreason: {who} Bombcell labels from {live.explanation.source}: {counts(live, ids)}{flags}{more}"


def live_status(live, cluster_ids, existing=None) -> str:
    """Status-bar line once clusters were recomputed live: what they got, then the counts of ``existing``."""
    cluster_ids = [int(c) for c in cluster_ids]
    failed = [c for c in cluster_ids if c in live.failed]
    if failed:
        return f"phy-bcreason: could not recompute cluster {', '.join(map(str, failed))} live: " \
               f"{live.failed[failed[0]]}"
    shown = listed((f"{c} {live.column_values(c)['bc_label'] or '(empty)'}" for c in cluster_ids), 5)
    return f"phy-bcreason: recomputed live from Bombcell's metrics: cluster {shown}; now {counts(live, existing)}"


def source_line(live, cluster_id: int) -> str | None:
    """For a cluster recomputed live: what was computed, from what, and what was not."""
    cluster_id = int(cluster_id)
    if cluster_id not in live.live_spikes or live.live_info is None:
        return None
    parents = live.origins.get(cluster_id)
    made = f"made in Phy from cluster(s) {', '.join(map(str, parents))}" if parents else \
        "not in Bombcell's run"
    parts = [f"Recomputed live: {made}; Bombcell's metric functions on its {live.live_spikes[cluster_id]:,.0f} "
             "spikes and the mean of its Kilosort templates, as Bombcell does for a curated folder."]
    parts += [f"{caveat[0].upper()}{caveat[1:]}." for caveat in live.live_info.caveats()]
    return " ".join(parts)


def why_no_row(live, cluster_id: int) -> str:
    if live.explanation is None:
        return f"no Bombcell results: {live.error}"
    cluster_id = int(cluster_id)
    parents = live.origins.get(cluster_id)
    origin = f"new in this session, from cluster(s) {', '.join(map(str, parents))}" if parents else \
        "not in Bombcell's run"
    if cluster_id in live.pending:
        return f"computing Bombcell's metrics from {live.pending[cluster_id]:,} spikes…"
    if cluster_id in live.failed:
        return f"no Bombcell row ({origin}); could not recompute live: {live.failed[cluster_id]}"
    if parents and live.results is not None and live.results.classifier in NOT_RECOMPUTED:
        return f"no Bombcell row: {origin}; {NOT_RECOMPUTED[live.results.classifier]}"
    if parents:
        return f"no Bombcell row: {origin}; Bombcell did not label it"
    return "no Bombcell row for this cluster id"
