"""Audit many Kilosort folders at once, compare two Bombcell runs, write a methods paragraph.

    >>> from phy_bcreason.audit import discover, run_audit
    >>> audit = run_audit(discover(["/data/session1"]), jobs=2)
    >>> audit.units      # one row per unit of every folder (folder, run, cluster_id, label, reason, decisive...)
    >>> audit.rules      # one row per unit and rule (the per-folder `Explanation.long_table()`)
    >>> audit.folders    # one row per folder: units per label, per decisive rule, near a threshold, or the error

Every folder is explained by the same engine as `explain_folder` (`api.explain`, with the run's own classifier
judging), in parallel over folders with joblib (``jobs``; ``backend="dask"`` runs the same jobs on a Dask
cluster). A folder that cannot be read is one row with its error and the audit goes on. Nothing is written into
the data folders: `write_audit` writes into the output folder only.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import DECISIVE, EMPTY_LABEL, Explanation
from ..core.errors import UserError, first_line
from ..core.judge import explain, installed_bombcell_version
from ..core.rules import CLASSIFIER_TITLES, MUA, NOISE, NONSOMATIC, PYTHON
from ..io.find import CONVENTIONAL_DIRS, find_bombcell_dir, holds_results, load_results
from ..io.parquet import read_tables
from ..io.results import BombcellResultsError

NEAR = 0.1  # "near a threshold": the comparison nearest to changing the label is within 10% of its threshold
KILOSORT_FILES = ("params.py", "spike_clusters.npy", "spike_templates.npy")
SKIPPED_DIRS = (".phy", "__pycache__")
UNITS_FILE, RULES_FILE, FOLDERS_FILE, REPORT_FILE = "units.tsv", "rules.tsv", "folders.tsv", "report.html"
OK, UNREADABLE = "ok", "unreadable"


class AuditError(UserError):
    """A problem with what the user asked for (a root that is no folder, an output inside the data); one line."""


# -- discovery ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One Bombcell run to audit: its Kilosort folder, its results folder, and how the report names them."""

    ks_dir: Path
    results_dir: Path
    folder: str  # the Kilosort folder relative to its root
    run: str     # the results folder relative to the Kilosort folder ('bombcell', 'bombcell_np2', '../bombcell')


def _looks_like_kilosort(folder: Path) -> bool:
    return any((folder / name).is_file() for name in KILOSORT_FILES)


def kilosort_dir_of(results_dir: Path) -> Path:
    """The Kilosort folder a results folder belongs to: its parent (results inside the Kilosort folder, as
    `find_bombcell_dir` finds them), or a `sorter_output/` beside it (SpikeInterface's layout)."""
    parent = results_dir.parent
    if not _looks_like_kilosort(parent) and results_dir.name in CONVENTIONAL_DIRS \
            and _looks_like_kilosort(parent / "sorter_output"):
        return parent / "sorter_output"
    return parent


def _name(path: Path, root: Path, prefix: str) -> str:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:  # above the root (the root is a results folder itself)
        return prefix + path.name
    return prefix + (rel if rel != "." else root.name)


def discover(roots) -> list[Target]:
    """Every Bombcell run under ``roots``, at any depth: each folder holding Bombcell's results (its metrics
    table, or SpikeInterface's wide labelling table) is one run of the Kilosort folder it sits in (or of the
    `sorter_output/` beside it). Hidden folders, Phy's `.phy` cache and the inside of results folders are not
    searched. Every results folder is one target, so a Kilosort folder with a default and a re-run
    (`bombcell/`, `bombcell_np2/`) is audited twice; the one `find_bombcell_dir` picks comes first."""
    roots = [Path(r).absolute() for r in roots]
    for root in roots:
        if not root.is_dir():
            raise AuditError(f"{root}: not a folder")
    targets: dict[Path, Target] = {}
    for root in roots:
        prefix = f"{root.name}/" if len(roots) > 1 else ""
        for dirpath, dirnames, _ in os.walk(root):
            here = Path(dirpath)
            if holds_results(here):
                dirnames[:] = []  # for_GUI/ and the like: nothing to find inside a results folder
                key = here.resolve()
                if key not in targets:
                    ks_dir = kilosort_dir_of(here)
                    targets[key] = Target(ks_dir, here, _name(ks_dir, root, prefix),
                                          os.path.relpath(here, ks_dir).replace(os.sep, "/"))
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)

    def order(target: Target):
        try:
            default = find_bombcell_dir(target.ks_dir).resolve() == target.results_dir.resolve()
        except BombcellResultsError:
            default = False
        return target.folder, not default, target.run

    return sorted(targets.values(), key=order)


