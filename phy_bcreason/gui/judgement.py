"""The judges of the labels a session shows: Bombcell's own classifier (run off Phy's GUI thread, in the child
process for Python Bombcell) and the labels the run saved (`core/judge.py` applies them)."""

from __future__ import annotations

import logging

import numpy as np

from ..core.judge import apply_judgement, classifier_labels
from ..core.rules import PYTHON

logger = logging.getLogger("phy")


class Judgement:
    """Bombcell's own label per cluster id, where known."""

    def __init__(self):
        self.judged: dict[int, str] = {}

    def record(self, labels_by_id: dict[int, str]) -> None:
        self.judged.update(labels_by_id)

    def apply(self, saved, results) -> None:
        """Bombcell's installed classifier's labels where known, then the saved ones, judge ``saved``."""
        ids = saved.cluster_ids.tolist()
        judged = np.array([self.judged.get(c, label) for c, label in zip(ids, saved.rule_labels.tolist())],
                          dtype=object) if self.judged else None
        apply_judgement(saved, judged, results.saved_labels_for(ids))


def run_classifier(live):
    """Off the GUI thread: the labels of the classifier that labelled the run, on the same results, where it
    runs here (not MATLAB's) and every threshold is known. Python Bombcell's runs in the child process, so that
    Bombcell's imports (about 160 MB) stay out of Phy's; SpikeInterface's runs here."""
    if live.saved.missing_thresholds:
        return None
    try:
        if live.results.classifier == PYTHON:
            return live.start_process().labels(live.results.metrics)
        return classifier_labels(live.results, live.results.params)
    except Exception:
        logger.debug("phy-bcreason: Bombcell's own classifier could not run; labels are the rule table's",
                     exc_info=True)
        return None
