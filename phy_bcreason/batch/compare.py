"""Compare two Bombcell runs of one sorting (`compare_runs`): the parameters that differ, and for each unit whose
label changed, the rules whose outcome changed for it. A run is a results folder, a Kilosort folder, or a
parameter file applied to the other run's metrics as a what-if.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import DECISIVE, Explanation
from ..core.judge import explain
from ..io.find import find_bombcell_dir, holds_results, load_results
from ..io.params import CompareError, _is_param_file, read_param_file
from .audit import kilosort_dir_of


def open_run(path: Path, ks_dir: Path | None = None):
    """(results, label) for a results folder or a Kilosort folder."""
    path = Path(path)
    if not path.exists():
        raise CompareError(f"{path}: not found")
    if path.is_dir() and holds_results(path):
        results_dir = path
        ks = ks_dir or kilosort_dir_of(path)
    else:
        results_dir = find_bombcell_dir(path)
        ks = path
    return load_results(results_dir, ks_dir=ks)


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(a, b) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, bool) or isinstance(b, bool):
        try:
            return bool(a) == bool(b) and a is not None and b is not None or a is None and b is None
        except (TypeError, ValueError):
            return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


def differing_parameters(a: dict, b: dict, read: set[str]) -> list[dict]:
    """Parameters whose values differ (missing on one side included), rule-read ones first."""
    rows = []
    for name in dict.fromkeys([*a, *b]):
        if not _same(a.get(name), b.get(name)):
            rows.append({"name": name, "a": _plain(a.get(name)), "b": _plain(b.get(name)),
                         "read_by_rules": name in read})
    return sorted(rows, key=lambda r: not r["read_by_rules"])


@dataclass
class Comparison:
    a: str
    b: str
    classifier: str
    parameters: list[dict]
    changes: list[dict]
    only_in_a: list[int]
    only_in_b: list[int]
    notes: list[str]

    def summary(self) -> str:
        moves = Counter((c["from"] or "(empty)", c["to"] or "(empty)") for c in self.changes)
        return ", ".join(f"{n} {old} -> {new}" for (old, new), n in moves.most_common()) or "no label changes"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "classifier": self.classifier, "summary": self.summary(),
                "parameters": self.parameters, "changes": self.changes, "only_in_a": self.only_in_a,
                "only_in_b": self.only_in_b, "notes": self.notes}

    def text(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b}", f"classifier: {self.classifier}", "",
                 "Parameters that differ (A -> B):"]
        for p in self.parameters:
            mark = "" if p["read_by_rules"] else "   (not read by the rules)"
            lines.append(f"  {p['name']}: {_show(p['a'])} -> {_show(p['b'])}{mark}")
        if not self.parameters:
            lines.append("  none")
        lines += ["", f"Units whose label changed: {len(self.changes)} ({self.summary()})"]
        for c in self.changes:
            lines.append(f"  cluster {c['cluster_id']}: {c['from'] or '(empty)'} -> {c['to'] or '(empty)'}"
                         f"  because {describe_causes(c)}")
        if self.only_in_a or self.only_in_b:
            lines += ["", f"Only in A: {_ids(self.only_in_a)}", f"Only in B: {_ids(self.only_in_b)}"]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _ids(ids) -> str:
    return ", ".join(map(str, ids)) or "none"


def _show(value) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _num(x) -> str:
    return "NaN" if x is None else f"{x:.4g}"


def describe_causes(change: dict) -> str:
    parts = []
    for r in change["rules"]:
        a, b = r["a"], r["b"]
        verb = "now fires" if b["fires"] else "no longer fires"
        if r["op"] == "isnan":
            parts.append(f"{r['rule']} {verb}")
            continue
        moved = []
        if not _same(a["threshold"], b["threshold"]):
            moved.append(f"{r['param']} {_num(a['threshold'])} -> {_num(b['threshold'])}")
        if not _same(a["value"], b["value"]):
            moved.append(f"{r['metric']} {_num(a['value'])} -> {_num(b['value'])}")
        else:
            moved.append(f"{r['metric']} {_num(b['value'])}")
        parts.append(f"{r['rule']} {verb} ({', '.join(moved)})")
    parts += [f"{s['name']} {_show(s['a'])} -> {_show(s['b'])}" for s in change["switches"]]
    if change.get("judge"):
        parts.append(change["judge"])
    return "; ".join(parts) or "no rule's outcome changed"


def _rule_state(e: Explanation, row: int, j: int) -> dict:
    return {"value": _plain(float(e.values[row, j])), "threshold": _plain(float(e.thresholds[j])),
            "fires": bool(e.holds[row, j]), "status": ["decisive", "also_failed", "pass", "exempt", "inactive",
                                                       "missing", "threshold_missing"][e.status[row, j]]}


def _judge(e: Explanation, cluster_id: int) -> str:
    if e.mismatches is None:
        return "a judge"
    judges = e.mismatches.loc[e.mismatches["cluster_id"] == cluster_id, "judge"].tolist()
    return " and ".join(judges) or "a judge"


def compare_explanations(ea: Explanation, eb: Explanation, a: str, b: str, params_a: dict, params_b: dict,
                         notes: list[str] | None = None) -> Comparison:
    """Units whose label differs between two explanations of one sorting, and for each, the rules whose outcome
    (fires or not) changed for it and that decide its label in either run; switches that changed the label's
    combination where no rule did."""
    from ..core.rules import SPLIT_SWITCHES, switches_for, thresholds_for

    read = set(thresholds_for(ea.classifier, ea.rules)) | set(thresholds_for(eb.classifier, eb.rules)) \
        | set(switches_for(ea.classifier, ea.rules)) | set(switches_for(eb.classifier, eb.rules))
    parameters = differing_parameters(params_a, params_b, read)
    rules_b = {(r.block, r.name): j for j, r in enumerate(eb.rules)}
    common = [int(c) for c in ea.cluster_ids if int(c) in eb.rows]
    changes = []
    switched = [p for p in parameters if p["name"] in (SPLIT_SWITCHES.get(ea.classifier), SPLIT_SWITCHES.get(
        eb.classifier)) or p["name"] in set(switches_for(ea.classifier, ea.rules))]
    for cluster_id in common:
        ra, rb = ea.rows[cluster_id], eb.rows[cluster_id]
        if ea.labels[ra] == eb.labels[rb]:
            continue
        causes = []
        for ja, rule in enumerate(ea.rules):
            jb = rules_b.get((rule.block, rule.name))
            if jb is None:
                continue
            if ea.holds[ra, ja] == eb.holds[rb, jb]:
                continue
            if ea.status[ra, ja] != DECISIVE and eb.status[rb, jb] != DECISIVE:
                continue
            causes.append({"rule": rule.name, "block": rule.block, "metric": rule.metric, "op": rule.op,
                           "param": rule.param, "a": _rule_state(ea, ra, ja), "b": _rule_state(eb, rb, jb)})
        change = {"cluster_id": cluster_id, "from": str(ea.labels[ra]), "to": str(eb.labels[rb]), "rules": causes,
                  "switches": [] if causes else switched}
        judges = [f"{side}'s label {e.labels[row]!r} is from {_judge(e, cluster_id)} (its rules give "
                  f"{e.rule_labels[row]!r})" for side, e, row in (("A", ea, ra), ("B", eb, rb)) if e.flagged[row]]
        if judges:
            change["judge"] = "; ".join(judges)
        changes.append(change)
    only_a = sorted(set(map(int, ea.cluster_ids)) - set(map(int, eb.cluster_ids)))
    only_b = sorted(set(map(int, eb.cluster_ids)) - set(map(int, ea.cluster_ids)))
    classifier = ea.classified_by if ea.classifier == eb.classifier else \
        f"A: {ea.classified_by}; B: {eb.classified_by}"
    return Comparison(a, b, classifier, parameters, changes, only_a, only_b, list(notes or []))


def check_one_sorting(results_a, results_b) -> None:
    """Two runs of one sorting share cluster ids, and Bombcell counts the same spikes for most of them."""
    common, in_a, in_b = np.intersect1d(results_a.cluster_ids, results_b.cluster_ids, return_indices=True)
    if not len(common):
        raise CompareError(f"{results_a.folder} and {results_b.folder}: no cluster id in common; not runs of one "
                           "sorting")
    if "nSpikes" in results_a.metrics.columns and "nSpikes" in results_b.metrics.columns:
        a = pd.to_numeric(results_a.metrics["nSpikes"], errors="coerce").to_numpy(float)[in_a]
        b = pd.to_numeric(results_b.metrics["nSpikes"], errors="coerce").to_numpy(float)[in_b]
        differ = np.isfinite(a) & np.isfinite(b) & (a != b)
        if 2 * differ.sum() > len(common):
            i = int(np.flatnonzero(differ)[0])
            raise CompareError(f"{results_a.folder} and {results_b.folder}: not runs of one sorting ({differ.sum()} "
                               f"of {len(common)} clusters have another nSpikes, e.g. cluster {common[i]}: "
                               f"{a[i]:g} and {b[i]:g})")


def compare_runs(run_a: str | Path, run_b: str | Path) -> Comparison:
    """Compare two Bombcell runs of one sorting: two results (or Kilosort) folders, or a folder and a parameter
    file (the dock's `Save…` output, a Bombcell parameter parquet, SpikeInterface thresholds JSON), which is
    then applied to the folder's metrics as a what-if. Labels are judged as `explain` judges them: by the run's
    own classifier where it runs here (Python Bombcell, SpikeInterface), else by the rule table."""
    path_a, path_b = Path(run_a), Path(run_b)
    if _is_param_file(path_a) and _is_param_file(path_b):
        raise CompareError("compare needs at least one results folder (the metrics come from it); got two "
                           "parameter files")
    notes: list[str] = []
    if _is_param_file(path_a):  # keep the folder as the base, but report in the order given
        results = open_run(path_b)
        params = read_param_file(path_a)
        eb = explain(results)
        ea = explain(results, overrides=params)
        notes.append(f"A is a parameter file: the metrics of {results.folder} labelled with its parameters")
        return compare_explanations(ea, eb, str(path_a), str(results.folder), {**results.params, **params},
                                    results.params, notes)
    results_a = open_run(path_a)
    ea = explain(results_a)
    if _is_param_file(path_b):
        params = read_param_file(path_b)
        eb = explain(results_a, overrides=params)
        notes.append(f"B is a parameter file: the metrics of {results_a.folder} labelled with its parameters")
        return compare_explanations(ea, eb, str(results_a.folder), str(path_b), results_a.params,
                                    {**results_a.params, **params}, notes)
    results_b = open_run(path_b)
    eb = explain(results_b)
    if results_a.folder.resolve() == results_b.folder.resolve():
        notes.append("A and B are the same results folder")
    check_one_sorting(results_a, results_b)
    return compare_explanations(ea, eb, str(results_a.folder), str(results_b.folder), results_a.params,
                                results_b.params, notes)