# -- one folder -----------------------------------------------------------------------------------------------

@dataclass
class FolderAudit:
    target: Target
    explanation: Explanation | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.explanation is not None


def _one_line(exc: BaseException) -> str:
    return first_line(exc, typed=not isinstance(exc, BombcellResultsError | CompareError))


def audit_folder(target: Target, live: bool = False, check: bool = True) -> FolderAudit:
    """Explain one run as `explain_folder(target.ks_dir, target.results_dir)` does; never raises."""
    start = time.perf_counter()
    try:
        results = load_results(target.results_dir, ks_dir=target.ks_dir)
        if live:
            from ..live.metrics import with_live_rows

            results = with_live_rows(results, target.ks_dir)
        explanation = explain(results, check=check)
        return FolderAudit(target, explanation, seconds=time.perf_counter() - start)
    except Exception as exc:  # one folder must not stop the audit
        return FolderAudit(target, error=_one_line(exc), seconds=time.perf_counter() - start)


def rule_names(explanation: Explanation) -> np.ndarray:
    return np.array([rule.name for rule in explanation.rules], dtype=object)


def nearest_rules(explanation: Explanation) -> np.ndarray:
    """Per unit, the rule whose margin is the unit's flip margin (the comparison nearest to changing its label)."""
    names = rule_names(explanation)
    out = np.full(len(explanation.labels), "", dtype=object)
    flips = explanation.flip_margins
    for row in np.flatnonzero(np.isfinite(flips)):
        hits = np.flatnonzero(explanation.margins[row] == flips[row])
        if len(hits):
            out[row] = names[hits[0]]
    return out


def units_table(explanation: Explanation, folder: str = "", run: str = "") -> pd.DataFrame:
    """One row per unit: `Explanation.table()` plus the decisive rules ('; '-joined, in rule-table order), the
    rule nearest to changing the label, whether a judge flagged it, and the classifier."""
    table = explanation.table().reset_index()
    names = rule_names(explanation)
    decisive = explanation.status == DECISIVE
    table["decisive"] = ["; ".join(names[row]) for row in decisive]
    table["nearest_rule"] = nearest_rules(explanation)
    table["flagged"] = explanation.flagged.astype(bool)
    table["classifier"] = explanation.classifier
    table.insert(0, "run", run)
    table.insert(0, "folder", folder)
    return table


def rules_table(explanation: Explanation, folder: str = "", run: str = "") -> pd.DataFrame:
    table = explanation.long_table()
    table.insert(0, "run", run)
    table.insert(0, "folder", folder)
    return table


REPORT_LABEL_ORDER = ("GOOD", "MUA", "NON-SOMA", "NON-SOMA GOOD", "NON-SOMA MUA", "NOISE", "(empty)", EMPTY_LABEL)


def label_order(labels) -> list[str]:
    known = [label for label in REPORT_LABEL_ORDER if label in set(labels)]
    return known + sorted(set(labels) - set(known))


def folder_summary(result: FolderAudit) -> dict:
    target = result.target
    row = {"folder": target.folder, "run": target.run, "status": OK if result.ok else UNREADABLE,
           "error": result.error or "", "ks_dir": str(target.ks_dir), "results_dir": str(target.results_dir)}
    if not result.ok:
        return row
    e = result.explanation
    labels = pd.Series(e.labels).replace(EMPTY_LABEL, "(empty)")
    decisive = (e.status == DECISIVE).sum(axis=0)
    flips = e.flip_margins
    row |= {"classifier": e.classifier, "units": len(e.labels),
            "near_threshold": int(np.sum(np.abs(flips[np.isfinite(flips)]) <= NEAR)),
            "flagged": int(e.flagged.sum()), "notes": len(e.notes)}
    row |= {f"label:{label}": int(n) for label, n in labels.value_counts().items()}
    row |= {f"decisive:{name}": int(n) for name, n in zip(rule_names(e), decisive) if n}
    return row


