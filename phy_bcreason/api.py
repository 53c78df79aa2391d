"""The Python API shared by the CLI and the Phy plugin.

    >>> from phy_bcreason import explain_folder
    >>> explanation = explain_folder("path/to/kilosort_output")
    >>> explanation.table()          # label, reason, n_decisive, margin per cluster
    >>> explanation.unit(12)         # decisive and other failing comparisons of cluster 12
    >>> explanation.long_table()     # one row per cluster and rule (value, threshold, status, margin)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
from pathlib import Path

import numpy as np
import pandas as pd

from .bombcell_io import PARAMS_FILE, BombcellResults, BombcellResultsError, find_bombcell_dir, load_results
from .engine import Explanation, evaluate


def bombcell_labels(metrics: pd.DataFrame, params: dict, quiet: bool = True) -> np.ndarray:
    """Labels from Bombcell's own classifier (`bombcell.quality_metrics.get_quality_unit_type`).

    Importing Bombcell takes seconds. With ``quiet`` what it prints (an ipywidgets banner, filled-in
    parameters) is dropped, so stdout holds only our output. Not from a worker thread: redirecting stdout
    swaps it for the whole process.
    """
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        from bombcell.quality_metrics import get_quality_unit_type

        _, labels = get_quality_unit_type(dict(params), metrics)
    return np.asarray(labels, dtype=object)


def apply_judgement(explanation: Explanation, judged: np.ndarray) -> np.ndarray:
    """Where Bombcell's labels (``judged``) differ from the rule table's, Bombcell's win: the unit keeps its
    comparisons, its reason says so, and it is listed in ``explanation.mismatches``. Returns those rows."""
    judged = np.asarray(judged, dtype=object)
    differ = np.flatnonzero(judged != explanation.labels)
    explanation.mismatches = pd.DataFrame(
        {
            "cluster_id": explanation.cluster_ids[differ],
            "bombcell_label": judged[differ],
            "rule_table_label": explanation.labels[differ],
        }
    )
    for row in differ:
        ours, theirs = explanation.labels[row], judged[row]
        explanation.labels[row] = theirs
        explanation.reasons[row] = (
            f"{theirs}: Bombcell's classifier says {theirs!r}, phy-bcreason's rule table says {ours!r} "
            "(please report)"
        )
    if len(differ):
        explanation.notes.append(f"{len(differ)} unit(s) where the rule table disagrees with Bombcell")
    return differ


def crosscheck(explanation: Explanation, metrics: pd.DataFrame, params: dict) -> Explanation:
    """Run Bombcell's classifier on the same metrics and parameters and apply its verdict."""
    try:
        judged = bombcell_labels(metrics, params)
    except Exception as exc:
        explanation.notes.append(
            f"Bombcell's own classifier could not run on these results ({type(exc).__name__}: {exc}); "
            "labels come from the rule table alone"
        )
        return explanation
    apply_judgement(explanation, judged)
    return explanation


RULES_FROM_BOMBCELL = ("0.93", "0.94")  # the versions rules.py was transcribed and tested against


def version_note(installed: str | None) -> str | None:
    """A note when the installed Bombcell is not one the rule table was transcribed from."""
    if installed is None:
        return "Bombcell is not installed: labels come from the rule table alone, with no cross-check"
    if not installed.startswith(RULES_FROM_BOMBCELL):
        return (f"installed Bombcell {installed}: the rule table follows Bombcell {'/'.join(RULES_FROM_BOMBCELL)}; "
                "labels are cross-checked against the installed classifier and it wins where they differ")
    return None


def installed_bombcell_version() -> str | None:
    try:
        return importlib.metadata.version("bombcell")
    except importlib.metadata.PackageNotFoundError:
        return None


def explain(results: BombcellResults, overrides: dict | None = None, check: bool = True) -> Explanation:
    """Explain loaded results, with parameters optionally overridden (what-if)."""
    params = {**results.params, **(overrides or {})}
    try:
        explanation = evaluate(results.metrics, params, cluster_ids=results.cluster_ids)
    except KeyError as exc:  # Bombcell's back-fill: a threshold that has no back-compatibility default
        message = exc.args[0] if exc.args else str(exc)
        raise BombcellResultsError(f"{results.folder / PARAMS_FILE}: {message}") from None
    explanation.source = results.folder
    explanation.notes[:0] = results.notes
    note = version_note(installed_bombcell_version())
    if note:
        explanation.notes.insert(0, note)
    if check:
        crosscheck(explanation, results.metrics, params)
    return explanation


def explain_folder(ks_dir: str | Path, bombcell_dir: str | Path | None = None, *,
                   overrides: dict | None = None, check: bool = True) -> Explanation:
    """Find the Bombcell results of a Kilosort folder and explain every cluster's label.

    Raises `BombcellResultsError` (one-line message naming the file) when the results cannot be read or the
    parameters lack a threshold that Bombcell cannot back-fill.
    """
    results = load_results(find_bombcell_dir(ks_dir, bombcell_dir), ks_dir=ks_dir)
    return explain(results, overrides=overrides, check=check)
