"""UnitRefine's opinion as the command line prints it: the per-cluster table and the three-way table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .opinion import ModelOpinion, contribution_text


def three_text(table: pd.DataFrame) -> str:
    shown = table.assign(
        user=table["user"].replace("", "-"), model=table["model"].replace("", "(not seen)"),
        confidence=[f"{c:.2f}" if np.isfinite(c) else "" for c in table["confidence"]],
        model_agrees=[yes_no(a) for a in table["model_agrees"]],
        user_agrees_model=[yes_no(a) for a in table["user_agrees_model"]])
    return shown.to_string(index=False)


def yes_no(agrees) -> str:
    return "" if agrees is None or (isinstance(agrees, float) and np.isnan(agrees)) else ("yes" if agrees else "no")


def unitrefine_text(opinion: ModelOpinion, bombcell: dict[int, str] | None, top: int) -> str:
    lines = [f"UnitRefine model {opinion.model_name}: {len(opinion.units)} clusters, from {opinion.source}",
             f"Contributions: {opinion.method_note}", ""]
    rows = []
    for cluster_id in sorted(opinion.units):
        unit = opinion.units[cluster_id]
        label = (bombcell or {}).get(cluster_id)
        agrees = "" if bombcell is None else yes_no(opinion.agrees(cluster_id, label))
        rows.append({"cluster": cluster_id, "label": unit.label, "confidence": f"{unit.confidence:.3f}",
                     "bombcell": label or "", "agrees": agrees,
                     "top contributions": "; ".join(contribution_text(c) for c in unit.top(top))})
    lines.append(pd.DataFrame(rows).to_string(index=False))
    return "\n".join(lines)