# -- many folders ---------------------------------------------------------------------------------------------

@dataclass
class Audit:
    results: list[FolderAudit]
    seconds: float = 0.0
    jobs: int = 1
    backend: str = "loky"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> list[FolderAudit]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[FolderAudit]:
        return [r for r in self.results if not r.ok]

    @cached_property
    def units(self) -> pd.DataFrame:
        tables = [units_table(r.explanation, r.target.folder, r.target.run) for r in self.ok]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
            columns=["folder", "run", "cluster_id", "label", "reason", "n_decisive", "margin", "decisive",
                     "nearest_rule", "flagged", "classifier"])

    @cached_property
    def rules(self) -> pd.DataFrame:
        tables = [rules_table(r.explanation, r.target.folder, r.target.run) for r in self.ok]
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()

    @cached_property
    def folders(self) -> pd.DataFrame:
        table = pd.DataFrame([folder_summary(r) for r in self.results])
        counts = [c for c in table.columns if c.startswith(("label:", "decisive:"))]
        labels = [c for c in counts if c.startswith("label:")]
        labels = [f"label:{name}" for name in label_order([c[6:] for c in labels])]
        decisive = sorted((c for c in counts if c.startswith("decisive:")), key=lambda c: -table[c].fillna(0).sum())
        ok = table["status"] == OK
        table[counts] = table[counts].astype("Int64")
        table.loc[ok, counts] = table.loc[ok, counts].fillna(0)
        for column in ("units", "near_threshold", "flagged", "notes"):
            if column in table:
                table[column] = table[column].astype("Int64")
        front = [c for c in ("folder", "run", "status", "classifier", "units") if c in table]
        back = [c for c in ("near_threshold", "flagged", "notes", "error", "ks_dir", "results_dir") if c in table]
        return table[front + labels + back + decisive]


def _progress(done: int, total: int, started: float, stream) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} folders  {rate:.1f}/s")
    if done == total:
        stream.write("\n")
    stream.flush()


def run_audit(targets: list[Target], jobs: int = 1, *, live: bool = False, check: bool = True,
              backend: str | None = None, progress=None) -> Audit:
    """Audit every target, ``jobs`` at a time with joblib (``backend='dask'`` with a `dask.distributed.Client`
    connected: on its cluster). ``progress`` is a stream for a progress bar (None: none)."""
    from joblib import Parallel, delayed, parallel_config

    started = time.perf_counter()
    results: list[FolderAudit] = []
    if progress is not None and targets:
        _progress(0, len(targets), started, progress)
    name = backend or ("sequential" if jobs == 1 else "loky")
    n_jobs = {"sequential": 1, "dask": -1}.get(name, jobs)  # on Dask, the cluster's workers decide
    with parallel_config(backend=name, n_jobs=n_jobs):
        tasks = (delayed(audit_folder)(target, live, check) for target in targets)
        for result in Parallel(return_as="generator")(tasks):
            results.append(result)
            if progress is not None:
                _progress(len(results), len(targets), started, progress)
    return Audit(results, time.perf_counter() - started, jobs, name)


# -- writing --------------------------------------------------------------------------------------------------

def check_outside(out: Path, targets: list[Target], roots=()) -> None:
    """The output folder must not be inside a data folder (a Kilosort or results folder, or a root)."""
    out = Path(out).resolve()
    for folder in [*(t.ks_dir for t in targets), *(t.results_dir for t in targets), *map(Path, roots)]:
        folder = Path(folder).resolve()
        if out == folder or folder in out.parents:
            raise AuditError(f"--out {out}: inside the data folder {folder}; the audit writes nothing into the data "
                             "folders, choose an output folder outside them")


