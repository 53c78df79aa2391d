"""Rule table x metrics table -> Bombcell labels, the decisive comparisons, margins and reason text.

One vectorised pass over all units (numpy; no Qt, no I/O). Labels, reasons, the Phy columns, the why? dock,
the CLI and what-if edits all read the `Explanation` this returns. Longer than our other modules, it is one job:
the evaluation and the `Explanation` it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .backfill import backfill_parameters
from .rules import (
    BLOCKS,
    CLASSIFIER_TITLES,
    GROUP_PHRASES,
    MUA,
    NOISE,
    NONSOMATIC,
    PYTHON,
    SPIKEINTERFACE,
    SPIKEINTERFACE_LABELS,
    SPLIT_SWITCHES,
    UNLABELLED_EMPTY_UNITS,
    Rule,
    rules_for,
)

# Bombcell's numeric unit types.
NOISE_CODE, GOOD_CODE, MUA_CODE, NONSOMA_CODE, NONSOMA_MUA_CODE = 0, 1, 2, 3, 4
EMPTY_LABEL = ""

# Status of one comparison for one unit.
DECISIVE, ALSO_FAILED, PASS, EXEMPT, INACTIVE, MISSING, NO_THRESHOLD = range(7)
STATUS_NAMES = ("decisive", "also_failed", "pass", "exempt", "inactive", "missing", "threshold_missing")
STATUS_TEXT = (
    "decided the label",
    "fails, did not decide the label",
    "passes",
    "exempt",
    "not applied",
    "metric missing",
    "threshold missing",
)
# Bombcell's spelling -> SpikeInterface's, for the run's own spelling in the JSON and the dock.
RUN_SPELLING = {ours: theirs for theirs, ours in SPIKEINTERFACE_LABELS.items()}
# The order in which undetermined labels are listed ('GOOD or MUA').
LABEL_ORDER = ("NOISE", "NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA", "MUA", "GOOD", EMPTY_LABEL)
# Above this many rules with a missing threshold, undetermined labels are not enumerated (2**n cases).
MAX_UNKNOWN_RULES = 10
UNDETERMINED = "(undetermined)"


def label_names(split_nonsomatic: bool) -> dict[int, str]:
    return {
        NOISE_CODE: "NOISE",
        GOOD_CODE: "GOOD",
        MUA_CODE: "MUA",
        NONSOMA_CODE: "NON-SOMA GOOD" if split_nonsomatic else "NON-SOMA",
        NONSOMA_MUA_CODE: "NON-SOMA MUA",
    }


def _switch_on(params: dict, name: str) -> bool:
    """Python truthiness, as Bombcell's `if param[...]` tests it; ``a&b`` is Python's bitwise ``a & b`` of two
    switches (`rules.BITWISE_LINEAR_FIT`), each side's truth where ``&`` cannot take them (a float or text switch,
    on which Bombcell raises: the label its rules imply)."""
    if "&" in name:
        left, right = name.split("&")
        try:
            return bool(params.get(left, False) & params.get(right, False))
        except (TypeError, ValueError):
            return _switch_on(params, left) and _switch_on(params, right)
    try:
        return bool(params.get(name, False))
    except (TypeError, ValueError):
        return False


def _is_number(value) -> bool:
    """A real number, as both classifiers compare one with a column (bools count, as in Python and NumPy)."""
    return isinstance(value, int | float | np.integer | np.floating | np.bool_)


def _as_float(value) -> float:
    """The value as a float for margins and display; NaN for anything but a number (text never compares)."""
    if not _is_number(value):
        return np.nan
    try:
        return float(value)
    except OverflowError:  # a Python int beyond float64
        return np.inf if value > 0 else -np.inf


_COMPARISONS = {">": np.greater, "<": np.less}


def compare(column: np.ndarray, op: str, threshold) -> np.ndarray:
    """``column op threshold`` as the classifiers compute it: NumPy 2 promotion (NEP 50) of the column's dtype
    against the threshold, so a Python float takes a float32 column's precision (0.3 in float32 is not above
    0.3) and a NumPy scalar keeps its own. ``threshold`` is the parameter as the classifier reads it, or an array
    of candidate values for it (Python floats, e.g. [candidate, 1]); what is not a number never holds.
    The one comparison of the rules: `evaluate` and the what-if candidates both make it here."""
    if isinstance(threshold, np.ndarray):
        with np.errstate(over="ignore"):
            threshold = threshold.astype(np.result_type(column.dtype, 0.0))
    elif not _is_number(threshold):
        threshold = np.nan
    with np.errstate(all="ignore"):
        try:
            return _COMPARISONS[op](column, threshold)
        except OverflowError:  # a Python int beyond float64: NumPy cannot cast it to a float column
            return _COMPARISONS[op](column.astype(float), _as_float(threshold))


# What stops a classifier from comparing a metric column (`compared_column`).
DUPLICATED, TEXT, OBJECTS = "duplicated", "text", "objects"


def _cell_number(cell) -> float:
    return _as_float(cell) if _is_number(cell) else np.nan


def _missing(cell) -> bool:
    return cell is None or cell is pd.NA or cell is pd.NaT


def compared_column(metrics: pd.DataFrame, name: str, classifier: str = PYTHON
                    ) -> tuple[np.ndarray, str | None, str]:
    """Metric ``name`` as ``classifier`` compares it: (array, what stops it, how to say so).

    The array keeps the dtype the classifier's comparisons run in: Python Bombcell compares the pandas column
    (pandas compares a nullable column's data, pyarrow a float column in float64), SpikeInterface its
    ``to_numpy()``. Missing values (an absent column, NaN, pandas' NA, a cell that is not a number) are NaN, as
    the rules read them (where pandas' NA reaches a mask or np.isnan the classifier raises). What stops it:
    DUPLICATED (the name picks several columns), TEXT (a string column, or a cell that is neither a number nor
    missing), OBJECTS (numbers in an object column: Python Bombcell compares them, np.isnan and SpikeInterface
    cannot); None when nothing does.
    """
    if name not in metrics.columns:
        return np.full(len(metrics), np.nan), None, ""
    count = 1 if metrics.columns.is_unique else list(metrics.columns).count(name)
    if count > 1:
        return np.full(len(metrics), np.nan), DUPLICATED, f"appears {count} times"
    column = metrics[name]
    array = column.to_numpy()
    if array.dtype == object and isinstance(column.dtype, pd.api.extensions.ExtensionDtype) and \
            not pd.api.types.is_string_dtype(column.dtype):  # a nullable boolean (or pyarrow) column with NA
        array = column.to_numpy(dtype=float, na_value=np.nan)
    if array.dtype.kind in "biuf":
        if classifier != SPIKEINTERFACE and isinstance(column.dtype, pd.ArrowDtype) and array.dtype.kind == "f":
            array = array.astype(float)  # pyarrow compares a float32 column with a Python float in float64
        return array, None, ""
    numbers = np.array([_cell_number(cell) for cell in array], dtype=float)
    text = [cell for cell in array if not _is_number(cell) and not _missing(cell)]
    if text or pd.api.types.is_string_dtype(column.dtype) and column.dtype != object:
        example = f" (e.g. {text[0]!r})" if text else ""
        return numbers, TEXT, f"holds text{example}"
    return numbers, OBJECTS, "holds Python objects, not numbers"


def _cannot_read(stopped: str | None, use: str, classifier: str) -> bool:
    """Whether the classifier's code raises on a column stopped so, used so: 'compare' (> or <), 'isnan',
    'equals' (==), 'unanswered' (> or < with a None or NaN threshold, which pandas answers False unread)."""
    if stopped is None:
        return False
    if stopped == DUPLICATED or classifier == SPIKEINTERFACE:  # it takes np.isnan of every thresholded column
        return True
    if use in ("equals", "unanswered"):  # RPV_status == 0: a text cell is just not 0; `> None` is never read
        return False
    return use == "isnan" or stopped == TEXT


def _unanswered(threshold) -> bool:
    """pandas answers False to ``column > threshold`` without reading the column (Python Bombcell's comparisons)."""
    return threshold is None or threshold is pd.NA or isinstance(threshold, float | np.floating) and np.isnan(threshold)


COLUMN, THRESHOLD = "column", "threshold"


def _read(metrics: pd.DataFrame, params: dict, classifier: str, rules, inactive) -> tuple[dict, list[tuple]]:
    """Every metric the rules read, as `compared_column` gives it, and (COLUMN or THRESHOLD, name, why) for each
    the classifier reads under ``params`` (its applied rules) but cannot compare: its own code raises there."""
    uses: dict[str, set[str]] = {"nSpikes": {"equals"} if UNLABELLED_EMPTY_UNITS[classifier] else set()}
    for j, rule in enumerate(rules):
        applied = j not in inactive or bool(rule.never)  # SpikeInterface reads a never-holding test all the same
        use = "isnan" if rule.op == "isnan" else "unanswered" if _unanswered(params.get(rule.param)) else "compare"
        uses.setdefault(rule.metric, set()).update({use} if applied else ())
        if rule.only_where_present:
            uses.setdefault(rule.only_where_present, set()).update({"isnan"} if applied else ())
        if rule.exempt_when:
            switch, metric, _ = rule.exempt_when
            uses.setdefault(metric, set()).update({"equals"} if applied and _switch_on(params, switch) else ())
    columns, cannot = {}, []
    for name, used in uses.items():
        columns[name], stopped, why = compared_column(metrics, name, classifier)
        if any(_cannot_read(stopped, use, classifier) for use in used):
            cannot.append((COLUMN, name, why))
    for param in dict.fromkeys(r.param for j, r in enumerate(rules) if r.param and (j not in inactive or r.never)):
        threshold = params.get(param)
        if not _unanswered(threshold) and not _is_number(threshold):
            cannot.append((THRESHOLD, param, f"is {threshold!r}, not a number"))
    return columns, cannot


def unreadable(metrics: pd.DataFrame, params: dict, classifier: str = PYTHON, rules: tuple[Rule, ...] | None = None
               ) -> list[tuple[str, str, str]]:
    """(COLUMN or THRESHOLD, name, why) of each metric column and threshold ``classifier`` reads under ``params``
    but cannot compare (a duplicated or text column, a text threshold): its own code raises on them, so a
    loader refuses them. The rules read such a column as missing and never fire on such a threshold (`evaluate`
    notes them)."""
    rules = rules_for(classifier) if rules is None else tuple(rules)
    if classifier != SPIKEINTERFACE:
        params = backfill_parameters(params, classifier)[0]
    inactive = {j for j, r in enumerate(rules) if inactive_reason(r, params)}
    return _read(metrics, params, classifier, rules, inactive)[1]


def inactive_reason(rule: Rule, params: dict) -> str | None:
    """Why the classifier does not apply ``rule`` at all under ``params`` (None when it does)."""
    if rule.never:
        return rule.never
    off = [f"{flag.replace('&', ' & ')} is {'off' if wanted else 'on'}" for flag, wanted in rule.requires
           if _switch_on(params, flag) != wanted]
    if rule.unless and all(_switch_on(params, flag) == wanted for flag, wanted in rule.unless):
        off.append(" and ".join(f"{flag} is {'on' if wanted else 'off'}" for flag, wanted in rule.unless))
    if rule.requires_set and np.isnan(_as_float(params.get(rule.requires_set))):
        off.append(f"{rule.requires_set} is NaN")
    return "; ".join(off) or None


@dataclass
class Explanation:
    """Labels and reasons for every unit, with every comparison behind them.

    Arrays are indexed [unit, rule] in the order of ``rules``; ``cluster_ids`` gives each unit's Phy id.
    """

    cluster_ids: np.ndarray
    rules: tuple[Rule, ...]
    params: dict                  # after the classifier's back-fill
    filled_params: list[str]      # names the classifier's back-fill added
    values: np.ndarray            # metric value, NaN where missing
    thresholds: np.ndarray        # per rule, NaN for the isnan rule
    holds: np.ndarray             # the comparison holds and Bombcell applies it to this unit
    applies: np.ndarray           # Bombcell applies the rule to this unit (switches, NaN guards)
    status: np.ndarray            # int8 status codes (DECISIVE ...)
    margins: np.ndarray           # relative to |threshold|: < 0 fails, >= 0 passes, NaN if not applied
    codes: np.ndarray             # Bombcell's numeric type, NaN for empty units
    labels: np.ndarray            # Bombcell's label strings
    reasons: np.ndarray           # main reason text
    flip_margins: np.ndarray      # margin of the comparison nearest to changing the label
    inactive: dict[int, str]      # rule index -> why the rule is not applied at all
    missing_metrics: list[str]    # rule metrics absent from the metrics table
    classifier: str = PYTHON      # whose rules these are (rules.CLASSIFIERS)
    classified_by: str = ""       # the classifier in words, and how it was recognised
    missing_thresholds: list[str] = field(default_factory=list)  # read by an applied rule, not in the params
    undetermined: np.ndarray | None = None  # the label depends on a missing threshold
    rule_labels: np.ndarray | None = None   # what the rules give ('GOOD or MUA' where undetermined)
    flagged: np.ndarray | None = None       # a judge's label differs from the rules'
    rule_reasons: np.ndarray | None = None  # the reasons as the rules give them, before any judge
    exempt: np.ndarray | None = None        # [unit, rule]: exempt from the rule (keepUncertainRPVUnits)
    empty: np.ndarray | None = None         # units the classifier leaves unlabelled (no spikes)
    notes: list[str] = field(default_factory=list)
    source: Path | None = None              # the Bombcell folder the metrics came from
    mismatches: pd.DataFrame | None = None  # units where a judge (saved labels, Bombcell's classifier) disagreed
    compared: tuple[np.ndarray, ...] = ()   # per rule, the metric as the classifier compares it (its own dtype)

    @property
    def n_decisive(self) -> np.ndarray:
        return (self.status == DECISIVE).sum(axis=1)

    @cached_property
    def rows(self) -> dict[int, int]:
        """Phy cluster id -> row."""
        return {int(c): i for i, c in enumerate(self.cluster_ids.tolist())}

    def row_of(self, cluster_id: int) -> int:
        try:
            return self.rows[int(cluster_id)]
        except KeyError:
            raise KeyError(f"cluster {cluster_id} has no Bombcell row") from None

    def table(self) -> pd.DataFrame:
        """One row per cluster: label, main reason, number of decisive failures, margin to flip."""
        return pd.DataFrame(
            {
                "label": self.labels,
                "reason": self.reasons,
                "n_decisive": self.n_decisive,
                "margin": self.flip_margins,
            },
            index=pd.Index(self.cluster_ids, name="cluster_id"),
        )

    def comparisons(self, cluster_id: int) -> list[dict]:
        """Every rule for one cluster, in table order, as plain values."""
        row = self.row_of(cluster_id)
        out = []
        for j, rule in enumerate(self.rules):
            out.append(
                {
                    "block": rule.block,
                    "metric": rule.metric,
                    "op": rule.op,
                    "param": rule.param,
                    "group": rule.group,
                    "abs": rule.absolute,
                    "value": _plain(self.values[row, j]),
                    "threshold": _plain(self.thresholds[j]),
                    "margin": _plain(self.margins[row, j]),
                    "holds": bool(self.holds[row, j]),
                    "status": STATUS_NAMES[self.status[row, j]],
                    "note": self._note(row, j),
                }
            )
        return out

    def _note(self, row: int, j: int) -> str | None:
        rule = self.rules[j]
        if j in self.inactive:
            return self.inactive[j]
        if self.status[row, j] == NO_THRESHOLD:
            return f"{rule.param} is not in the parameter file"
        if rule.metric in self.missing_metrics:
            return f"{rule.metric} is not in the metrics table"
        if not self.applies[row, j]:
            return f"Bombcell skips this rule where {rule.only_where_present} is NaN"
        if self.status[row, j] == EXEMPT:
            switch, metric, value = rule.exempt_when
            return f"{metric} == {value:g} and {switch} is on: kept as uncertain"
        if rule.group and self.holds[row, j] and self.status[row, j] == PASS:
            return "holds, but the group needs all its comparisons to hold"
        return None

    def unit(self, cluster_id: int) -> dict:
        """Label, reason and the comparisons split as the CLI's JSON reports them."""
        row = self.row_of(cluster_id)
        comparisons = self.comparisons(cluster_id)
        decisive = [c for c in comparisons if c["status"] == "decisive"]
        also = [c for c in comparisons if c["status"] == "also_failed"]
        return {
            "cluster_id": int(cluster_id),
            "label": str(self.labels[row]),
            "reason": str(self.reasons[row]),
            "classifier": self.classifier,
            "rules_label": str(self.rule_labels[row]),
            "flagged": bool(self.flagged[row]),
            "decisive": [_failure(c) for c in decisive],
            "also_failed": [_failure(c) for c in also],
            "threshold_missing": [_failure(c) for c in comparisons if c["status"] == "threshold_missing"],
        } | ({"run_label": RUN_SPELLING.get(str(self.labels[row]), str(self.labels[row]))}
             if self.classifier == SPIKEINTERFACE else {})

    def long_table(self) -> pd.DataFrame:
        """One row per cluster and rule: value, threshold, status and margin (the audit table)."""
        n_units, n_rules = self.values.shape
        return pd.DataFrame(
            {
                "cluster_id": np.repeat(self.cluster_ids, n_rules),
                "label": np.repeat(self.labels, n_rules),
                "block": np.tile([r.block for r in self.rules], n_units),
                "rule": np.tile([r.name for r in self.rules], n_units),
                "metric": np.tile([r.metric for r in self.rules], n_units),
                "op": np.tile([r.op for r in self.rules], n_units),
                "param": np.tile([r.param or "" for r in self.rules], n_units),
                "value": self.values.ravel(),
                "threshold": np.tile(self.thresholds, n_units),
                "status": np.asarray(STATUS_NAMES, dtype=object)[self.status.ravel()],
                "margin": self.margins.ravel(),
            }
        )


def margin_text(margin: float) -> str:
    """A margin as people read it (the dock, the CLI): signed, three significant digits, so that a margin that is
    not zero never reads +0 or -0 (+0.0004), and 0 on the threshold itself."""
    return "0" if margin == 0 else f"{margin:+.3g}"


def _plain(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _failure(c: dict) -> dict:
    out = {k: c[k] for k in ("block", "metric", "op", "param", "value", "threshold", "margin")}
    if c["group"]:
        out["group"] = c["group"]
    if c["abs"]:
        out["abs"] = True  # value is the metric's absolute value
    return out


def rule_fires(value: float, threshold, op: str) -> bool:
    """Whether one value (a drawn one, in float64) fires a rule: `compare`, the comparison of the rules, on that
    value; the evidence panel's check that a drawn value keeps every rule's outcome calls it."""
    column = np.asarray([value], dtype=float)
    return bool(np.isnan(column)[0] if op == "isnan" else compare(column, op, threshold)[0])


def evaluate(metrics: pd.DataFrame, params: dict, cluster_ids=None, classifier: str = PYTHON,
             fill_thresholds: bool = True, rules: tuple[Rule, ...] | None = None) -> Explanation:
    """Evaluate every rule of ``classifier`` for every unit, as that classifier would, and explain it.

    ``rules`` are the classifier's rows (default: its fixed ones; SpikeInterface's come from the run).
    ``params`` is back-filled by the classifier's own back-fill first (switches only, without
    ``fill_thresholds``). A threshold it cannot fill leaves its rules 'threshold missing': units whose label
    depends on them are undetermined ('GOOD or MUA').
    """
    rules = rules_for(classifier) if rules is None else tuple(rules)
    if classifier == SPIKEINTERFACE:  # its thresholds are the run's own dict: nothing to back-fill
        filled, backfill_warnings, missing_params = [], [], []
    else:
        params, filled, backfill_warnings, missing_params = backfill_parameters(params, classifier, fill_thresholds)
    n_units, n_rules = len(metrics), len(rules)
    cluster_ids = np.arange(n_units) if cluster_ids is None else np.asarray(cluster_ids)

    inactive = {j: why for j, r in enumerate(rules) if (why := inactive_reason(r, params))}
    columns, cannot = _read(metrics, params, classifier, rules, inactive)
    with np.errstate(all="ignore"):
        compared = tuple(np.abs(columns[r.metric]) if r.absolute else columns[r.metric] for r in rules)
        # Stored rule-major, used as its transpose: [unit, rule] views whose rule columns are contiguous.
        values = np.stack([column.astype(float) for column in compared]).T if n_rules else np.empty((n_units, 0))
    thresholds = np.array([np.nan if r.param is None else _as_float(params.get(r.param)) for r in rules])
    is_nan_rule = np.array([r.op == "isnan" for r in rules], dtype=bool)
    no_threshold = np.array([r.param in missing_params for r in rules], dtype=bool)
    blocks = np.array([r.block for r in rules])

    fires = np.zeros((n_rules, n_units), dtype=bool).T
    for j, rule in enumerate(rules):
        if rule.op == "isnan":
            fires[:, j] = np.isnan(values[:, j])
        elif not no_threshold[j]:
            fires[:, j] = compare(compared[j], rule.op, params.get(rule.param))
    # Signed distance to the threshold, positive on the passing side, relative to |threshold|. The comparison
    # decides; where the distance in float64 says otherwise (a float32 value equal to the threshold in float32,
    # an int64 beyond 2**53) the value is on the threshold, a hair to the side the comparison says.
    direction = np.array([-1.0 if r.op == ">" else 1.0 for r in rules])
    scale = np.where((thresholds == 0) | ~np.isfinite(thresholds), 1.0, np.abs(thresholds))
    with np.errstate(invalid="ignore", over="ignore"):
        margins = (values - thresholds) * (direction / scale)
        margins[~fires & (margins < 0)] = 0.0
        margins[fires & ~(margins < 0)] = -np.finfo(float).smallest_subnormal
    margins[:, is_nan_rule] = np.nan

    applies = np.ones((n_rules, n_units), dtype=bool).T
    applies[:, list(inactive)] = False
    exempt = np.zeros((n_rules, n_units), dtype=bool).T
    for j, rule in enumerate(rules):
        if rule.only_where_present:
            applies[:, j] &= ~np.isnan(columns[rule.only_where_present].astype(float))
        if rule.exempt_when:
            switch, metric, value = rule.exempt_when
            if _switch_on(params, switch) and metric in metrics.columns:
                exempt[:, j] = columns[metric] == value
    holds = fires & applies & ~exempt
    margins[~applies] = np.nan  # no distance to a threshold the classifier does not apply
    margins += 0.0  # no "-0" on the threshold itself
    # Comparisons whose outcome is unknown: an applied rule, a metric value, no threshold.
    unknown = applies & no_threshold & ~np.isnan(values)

    empty = (columns["nSpikes"] == 0) & UNLABELLED_EMPTY_UNITS[classifier]
    split = _switch_on(params, SPLIT_SWITCHES[classifier])
    counts = _group_counts(holds, rules)
    codes = _combine(counts, blocks, empty, split)
    labels = _labels(codes, split)
    undetermined, rule_labels = _undetermined(holds, unknown, rules, blocks, empty, split, labels)
    codes[undetermined] = np.nan

    # Which blocks decided each unit's label.
    decides = {
        NOISE: codes == NOISE_CODE,
        MUA: (codes == MUA_CODE) | (codes == NONSOMA_MUA_CODE),
        NONSOMATIC: (codes == NONSOMA_CODE) | (codes == NONSOMA_MUA_CODE),
    }
    decided_by_block = np.stack([decides[b] for b in blocks]).T if n_rules else counts
    status = np.full((n_rules, n_units), PASS, dtype=np.int8).T
    status[np.isnan(values) & ~is_nan_rule] = MISSING
    status[unknown] = NO_THRESHOLD
    status[~applies] = INACTIVE
    status[exempt & fires & applies] = EXEMPT
    status[counts & decided_by_block] = DECISIVE
    status[counts & ~decided_by_block] = ALSO_FAILED

    missing_metrics = sorted({r.metric for r in rules if r.metric not in metrics.columns})
    used_missing = [name for name in missing_params
                    if any(r.param == name and j not in inactive for j, r in enumerate(rules))]
    explanation = Explanation(
        cluster_ids=cluster_ids,
        rules=tuple(rules),
        params=params,
        filled_params=filled,
        values=values,
        thresholds=thresholds,
        holds=holds,
        applies=applies,
        status=status,
        margins=margins,
        codes=codes,
        labels=rule_labels.copy(),
        reasons=np.empty(n_units, dtype=object),
        flip_margins=_flip_margins(status, margins, holds, applies, rules, codes),
        inactive=inactive,
        missing_metrics=missing_metrics,
        classifier=classifier,
        missing_thresholds=used_missing,
        undetermined=undetermined,
        rule_labels=rule_labels,
        flagged=np.zeros(n_units, dtype=bool),
        exempt=exempt,
        empty=empty,
        notes=list(backfill_warnings) + [
            f"{kind} {name} {why}: {CLASSIFIER_TITLES[classifier]} cannot compare it; the rules "
            + ("read it as missing" if kind == COLUMN else "never fire on it") for kind, name, why in cannot],
        compared=compared,
    )
    if filled and fill_thresholds:  # without a parameter file the loader's note says it all
        explanation.notes.append(f"not in the parameter file, filled in by the classifier's own back-fill (older "
                                 f"results): {', '.join(f'{k}={params[k]}' for k in filled)}")
    if used_missing and fill_thresholds:
        it = "it" if len(used_missing) == 1 else "them"
        explanation.notes.append(
            f"not in the parameter file and no back-fill default: {', '.join(used_missing)}; rules on {it} show "
            f"'threshold missing', and {int(undetermined.sum())} unit(s) have a label that depends on {it}")
    explanation.reasons = reason_texts(explanation)
    explanation.rule_reasons = explanation.reasons.copy()
    return explanation


def _group_sets(rules, group: str) -> dict[object, list[int]]:
    """A group's conditions: members sharing an ``any_of`` tag are one condition, every other member one."""
    sets: dict[object, list[int]] = {}
    for j, rule in enumerate(rules):
        if rule.group == group:
            sets.setdefault(rule.any_of or j, []).append(j)
    return sets


def _group_counts(holds: np.ndarray, rules) -> np.ndarray:
    """A grouped comparison counts only when its whole group holds: every condition of it (a condition of
    several members holds when any of them holds). ``holds`` is [..., unit, rule]."""
    counts = holds.copy()
    for group in {r.group for r in rules if r.group}:
        sets = _group_sets(rules, group)
        whole = np.all([holds[..., members].any(axis=-1) for members in sets.values()], axis=0)
        counts[..., [j for members in sets.values() for j in members]] &= whole[..., None]
    return counts


def _combine(counts: np.ndarray, blocks: np.ndarray, empty: np.ndarray, split: bool) -> np.ndarray:
    """Bombcell's numeric unit types from the comparisons that count ([..., unit, rule]), as every classifier
    combines them."""
    return _combine_blocks({b: counts[..., blocks == b].any(axis=-1) for b in BLOCKS}, empty, split)


def _combine_blocks(in_block: dict[str, np.ndarray], empty: np.ndarray, split: bool) -> np.ndarray:
    """The same, from whether each block has a comparison that counts ([..., unit] each)."""
    noise = ~empty & in_block[NOISE]
    mua = ~noise & in_block[MUA]
    nonsomatic = in_block[NONSOMATIC]
    codes = np.where(noise, NOISE_CODE, np.where(mua, MUA_CODE, GOOD_CODE)).astype(float)
    if split:
        codes[(codes == GOOD_CODE) & nonsomatic] = NONSOMA_CODE
        codes[(codes == MUA_CODE) & nonsomatic] = NONSOMA_MUA_CODE
    else:
        codes[(codes != NOISE_CODE) & nonsomatic] = NONSOMA_CODE
    codes[..., empty] = np.nan
    return codes


def _labels(codes: np.ndarray, split: bool) -> np.ndarray:
    labels = np.full(codes.shape, EMPTY_LABEL, dtype=object)
    for code, name in label_names(split).items():
        labels[codes == code] = name
    return labels


def _undetermined(holds, unknown, rules, blocks, empty, split, labels) -> tuple[np.ndarray, np.ndarray]:
    """Units whose label depends on comparisons with a missing threshold, and every unit's label as the rules
    give it ('GOOD or MUA' for those). Each unknown rule may hold or not; every combination is evaluated for
    all units at once (a unit's label depends on its own row only)."""
    unknown_rules = np.flatnonzero(unknown.any(axis=0))
    undetermined = np.zeros(len(labels), dtype=bool)
    rule_labels = labels.copy()
    if not len(unknown_rules):
        return undetermined, rule_labels
    if len(unknown_rules) > MAX_UNKNOWN_RULES:
        undetermined = unknown.any(axis=1)
        rule_labels[undetermined] = UNDETERMINED
        return undetermined, rule_labels
    possible = [set() for _ in labels]
    for combination in range(2 ** len(unknown_rules)):
        assumed = holds.copy()
        for bit, j in enumerate(unknown_rules):
            if combination >> bit & 1:
                assumed[:, j] |= unknown[:, j]
        for row, label in enumerate(_labels(_combine(_group_counts(assumed, rules), blocks, empty, split), split)):
            possible[row].add(label)
    for row, options in enumerate(possible):
        if len(options) > 1:
            undetermined[row] = True
            rule_labels[row] = " or ".join(sorted(options, key=LABEL_ORDER.index))
    return undetermined, rule_labels


def _flip_margins(status, margins, holds, applies, rules, codes) -> np.ndarray:
    """Per unit: for a failing label the decisive margin nearest zero (< 0); for GOOD the smallest margin
    of a comparison that alone would change the label (>= 0)."""
    nearest_failure = np.max(margins, axis=1, where=status == DECISIVE, initial=-np.inf)
    alone_flips = applies & (status == PASS) & ~np.isnan(margins)
    for j, rule in enumerate(rules):
        if rule.group:  # a group member flips the label alone only if the rest of its group already holds
            for members in _group_sets(rules, rule.group).values():
                if j not in members:
                    alone_flips[:, j] &= holds[:, members].any(axis=1)
    nearest_pass = np.min(margins, axis=1, where=alone_flips, initial=np.inf)
    flip = np.where(codes == GOOD_CODE, nearest_pass, nearest_failure)
    flip[~np.isfinite(flip)] = np.nan
    return flip


def _phrase(rule: Rule) -> str:
    return rule.phrase or rule.name


def reason_texts(explanation: Explanation) -> np.ndarray:
    """Main reason per unit, e.g. 'MUA: fractionRPVs_estimatedTauR>maxRPVviolations'.

    Built once per distinct (label, decisive set) combination, so it costs little for many units.
    """
    rules, labels = explanation.rules, explanation.labels
    decisive = explanation.status == DECISIVE
    decisive_set = decisive.astype(np.int64) @ (2 ** np.arange(len(rules), dtype=np.int64))
    label_index = np.nan_to_num(explanation.codes, nan=NONSOMA_MUA_CODE + 1).astype(np.int64)
    _, first_rows, combo = np.unique(decisive_set * 8 + label_index, return_index=True, return_inverse=True)
    texts = [_reason_text(labels[row], [r for r, d in zip(rules, decisive[row]) if d]) for row in first_rows]
    reasons = np.array(texts, dtype=object)[combo.ravel()] if len(labels) else np.array([], dtype=object)
    for row in np.flatnonzero(explanation.undetermined):
        reasons[row] = f"{labels[row]}: {undetermined_phrase(explanation, row)}"
    return reasons


def undetermined_phrase(explanation: Explanation, row: int) -> str:
    """'depends on maxDriftEstimate>maxDrift (maxDrift is not in the parameter file)'."""
    unknown = [r for j, r in enumerate(explanation.rules) if explanation.status[row, j] == NO_THRESHOLD]
    params = list(dict.fromkeys(r.param for r in unknown))
    if len(unknown) > 3:
        return f"depends on {len(params)} thresholds that are not in the parameter file ({', '.join(params[:3])}, ...)"
    return (f"depends on {', '.join(r.name for r in unknown)} "
            f"({', '.join(params)} {'is' if len(params) == 1 else 'are'} not in the parameter file)")


def _reason_text(label: str, decisive: list[Rule]) -> str:
    if label == EMPTY_LABEL:
        return "no spikes: Bombcell leaves empty units unlabelled"
    if label == "GOOD":
        return "GOOD: passed all thresholds"
    phrases, seen_groups = [], set()
    order = {NONSOMATIC: 0, NOISE: 0, MUA: 1}  # non-somatic reasons first for NON-SOMA MUA
    for rule in sorted(decisive, key=lambda r: order[r.block]):
        if rule.group:
            if rule.group not in seen_groups:
                seen_groups.add(rule.group)
                phrases.append(GROUP_PHRASES.get(rule.group, rule.group))
        else:
            phrases.append(_phrase(rule))
    return f"{label}: {', '.join(phrases)}" if phrases else f"{label}: (no decisive comparison found)"


def labels_with_threshold(explanation: Explanation, param: str | None, candidates: np.ndarray, rows: np.ndarray
                          ) -> np.ndarray:
    """The rules' labels of units ``rows`` if threshold ``param`` were each of ``candidates``, all else held
    ([candidate, unit]), as `evaluate` would give them."""
    split = _switch_on(explanation.params, SPLIT_SWITCHES[explanation.classifier])
    return _labels(codes_with_threshold(explanation, param, candidates, rows), split)


def codes_with_threshold(explanation: Explanation, param: str | None, candidates: np.ndarray, rows: np.ndarray
                         ) -> np.ndarray:
    """Bombcell's numeric unit types of units ``rows`` if threshold ``param`` were each of ``candidates``
    ([candidate, unit]): the same comparisons and combination as `evaluate`, for every candidate at once. Only
    the comparison on ``param`` changes, so every other one is combined once."""
    rules = explanation.rules
    blocks = np.array([r.block for r in rules])
    split = _switch_on(explanation.params, SPLIT_SWITCHES[explanation.classifier])
    holds = explanation.holds[rows]
    empty = explanation.empty[rows]
    columns = [j for j, rule in enumerate(rules) if param and rule.param == param and j not in explanation.inactive]
    if not columns:
        return np.repeat(_combine(_group_counts(holds, rules), blocks, empty, split)[None], len(candidates), axis=0)
    candidates = np.asarray(candidates, dtype=float)[:, None]
    fires = {}
    for j in columns:
        kept = explanation.applies[rows, j] & ~explanation.exempt[rows, j]  # as `evaluate` keeps them
        fires[j] = compare(explanation.compared[j][rows][None], rules[j].op, candidates) & kept[None]
    held = holds.copy()
    held[:, columns] = False
    groups = {rules[j].group for j in columns if rules[j].group}
    fixed = np.array([r.group not in groups for r in rules])  # rules whose count does not vary
    counts = _group_counts(held, rules)
    in_block = {b: counts[:, (blocks == b) & fixed].any(axis=-1)[None] for b in BLOCKS}
    for j in columns:
        if not rules[j].group:
            in_block[rules[j].block] = in_block[rules[j].block] | fires[j]
    for group in groups:
        whole = np.ones((1, len(rows)), dtype=bool)
        for members in _group_sets(rules, group).values():
            condition = held[:, members].any(axis=-1)[None]
            for j in members:
                if j in fires:
                    condition = condition | fires[j]
            whole = whole & condition
        block = rules[next(j for j in columns if rules[j].group == group)].block
        in_block[block] = in_block[block] | whole
    shape = (len(candidates), len(rows))
    return _combine_blocks({b: np.broadcast_to(v, shape) for b, v in in_block.items()}, empty, split)
