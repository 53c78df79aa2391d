"""The Python API shared by the CLI and the Phy plugin.

    >>> from phy_bcreason import explain_folder
    >>> explanation = explain_folder("path/to/kilosort_output")
    >>> explanation.table()          # label, reason, n_decisive, margin per cluster
    >>> explanation.unit(12)         # decisive and other failing comparisons of cluster 12
    >>> explanation.long_table()     # one row per cluster and rule (value, threshold, status, margin)
"""

from __future__ import annotations

from pathlib import Path

from .core.engine import Explanation
from .core.judge import (  # noqa: F401  (the API: the judges and `explain` live in core/judge.py)
    CLASSIFIER_JUDGE,
    RULES_FROM_BOMBCELL,
    SAVED_JUDGE,
    apply_judgement,
    bombcell_labels,
    classifier_labels,
    crosscheck,
    explain,
    installed_bombcell_version,
    spikeinterface_labels,
    version_note,
)
from .io.find import find_bombcell_dir, load_results


def explain_folder(ks_dir: str | Path, bombcell_dir: str | Path | None = None, *,
                   overrides: dict | None = None, check: bool = True, classifier: str | None = None) -> Explanation:
    """Find the Bombcell results of a Kilosort folder and explain every cluster's label.

    ``classifier`` ('python' or 'matlab') forces whose rules explain the results (default: recognised from
    them). Raises `BombcellResultsError` (one-line message naming the file) when the results cannot be read.
    """
    results = load_results(find_bombcell_dir(ks_dir, bombcell_dir), ks_dir=ks_dir, classifier=classifier)
    return explain(results, overrides=overrides, check=check)