def write_audit(audit: Audit, out: Path, report: bool = True, title: str = "Bombcell audit", comparisons=()
                ) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in ((UNITS_FILE, audit.units), (RULES_FILE, audit.rules), (FOLDERS_FILE, audit.folders)):
        table.to_csv(out / name, sep="\t", index=False)
        written.append(out / name)
    if report:
        from .report import audit_html

        (out / REPORT_FILE).write_text(audit_html(audit, title=title, comparisons=comparisons), encoding="utf-8")
        written.append(out / REPORT_FILE)
    return written


def summary_lines(audit: Audit) -> list[str]:
    """The terminal's table: one line per folder (units per label, near a threshold, the top decisive rule),
    one line per unreadable folder."""
    folders = audit.folders
    labels = [c for c in folders.columns if c.startswith("label:")]
    decisive = [c for c in folders.columns if c.startswith("decisive:")]
    headers = ["folder", "run", "units", *(c[6:] for c in labels), "near", "top decisive rule"]
    rows = []
    for _, row in folders.iterrows():
        if row["status"] != OK:
            continue
        top = max(decisive, key=lambda c: row[c], default=None)
        top_text = f"{top[9:]} ({row[top]})" if top and row[top] else "-"
        rows.append([row["folder"], row["run"], str(row["units"]), *(str(row[c]) for c in labels),
                     str(row["near_threshold"]), top_text])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in (0, 1, len(cells) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(headers)] + [fmt(r) for r in rows] if rows else []
    for result in audit.failed:
        lines.append(f"{result.target.folder} [{result.target.run}]: UNREADABLE: {result.error}")
    n_units = sum(len(r.explanation.labels) for r in audit.ok)
    rate = len(audit.results) / audit.seconds if audit.seconds > 0 else float("nan")
    lines.append(f"{len(audit.ok)} of {len(audit.results)} runs audited ({n_units} units), "
                 f"{len(audit.failed)} unreadable, in {audit.seconds:.1f} s ({rate:.1f} runs/s, "
                 f"{audit.jobs} job{'s' if audit.jobs != 1 else ''}, {audit.backend})")
    return lines


# -- compare two runs -----------------------------------------------------------------------------------------

class CompareError(UserError):
    """A run that cannot be compared; one line."""


def _is_param_file(path: Path) -> bool:
    return path.is_file() and path.suffix in (".parquet", ".json", ".csv")


def read_param_file(path: Path) -> dict:
    """A parameter file: Bombcell's one-row parameter parquet (or the dock's `Save…` what-if copy), its CSV, or
    SpikeInterface's thresholds JSON (flattened to the rule table's names)."""
    try:
        if path.suffix == ".json":
            from ..core.rules import flatten_thresholds

            return flatten_thresholds(json.loads(path.read_text(encoding="utf-8")))
        table = read_tables([path])[0] if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        table = _one_line(exc)
    if isinstance(table, str):
        raise CompareError(f"{path}: cannot read as a parameter file ({table})")
    if len(table) != 1:
        raise CompareError(f"{path}: a parameter file has one row, this one has {len(table)}")
    return table.iloc[0].to_dict()


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


# -- methods paragraph ----------------------------------------------------------------------------------------

# Units of Bombcell's thresholds where they have one (ratios, fractions and counts of their own kind have none).
THRESHOLD_UNITS = {
    "maxNPeaks": "peaks", "maxNTroughs": "troughs", "minWvDuration": "µs", "maxWvDuration": "µs",
    "minSpatialDecaySlopeExp": "1/µm", "maxSpatialDecaySlopeExp": "1/µm",
    "minWidthFirstPeak_nonSomatic": "samples", "minWidthMainTrough_nonSomatic": "samples",
    "maxPercSpikesMissing": "%", "minNumSpikes": "spikes", "minAmplitude": "µV", "maxDrift": "µm",
}
LEADS = {NOISE: "A unit was labelled noise when", NONSOMATIC: "A unit was labelled non-somatic when",
         MUA: "A unit that was not noise was labelled MUA when"}


