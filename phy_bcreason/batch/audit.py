"""Audit many Kilosort folders at once: find every Bombcell run under some folders (`discover`), explain each.

    >>> from phy_bcreason.batch.audit import discover, run_audit
    >>> audit = run_audit(discover(["/data/session1"]), jobs=2)
    >>> audit.units      # one row per unit of every folder (folder, run, cluster_id, label, reason, decisive...)
    >>> audit.rules      # one row per unit and rule (the per-folder `Explanation.long_table()`)
    >>> audit.folders    # one row per folder: units per label, per decisive rule, near a threshold, or the error

Every folder is explained by the same engine as `explain_folder` (`api.explain`, with the run's own classifier
judging), in parallel over folders with joblib (``jobs``; ``backend="dask"`` runs the same jobs on a Dask
cluster). A folder that cannot be read is one row with its error and the audit goes on. Nothing is written into
the data folders: `report.write_audit` writes into the output folder only. Comparing two runs is `compare.py`,
the methods paragraph `methods.py`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import DECISIVE, EMPTY_LABEL, Explanation
from ..core.errors import UserError
from ..core.judge import explain
from ..io.find import CONVENTIONAL_DIRS, find_bombcell_dir, holds_results, load_results
from ..io.params import _one_line
from ..io.results import BombcellResultsError

NEAR = 0.1  # "near a threshold": the comparison nearest to changing the label is within 10% of its threshold
KILOSORT_FILES = ("params.py", "spike_clusters.npy", "spike_templates.npy")
SKIPPED_DIRS = (".phy", "__pycache__")
# Windows' system folders at a drive's root (`audit D:\`), hidden without a dot: compared case-insensitively
SYSTEM_DIRS = ("$recycle.bin", "system volume information", "recycler")
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
    `sorter_output/` beside it). Hidden folders, Windows' system folders (`$RECYCLE.BIN`, `System Volume
    Information`), Phy's `.phy` cache and the inside of results folders are not searched. Every results folder
    is one target, so a Kilosort folder with a default and a re-run (`bombcell/`, `bombcell_np2/`) is audited
    twice; the one `find_bombcell_dir` picks comes first."""
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
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS
                                 and d.casefold() not in SYSTEM_DIRS)

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
    unitrefine: pd.DataFrame | None = None   # ur_* columns by cluster id, when UnitRefine's opinion is found
    unitrefine_error: str = ""

    @property
    def ok(self) -> bool:
        return self.explanation is not None


UNITREFINE_COLUMNS = ("ur_model", "ur_label", "ur_confidence", "ur_agrees", "ur_top")


def unitrefine_columns(explanation: Explanation, ks_dir: Path, model_dir: Path | None) -> pd.DataFrame | None:
    """UnitRefine's label, confidence, agreement with Bombcell's and top contributions per cluster (None when no
    opinion is found); UnitRefineError when one cannot be used."""
    from ..unitrefine.opinion import contribution_text, find_opinion

    opinion = find_opinion(ks_dir, model_dir, contributions=model_dir is not None)
    if opinion is None:
        return None
    rows = []
    for cluster_id, label in zip(explanation.cluster_ids, explanation.labels):
        unit = opinion.units.get(int(cluster_id))
        agrees = opinion.agrees(int(cluster_id), str(label))
        rows.append((opinion.model_name, unit.label if unit else "", unit.confidence if unit else np.nan,
                     "" if agrees is None else int(agrees),
                     "; ".join(contribution_text(c) for c in unit.top(3)) if unit else ""))
    return pd.DataFrame(rows, columns=list(UNITREFINE_COLUMNS),
                        index=pd.Index(explanation.cluster_ids, name="cluster_id"))


def audit_folder(target: Target, live: bool = False, check: bool = True, model_dir: Path | None = None
                 ) -> FolderAudit:
    """Explain one run as `explain_folder(target.ks_dir, target.results_dir)` does, with UnitRefine's opinion
    when one is found (``model_dir``: a model folder applied to the analyzer); never raises."""
    start = time.perf_counter()
    try:
        results = load_results(target.results_dir, ks_dir=target.ks_dir)
        if live:
            from ..live.metrics import with_live_rows

            results = with_live_rows(results, target.ks_dir)
        explanation = explain(results, check=check)
    except Exception as exc:  # one folder must not stop the audit
        return FolderAudit(target, error=_one_line(exc), seconds=time.perf_counter() - start)
    result = FolderAudit(target, explanation)
    try:
        result.unitrefine = unitrefine_columns(explanation, target.ks_dir, model_dir)
    except Exception as exc:  # UnitRefine's opinion is extra: the folder is still audited
        result.unitrefine_error = _one_line(exc)
    result.seconds = time.perf_counter() - start
    return result


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


def units_table(explanation: Explanation, folder: str = "", run: str = "", unitrefine: pd.DataFrame | None = None
                ) -> pd.DataFrame:
    """One row per unit: `Explanation.table()` plus the decisive rules ('; '-joined, in rule-table order), the
    rule nearest to changing the label, whether a judge flagged it, the classifier, and UnitRefine's columns
    (`unitrefine_columns`) when given."""
    table = explanation.table().reset_index()
    names = rule_names(explanation)
    decisive = explanation.status == DECISIVE
    table["decisive"] = ["; ".join(names[row]) for row in decisive]
    table["nearest_rule"] = nearest_rules(explanation)
    table["flagged"] = explanation.flagged.astype(bool)
    table["classifier"] = explanation.classifier
    if unitrefine is not None:
        for column in UNITREFINE_COLUMNS:
            table[column] = unitrefine[column].to_numpy()
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
           "error": result.error or "", "ks_dir": str(target.ks_dir), "results_dir": str(target.results_dir),
           "unitrefine": "" if result.unitrefine is None else str(result.unitrefine["ur_model"].iloc[0]),
           "unitrefine_error": result.unitrefine_error}
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
        tables = [units_table(r.explanation, r.target.folder, r.target.run, r.unitrefine) for r in self.ok]
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
        back = [c for c in ("near_threshold", "flagged", "notes", "error", "unitrefine", "unitrefine_error", "ks_dir",
                            "results_dir") if c in table]
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
              backend: str | None = None, progress=None, model_dir: Path | None = None) -> Audit:
    """Audit every target, ``jobs`` at a time with joblib (``backend='dask'`` with a `dask.distributed.Client`
    connected: on its cluster). ``progress`` is a stream for a progress bar (None: none). ``model_dir``: a UnitRefine
    model folder applied to each folder's analyzer (else the predictions saved beside each, if any)."""
    from joblib import Parallel, delayed, parallel_config

    started = time.perf_counter()
    results: list[FolderAudit] = []
    if progress is not None and targets:
        _progress(0, len(targets), started, progress)
    name = backend or ("sequential" if jobs == 1 else "loky")
    n_jobs = {"sequential": 1, "dask": -1}.get(name, jobs)  # on Dask, the cluster's workers decide
    with parallel_config(backend=name, n_jobs=n_jobs):
        tasks = (delayed(audit_folder)(target, live, check, model_dir) for target in targets)
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
