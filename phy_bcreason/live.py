"""What the plugin shows, without Qt: column values per cluster, and where clusters without a Bombcell row
came from (merges and splits of this session)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .api import apply_judgement, explain
from .bombcell_io import BombcellResults, BombcellResultsError, find_bombcell_dir, load_results
from .engine import Explanation
from .whatif import describe_overrides, label_changes, save_parameters

COLUMNS = ("bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin")
# Static files Bombcell (or an earlier export) leaves in the Kilosort folder whose columns these replace.
REPLACED_METADATA = ("bc_unitType", "bc_label", "bc_classificationReason", "bc_nFailed", "bc_margin")
NO_ROW_LABEL = "(no row)"


class LiveReasons:
    """Bombcell's explanation for a Phy session; never raises on load (see ``error``)."""

    def __init__(self, explanation: Explanation | None = None, error: str | None = None,
                 results: BombcellResults | None = None):
        self.explanation = explanation  # what the columns and the dock show (with what-if edits, if any)
        self.saved = explanation        # at the parameters Bombcell ran with
        self.overrides: dict = {}
        self.results = results
        self.error = error
        self.origins: dict[int, tuple[int, ...]] = {}  # new cluster id -> Bombcell clusters it came from
        self._columns: dict[int, dict] = {}
        self._refresh_columns()

    def _refresh_columns(self) -> None:
        """Phy asks for every column of every cluster at start-up: answer from plain dicts, built once."""
        if self.explanation is None:
            return
        table = self.explanation.table()
        margins = [round(m, 3) if math.isfinite(m) else math.nan for m in table["margin"].tolist()]
        self._columns = {
            int(cluster_id): {"bc_label": label, "bc_classificationReason": reason, "bc_nFailed": n,
                              "bc_margin": margin}
            for cluster_id, label, reason, n, margin in zip(
                table.index.tolist(), table["label"].tolist(), table["reason"].tolist(),
                table["n_decisive"].tolist(), margins)
        }

    @classmethod
    def load(cls, ks_dir: str | Path, bombcell_dir: str | Path | None = None) -> LiveReasons:
        try:
            results = load_results(find_bombcell_dir(ks_dir, bombcell_dir), ks_dir=ks_dir)
            return cls(explain(results, check=False), results=results)
        except BombcellResultsError as exc:
            return cls(error=str(exc))
        except Exception as exc:  # never let bad results break Phy
            reason = f"{type(exc).__name__}: {exc}"
            return cls(error=f"{ks_dir}: could not explain the Bombcell results ({reason})")

    def status_line(self) -> str:
        if self.explanation is None:
            return f"phy-bcreason: {self.error}"
        if self.overrides:
            return f"phy-bcreason: {self.whatif_line()}"
        counts = pd.Series(self.explanation.labels).replace("", "(empty)").value_counts()
        summary = ", ".join(f"{n} {label}" for label, n in counts.items())
        notes = self.notes()
        more = f" ({len(notes)} note{'s' if len(notes) > 1 else ''}: see the why? dock)" if notes else ""
        return f"phy-bcreason: Bombcell labels from {self.explanation.source}: {summary}{more}"

    def notes(self) -> list[str]:
        """What the loader and the engine worked around (the CLI prints them as 'note: ...')."""
        return list(self.saved.notes) if self.saved is not None else []

    def apply_judgement(self, judged) -> list[int]:
        """Apply Bombcell's own labels for the saved parameters (computed off the GUI thread); returns the
        cluster ids that changed."""
        rows = apply_judgement(self.saved, judged)
        if not self.overrides:
            self._refresh_columns()
        return [int(self.saved.cluster_ids[r]) for r in rows]

    def set_overrides(self, overrides: dict) -> list[int]:
        """Re-explain every cluster with edited thresholds or switches ({} restores the saved run).

        Returns the cluster ids whose column values changed.
        """
        if self.results is None:
            return []
        before = self._columns
        self.overrides = dict(overrides)
        self.explanation = explain(self.results, overrides=self.overrides, check=False) if overrides else self.saved
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

    def save_overrides(self) -> Path:
        return save_parameters(self.results.folder, self.results.params, self.overrides)

    def has_row(self, cluster_id: int) -> bool:
        return self.saved is not None and int(cluster_id) in self.saved.rows

    def row(self, cluster_id: int) -> int:
        return self.saved.row_of(cluster_id)

    def column_values(self, cluster_id: int) -> dict:
        """The four plugin columns for one cluster (NaN numbers where there is nothing to show)."""
        values = self._columns.get(int(cluster_id))
        if values is None:
            return {"bc_label": NO_ROW_LABEL, "bc_classificationReason": self.why_no_row(cluster_id),
                    "bc_nFailed": math.nan, "bc_margin": math.nan}
        return values

    def why_no_row(self, cluster_id: int) -> str:
        if self.explanation is None:
            return f"no Bombcell results: {self.error}"
        parents = self.origins.get(int(cluster_id))
        if parents:
            return (f"no Bombcell row: new in this session, from cluster(s) {', '.join(map(str, parents))}; "
                    "Bombcell did not label it")
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