def _condition(e: Explanation, j: int) -> str:
    rule = e.rules[j]
    metric = f"|{rule.metric}|" if rule.absolute else rule.metric
    if rule.op == "isnan":
        return f"{metric} could not be computed (NaN)"
    unit = THRESHOLD_UNITS.get(rule.param, "")
    value = f"{e.thresholds[j]:g}" if np.isfinite(e.thresholds[j]) else "(unset)"
    return f"{metric} was {'above' if rule.op == '>' else 'below'} {value}{' ' + unit if unit else ''} ({rule.param})"


def _block_conditions(e: Explanation, block: str) -> list[str]:
    """The active comparisons of one block in words; a group (all of it must hold) as one condition, its
    members sharing an ``any_of`` tag as alternatives."""
    parts, groups = [], {}
    for j, rule in enumerate(e.rules):
        if rule.block != block or j in e.inactive:
            continue
        if rule.group:
            groups.setdefault(rule.group, {}).setdefault(rule.any_of or j, []).append(_condition(e, j))
            if len(groups[rule.group]) == 1 and len(groups[rule.group][rule.any_of or j]) == 1:
                parts.append(("group", rule.group))
        else:
            parts.append(_condition(e, j))
    out = []
    for part in parts:
        if isinstance(part, tuple):
            conditions = [" or ".join(alternatives) for alternatives in groups[part[1]].values()]
            out.append(f"all of ({'; '.join(conditions)})" if len(conditions) > 1 else conditions[0])
        else:
            out.append(part)
    return out


def methods_paragraph(explanation: Explanation) -> str:
    """A methods paragraph: the classifier and how it was recognised (and the Bombcell installed here), every
    active threshold with its value and unit, the switches, and how many units each label got."""
    from ..core.rules import switches_for

    e = explanation
    version = installed_bombcell_version()
    title = CLASSIFIER_TITLES[e.classifier]
    evidence = e.classified_by.removeprefix(title).lstrip(", ") or "recognised from the results"
    installed = f"; Bombcell {version} was installed when phy-bcreason read them" \
        if version and e.classifier == PYTHON else ""
    sentences = [f"Units were classified by {title} ({evidence}{installed})."]
    for block in (NOISE, NONSOMATIC, MUA):
        conditions = _block_conditions(e, block)
        if conditions:
            joiner = "; or when " if block == NONSOMATIC else ", or "
            sentences.append(f"{LEADS[block]} {joiner.join(conditions)}.")
    inactive = sorted({e.rules[j].name for j in e.inactive})
    if inactive:
        sentences.append(f"Not applied with these settings: {', '.join(inactive)}.")
    switches = [name for name in switches_for(e.classifier, e.rules) if name in e.params]
    if switches:
        sentences.append("Switches: " + ", ".join(f"{name} {'on' if _switch(e.params[name]) else 'off'}"
                                                   for name in switches) + ".")
    counts = Counter(str(label) or "(no label: no spikes)" for label in e.labels)
    counted = ", ".join(f"{counts[label]} {label}" for label in label_order(list(counts)))
    sentences.append(f"Of {len(e.labels)} units, {counted}.")
    if e.flagged.any():
        sentences.append(f"For {int(e.flagged.sum())} units the saved label differs from what these rules give; "
                         "the saved label is reported.")
    return " ".join(sentences)


def _switch(value) -> bool:
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def methods_for_folder(ks_dir: Path, bombcell_dir: Path | None = None) -> str:
    folder = Path(ks_dir)
    if folder.is_dir() and holds_results(folder) and bombcell_dir is None:
        results = load_results(folder, ks_dir=kilosort_dir_of(folder))
    else:
        results = load_results(find_bombcell_dir(folder, bombcell_dir), ks_dir=folder)
    return methods_paragraph(explain(results))


def print_progress_stream():
    """stderr when it is a terminal (the progress bar), else None."""
    return sys.stderr if sys.stderr.isatty() else None
