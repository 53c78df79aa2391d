"""The judges of the rule table's labels, and `explain`: the engine on loaded results, its labels checked by the
classifier that labelled the run (where it runs here) and by the labels the run saved."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..quiet import bombcell_output_to_log
from .engine import UNDETERMINED, Explanation, evaluate, undetermined_phrase
from .errors import listed
from .rules import PYTHON, SPIKEINTERFACE, SPIKEINTERFACE_LABELS, SPLIT_SWITCHES, unflatten_thresholds

if TYPE_CHECKING:  # for annotations only: core imports nothing of io at run time
    from ..io.results import BombcellResults

logger = logging.getLogger("phy_bcreason")


def bombcell_labels(metrics: pd.DataFrame, params: dict, quiet: bool = True) -> np.ndarray:
    """Labels from Bombcell's own classifier (`bombcell.quality_metrics.get_quality_unit_type`).

    Importing Bombcell takes seconds. What it prints (an ipywidgets banner, filled-in parameters) goes to the
    log at debug level, so stdout holds only our output; from any thread (`quiet.bombcell_output_to_log`
    catches only the calling thread's prints). ``quiet`` is kept for callers; both values do the same.
    """
    with bombcell_output_to_log():
        from bombcell.quality_metrics import get_quality_unit_type

        _, labels = get_quality_unit_type(dict(params), metrics)
    return np.asarray(labels, dtype=object)


CLASSIFIER_JUDGE, SAVED_JUDGE = "Bombcell's classifier", "saved labels"
WHY_SAVED_MAY_DIFFER = ("the metrics or parameters may have changed since Bombcell labelled it, or another "
                        "Bombcell version or classifier labelled it")


def apply_judgement(explanation: Explanation, judged=None, saved: list[str | None] | None = None) -> np.ndarray:
    """Judge the rule table's labels: ``judged``, the installed Bombcell classifier's labels (where they
    differ the classifier's win: a transcription error to report), then ``saved``, the labels Bombcell saved
    for each row (None where unknown), which have the last word. Every unit overruled is flagged, keeps its
    comparisons, its reason says what the rules gave, and it is listed in ``explanation.mismatches``.
    Starts from the rules' own labels each time, so it can be applied again. Returns the rows overruled."""
    ours, undetermined = explanation.rule_labels, explanation.undetermined
    labels, reasons = ours.copy(), explanation.rule_reasons.copy()
    records = []
    if judged is not None:
        judged = np.asarray(judged, dtype=object)
        for row in np.flatnonzero((judged != ours) & ~undetermined):
            labels[row] = judged[row]
            reasons[row] = (f"{judged[row]}: Bombcell's classifier says {judged[row]!r}, phy-bcreason's rule table "
                            f"says {ours[row]!r} (please report)")
            records.append((row, CLASSIFIER_JUDGE))
    saved = np.array(saved if saved is not None else [], dtype=object)  # cells are text or None
    for row in np.flatnonzero((saved != None) & (saved != labels[:len(saved)])):  # noqa: E711 (each cell)
        label = saved[row]
        if undetermined[row] and (ours[row] == UNDETERMINED or label in str(ours[row]).split(" or ")):
            labels[row] = label
            reasons[row] = f"{label} (saved by Bombcell): {undetermined_phrase(explanation, row)}"
            continue
        rules_gave = str(explanation.rule_reasons[row]).partition(": ")[2] or ours[row]
        labels[row] = label
        reasons[row] = (f"{label or '(empty)'} (saved by Bombcell; the {explanation.classifier} rules give "
                        f"{ours[row] or '(empty)'}: {rules_gave}; {WHY_SAVED_MAY_DIFFER})")
        records.append((row, SAVED_JUDGE))
    explanation.labels, explanation.reasons = labels, reasons
    rows = np.array(sorted({row for row, _ in records}), dtype=np.int64)
    explanation.flagged = np.zeros(len(labels), dtype=bool)
    explanation.flagged[rows] = True
    explanation.mismatches = pd.DataFrame(
        {
            "cluster_id": [explanation.cluster_ids[row] for row, _ in records],
            "judge": [judge for _, judge in records],
            "judge_label": [labels[row] if judge == SAVED_JUDGE else judged[row] for row, judge in records],
            "rule_table_label": [ours[row] for row, _ in records],
        }
    )
    explanation.notes = [note for note in explanation.notes if not note.startswith(JUDGEMENT_NOTE_STARTS)]
    for judge in (CLASSIFIER_JUDGE, SAVED_JUDGE):
        ids = [int(explanation.cluster_ids[row]) for row, j in records if j == judge]
        if ids:
            shown = listed(ids, 10)
            who = "Bombcell's classifier disagrees" if judge == CLASSIFIER_JUDGE else "Bombcell's saved labels differ"
            explanation.notes.append(f"{JUDGEMENT_NOTE_STARTS[judge == SAVED_JUDGE]}{len(ids)} unit(s) where {who} "
                                     f"from the {explanation.classifier} rules (cluster {shown}): its labels are "
                                     "shown and flagged")
    return rows


JUDGEMENT_NOTE_STARTS = ("flagged by Bombcell's classifier: ", "flagged by the saved labels: ")


def spikeinterface_labels(results: BombcellResults, params: dict) -> np.ndarray:
    """Labels from SpikeInterface's own `bombcell_label_units` on the run's metrics, with ``params``' thresholds
    (the run's, or what-if edits), in Bombcell's spelling."""
    import warnings

    from spikeinterface.curation import bombcell_label_units

    thresholds = unflatten_thresholds(results.thresholds, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # thresholds of metrics the run lacks: the loader notes them
        labels = bombcell_label_units(external_metrics=results.metrics, thresholds=thresholds,
                                      split_non_somatic=bool(params.get(SPLIT_SWITCHES[SPIKEINTERFACE])))
    return labels["bombcell_label"].map(SPIKEINTERFACE_LABELS).to_numpy(dtype=object)


def classifier_labels(results: BombcellResults, params: dict) -> np.ndarray | None:
    """The labels of the classifier that labelled the run, run on the same table, where it can run here:
    Python Bombcell's and SpikeInterface's (MATLAB's needs MATLAB). Seconds to import: not on Phy's GUI thread."""
    if results.classifier == PYTHON:
        return bombcell_labels(results.metrics, params)
    if results.classifier == SPIKEINTERFACE:
        return spikeinterface_labels(results, params)
    return None


def crosscheck(explanation: Explanation, results: BombcellResults, params: dict, saved: bool = True
               ) -> Explanation:
    """Judge with the classifier that labelled the run (where it runs here) and, with ``saved``, with the labels
    the run saved."""
    judged = None
    if not explanation.missing_thresholds:
        try:
            judged = classifier_labels(results, params)
        except Exception:
            logger.debug("the run's classifier could not run", exc_info=True)
            explanation.notes.append("the run's own classifier could not check these labels (details in the log "
                                     "at debug level): the labels are the rule table's")
    apply_judgement(explanation, judged, results.saved_labels_for(explanation.cluster_ids) if saved else None)
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


@functools.cache  # the Bombcell this process imports: one installed later is not the one it runs
def installed_bombcell_version() -> str | None:
    try:
        return importlib.metadata.version("bombcell")
    except importlib.metadata.PackageNotFoundError:
        return None


def explain(results: BombcellResults, overrides: dict | None = None, check: bool = True) -> Explanation:
    """Explain loaded results with their classifier's rules, with parameters optionally overridden (what-if).

    At the run's own parameters the labels Bombcell saved judge the rules' (always: reading them is cheap);
    with ``check`` Bombcell's installed classifier does too (Python results; importing it takes seconds).
    """
    params = {**results.params, **(overrides or {})}
    explanation = evaluate(results.metrics, params, cluster_ids=results.cluster_ids, classifier=results.classifier,
                           fill_thresholds=bool(results.params),  # no parameter file: no threshold is known
                           rules=results.rules)
    explanation.source, explanation.classified_by = results.folder, results.classifier_evidence
    explanation.notes[:0] = results.notes
    note = version_note(installed_bombcell_version()) if results.classifier == PYTHON else None
    if note:
        explanation.notes.insert(0, note)
    if check:  # with what-if edits the saved labels are no judge: they are for the run's parameters
        crosscheck(explanation, results, params, saved=not overrides)
    elif not overrides:
        apply_judgement(explanation, saved=results.saved_labels_for(explanation.cluster_ids))
    return explanation
