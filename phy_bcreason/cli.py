"""`phy-bcreason`: explain, export and summarise Bombcell labels from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from . import install
from ._version import __version__
from .core.engine import STATUS_NAMES, Explanation, margin_text
from .core.errors import UserError
from .core.judge import explain
from .core.rules import MATLAB, PYTHON
from .io.find import find_bombcell_dir, load_results
from .io.results import BombcellResultsError
from .live.metrics import with_live_rows
from .live.recording import LiveMetricsError
from .quiet import bombcell_output_to_log
from .tuning.whatif import WhatIfError, describe_overrides, editable, label_changes, parse_settings
from .unitrefine.opinion import UnitRefineError, contribution_text, find_opinion
from .unitrefine.text import three_text, unitrefine_text

REASON_COLUMN = "bc_classificationReason"
REASON_FILE = f"cluster_{REASON_COLUMN}.tsv"
AUDIT_FILE = "phy_bcreason_audit.tsv"


class UsageError(UserError):
    """A problem with what the user asked for; one line, exit status 2."""


def format_comparison(c: dict) -> str:
    """'fractionRPVs_estimatedTauR 0.31 > maxRPVviolations 0.1 (margin -2.1)' for one comparison dict."""
    if c["op"] == "isnan":
        return f"{c['metric']} is NaN"
    value = "NaN" if c["value"] is None else f"{c['value']:.4g}"
    threshold = "NaN" if c["threshold"] is None else f"{c['threshold']:.4g}"
    margin = "" if c["margin"] is None else f"  (margin {margin_text(c['margin'])})"
    return f"{c['metric']} {value} {c['op']} {c['param']} {threshold}{margin}"


def _selected_ids(explanation: Explanation, cluster_ids: list[int] | None) -> list[int]:
    if not cluster_ids:
        return [int(i) for i in explanation.cluster_ids]
    known = set(explanation.cluster_ids.tolist())
    unknown = [i for i in cluster_ids if i not in known]
    if unknown:
        raise UsageError(f"cluster(s) {', '.join(map(str, unknown))}: no row in {explanation.source}")
    return cluster_ids


def explain_text(explanation: Explanation, cluster_ids: list[int], opinion=None) -> str:
    lines = []
    for cluster_id in cluster_ids:
        unit = explanation.unit(cluster_id)
        lines.append(f"cluster {cluster_id}: {unit['label'] or '(empty)'}  |  {unit['reason']}")
        summary = opinion.summary(cluster_id, unit["label"]) if opinion is not None else None
        if summary is not None:
            agrees = {True: "agrees with Bombcell", False: "disagrees with Bombcell", None: "not compared"}
            top = "; ".join(contribution_text(c) for c in opinion.units[cluster_id].top(3))
            lines.append(f"    UnitRefine {summary['model']}: {summary['label']} "
                         f"({opinion.units[cluster_id].confidence:.2f}), "
                         f"{agrees[summary['agrees']]}{': ' + top if top else ''}")
        for c in unit["decisive"]:
            lines.append(f"    decided: {format_comparison(c)}")
        for c in unit["also_failed"]:
            lines.append(f"    also fails: {format_comparison(c)}")
        for c in unit["threshold_missing"]:
            lines.append(f"    threshold missing: {c['metric']} {c['op']} {c['param']} ({c['param']} is not in the "
                         "parameter file)")
    return "\n".join(lines)


def summary_text(explanation: Explanation) -> str:
    table = explanation.table()
    lines = [f"{len(table)} units, Bombcell results in {explanation.source}",
             f"Classifier: {explanation.classified_by}", "", "Units per label:"]
    for label, count in table["label"].replace("", "(empty)").value_counts().items():
        lines.append(f"  {label:<15} {count:>6}")
    if explanation.flagged.any():
        lines += ["", f"Flagged (the {explanation.classifier} rules give another label than Bombcell's): "
                      f"{int(explanation.flagged.sum())}"]
    if explanation.undetermined.any():
        lines += ["", f"Labels that depend on a missing threshold ({', '.join(explanation.missing_thresholds)}): "
                      f"{int(explanation.undetermined.sum())}"]
    lines += ["", "Units per decisive rule (a unit can count under several):"]
    decisive = explanation.status == STATUS_NAMES.index("decisive")
    counts = decisive.sum(axis=0)
    for j in np.argsort(-counts, kind="stable"):
        if counts[j]:
            rule = explanation.rules[j]
            lines.append(f"  {rule.block:<11} {rule.name:<60} {counts[j]:>6}")
    return "\n".join(lines)


def export(explanation: Explanation, ks_dir: Path) -> list[Path]:
    """Write the reason column for Phy into the Kilosort folder and the audit table into the Bombcell one."""
    reason_path = Path(ks_dir) / REASON_FILE
    audit_path = Path(explanation.source) / AUDIT_FILE
    reasons = pd.DataFrame({"cluster_id": explanation.cluster_ids, REASON_COLUMN: explanation.reasons})
    for path, table in ((reason_path, reasons), (audit_path, explanation.long_table())):
        try:
            table.to_csv(path, sep="\t", index=False, encoding="utf-8", lineterminator="\n")
        except OSError as exc:
            raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return [reason_path, audit_path]


def concordance_output(results, explanation: Explanation, args) -> str:
    from .tuning.concordance import concordance, read_groups, suggest, suggest_jointly

    path = args.labels or Path(args.ks_dir) / "cluster_group.tsv"
    if not path.is_file():
        raise UsageError(f"{path}: file not found (label clusters good/mua/noise in Phy and save, or pass --labels)")
    groups = read_groups(path)
    if not groups:
        raise UsageError(f"{path}: no cluster labelled good, mua or noise")
    result = concordance(explanation, groups)
    singles = suggest(explanation, groups)
    joint = suggest_jointly(results, groups)
    opinion = opinion_for(args)
    three = None
    if opinion is not None:
        from .tuning.concordance import three_way

        three = three_way(explanation, groups, opinion)
    if args.json:
        return json.dumps({
            "labelled": len(result.user), "agree": result.agree, "table": result.table.to_dict(),
            "disagreements": result.disagreements,
            "suggestions": [{**vars(s), "net": s.net} for s in singles],
            "joint": vars(joint),
        } | ({} if three is None else {"unitrefine_model": opinion.model_name, "three_way": [
            {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
            for row in three.to_dict(orient="records")]}))
    lines = [f"{result.agree} of {len(result.user)} labelled clusters agree with Bombcell ({path.name})", "",
             "Bombcell (rows) against your labels (columns):", result.table.to_string(), ""]
    lines += [f"cluster {d['cluster_id']}: you {d['user']}, Bombcell {d['label']}: {', '.join(d['rules'])}"
              for d in result.disagreements]
    lines += ["", "One threshold at a time (the others held; checked by the same rules):"]
    for s in singles:
        moves = "; ".join(f"{move}: cluster {', '.join(str(c) for c, m in s.flipped.items() if m == move)}"
                          for move in s.flips)
        lines.append(f"  {s.param} {s.current:g} -> {s.suggested:g}: agree {s.agree_before} -> {s.agree_after} of "
                     f"{s.n_labelled}; flips over all units: {moves}")
    if not singles:
        lines.append("  none agrees better")
    moved = ", ".join(f"{k} {explanation.params[k]:g} -> {v:g}" for k, v in joint.overrides.items()) or "none"
    lines += ["", f"Together: {moved}: agree {joint.agree_before} -> {joint.agree_after} of {joint.n_labelled}; "
                  f"on labels held out of the fit {joint.held_out_before:.0%} -> {joint.held_out_after:.0%}",
              "Try one: phy-bcreason summary KS_DIR --set NAME=VALUE, or the what-if in Phy's dock."]
    if three is not None:
        n = int((three["model_agrees"] == False).sum())  # noqa: E712 (None: not compared)
        lines += ["", f"You, Bombcell and UnitRefine's {opinion.model_name} ({n} cluster(s) where Bombcell and the "
                      "model disagree, first; model_agrees empty: the model was not asked):",
                  three_text(three)]
    return "\n".join(lines)


def opinion_for(args, *, contributions: bool | None = None):
    """UnitRefine's opinion for the command's folder, or None. With --model a problem is an error (exit 2);
    without, a note, and the command goes on."""
    model = getattr(args, "model", None)
    try:
        return find_opinion(args.ks_dir, model, contributions=model is not None if contributions is None
                            else contributions, analyzer_dir=getattr(args, "analyzer", None))
    except UnitRefineError as exc:
        if model is not None:
            raise
        print(f"note: UnitRefine's predictions not used: {exc}", file=sys.stderr)
        return None


def bombcell_labels(args) -> dict[int, str] | None:
    """Bombcell's label per cluster, for the agreement column; None (with a note) when its results cannot be read."""
    try:
        results = load_results(find_bombcell_dir(args.ks_dir, getattr(args, "bombcell_dir", None)), ks_dir=args.ks_dir)
        explanation = explain(results)
    except BombcellResultsError as exc:
        print(f"note: no agreement with Bombcell: {exc}", file=sys.stderr)
        return None
    return {int(c): str(label) for c, label in zip(explanation.cluster_ids, explanation.labels)}


def run_unitrefine(args) -> int:
    import contextlib

    if args.top < 0:
        raise UsageError(f"--top {args.top}: give 0 or more")
    if args.child is not None:
        from .io.children import end_when_parent_ends, lower_priority

        lower_priority(args.child)
        end_when_parent_ends(sys.stdin.buffer)
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds only the table or the JSON (the GUI reads it)
        opinion = find_opinion(args.ks_dir, args.model, contributions=args.model is not None,
                               analyzer_dir=args.analyzer)
        if opinion is None:
            raise UsageError(f"{args.ks_dir}: no UnitRefine predictions (*__labels_from_*.csv, cluster_prediction.tsv)"
                             " in it, its parent or unitrefine_predictions/ in either: name a model folder with "
                             "--model DIR")
        bombcell = None if args.json else bombcell_labels(args)
    for note in opinion.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(opinion.to_json(), allow_nan=False))
    else:
        print(unitrefine_text(opinion, bombcell, args.top))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phy-bcreason", description=__doc__)
    parser.add_argument("--version", action="version", version=f"phy-bcreason {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_folder_args(p):
        p.add_argument("ks_dir", type=Path, help="Kilosort output folder")
        p.add_argument("--bombcell-dir", type=Path, default=None,
                       help="Bombcell results folder (default: found next to the Kilosort output)")
        p.add_argument("--classifier", choices=(PYTHON, MATLAB), default=None,
                       help="whose rules labelled Bombcell's own results: Python or MATLAB Bombcell (default: "
                            "recognised from the parameter and metric names; SpikeInterface's results are "
                            "recognised by their files)")
        p.add_argument("--live", action="store_true",
                       help="also explain clusters Bombcell's results lack (merged or split in Phy since), with "
                            "metrics recomputed by Bombcell's own functions")

    def add_set_arg(p):
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="what-if: use this threshold or switch instead of the saved one (repeatable)")

    def add_model_arg(p):
        p.add_argument("--model", type=Path, default=None, metavar="DIR",
                       help="a UnitRefine model folder (best_model.skops and model_info.json), applied to the "
                            "SortingAnalyzer beside the folder with SpikeInterface's model_based_label_units "
                            "(default: UnitRefine's predictions saved beside the folder, if any)")

    p = sub.add_parser("explain", help="label, reason and failing comparisons per cluster")
    add_folder_args(p)
    add_set_arg(p)
    add_model_arg(p)
    p.add_argument("--cluster", type=int, nargs="+", default=None, help="only these cluster ids")
    p.add_argument("--json", action="store_true", help="print one JSON array, one object per cluster")
    p.add_argument("--figure", type=Path, default=None, metavar="FILE",
                   help="with one --cluster: also write the dock's pictures of what Bombcell measured (PNG)")

    p = sub.add_parser("export", help="write cluster_bc_classificationReason.tsv and an audit table")
    add_folder_args(p)

    p = sub.add_parser("summary", help="units per label and per decisive rule")
    add_folder_args(p)
    add_set_arg(p)

    p = sub.add_parser("concordance", help="your Phy labels against Bombcell's: agreement, the rules behind each "
                                           "disagreement, and thresholds that would agree better")
    add_folder_args(p)
    p.add_argument("--labels", type=Path, default=None, metavar="FILE",
                   help="a TSV with cluster_id and group (good/mua/noise), like Phy's cluster_group.tsv "
                        "(default: the folder's own cluster_group.tsv)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_arg(p)

    p = sub.add_parser("unitrefine", help="UnitRefine's label and confidence for every cluster, whether it agrees "
                                          "with Bombcell's, and the metrics that pushed the model there")
    p.add_argument("ks_dir", type=Path, help="Phy (Kilosort or export_to_phy) folder")
    add_model_arg(p)
    p.add_argument("--analyzer", type=Path, default=None, metavar="DIR",
                   help="the SortingAnalyzer folder of this sorting (default: found beside the Phy folder)")
    p.add_argument("--bombcell-dir", type=Path, default=None, help="Bombcell results folder (for the agreement)")
    p.add_argument("--json", action="store_true", help="print one JSON object (the opinion, with contributions)")
    p.add_argument("--top", type=int, default=3, metavar="N", help="contributions shown per cluster (default 3)")
    # started by the plugin (gui/second_judge.py): the niceness to run at; it ends when Phy does
    p.add_argument("--child", type=int, default=None, metavar="NICE", help=argparse.SUPPRESS)

    p = sub.add_parser("demo", help="open Phy on the bundled demo dataset with the plugin attached")
    p.add_argument("--screenshot", type=Path, default=None, metavar="FILE",
                   help="save the window as a PNG and exit")
    add_audit_parsers(sub)

    p = sub.add_parser("install-plugin", help="register the plugin in Phy's config (~/.phy), keeping the rest")
    install.add_arguments(p)
    p = sub.add_parser("uninstall-plugin", help="remove the plugin from Phy's config, as it was before")
    install.add_arguments(p)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.screenshot)
    if args.command in ("install-plugin", "uninstall-plugin"):
        return install.run(args.command == "uninstall-plugin", args.config_dir, args.dry_run)
    if args.command in AUDIT_COMMANDS:
        return run_audit_command(args)
    if args.command == "unitrefine":
        return run_unitrefine(args)
    results = load_results(find_bombcell_dir(args.ks_dir, args.bombcell_dir), ks_dir=args.ks_dir,
                           classifier=args.classifier)
    if args.live:
        with bombcell_output_to_log():  # Bombcell's import banner: never into our output
            results = with_live_rows(results, args.ks_dir)
    overrides = parse_settings(getattr(args, "set", []), editable(results))
    explanation = explain(results, overrides=overrides)
    ids = _selected_ids(explanation, getattr(args, "cluster", None))
    # errors before any output
    written = export(explanation, args.ks_dir) if args.command == "export" else []
    if getattr(args, "figure", None) is not None:
        written.append(write_figure_for(results, explanation, args.ks_dir, ids, args.figure))
    report = concordance_output(results, explanation, args) if args.command == "concordance" else None
    opinion = opinion_for(args) if args.command == "explain" else None
    print(f"classifier: {explanation.classified_by}", file=sys.stderr)
    for note in explanation.notes:
        print(f"note: {note}", file=sys.stderr)
    if overrides:
        changes, _ = label_changes(explain(results, check=False), explanation)
        print(f"what-if: {describe_overrides(results.params, overrides)}: {changes}",
              file=sys.stdout if args.command == "summary" else sys.stderr)
    if args.command == "explain":
        if args.json:
            units = [explanation.unit(i) for i in ids]
            if opinion is not None:
                units = [u | {"unitrefine": opinion.summary(u["cluster_id"], u["label"])} for u in units]
            print(json.dumps(units, allow_nan=False))
        else:
            print(explain_text(explanation, ids, opinion))
    elif args.command == "summary":
        print(summary_text(explanation))
    elif report is not None:
        print(report)
    for path in written:
        print(f"wrote {path}")
    return 0


def write_figure_for(results, explanation, ks_dir, cluster_ids: list[int], path: Path) -> Path:
    from .live.pictures import EvidenceError, write_figure

    if len(cluster_ids) != 1:
        raise UsageError("--figure draws one cluster: give exactly one --cluster")
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: --figure writes a PNG file (name it .png)")
    try:
        drawn = write_figure(results, explanation, ks_dir, cluster_ids[0], path)
    except EvidenceError as exc:
        raise UsageError(str(exc)) from None
    for name, panel in drawn.items():
        if panel["withheld"]:
            print(f"note: {name} not drawn: it would disagree with the table ({'; '.join(panel['withheld'])})",
                  file=sys.stderr)
    return path


AUDIT_COMMANDS = ("audit", "compare", "methods")


def add_audit_parsers(sub) -> None:
    """`audit`, `compare` and `methods` (phy_bcreason.batch)."""
    p = sub.add_parser("audit", help="explain every Bombcell run under one or more folders: tables and an HTML report")
    p.add_argument("roots", type=Path, nargs="+", metavar="ROOT", help="folders to search, at any depth")
    p.add_argument("--out", type=Path, default=Path("phy-bcreason-audit"),
                   help="output folder (default ./phy-bcreason-audit); never inside the data folders")
    p.add_argument("--jobs", type=int, default=1, help="folders explained in parallel (joblib; -1: every core)")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="run the jobs on this Dask scheduler (e.g. tcp://host:8786) through joblib's dask "
                        "backend, on every worker of the cluster (needs dask[distributed])")
    p.add_argument("--live", action="store_true", help="also explain clusters Bombcell's results lack (see explain)")
    p.add_argument("--no-report", action="store_true", help="write the tables only, no report.html")
    p.add_argument("--model", type=Path, default=None, metavar="DIR",
                   help="a UnitRefine model folder applied to each folder's SortingAnalyzer (default: the "
                        "predictions saved beside each folder, if any): ur_* columns in units.tsv")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("RUN_A", "RUN_B"),
                   help="also compare two runs in the report (repeatable)")

    p = sub.add_parser("compare", help="two Bombcell runs of one sorting: parameters and labels that differ, and why")
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="results folder, Kilosort folder or parameter file")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="results folder, Kilosort folder or parameter file "
                                                             "(e.g. the dock's _bc_parameters.whatif-*.parquet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--html", type=Path, default=None, metavar="FILE", help="also write the comparison as HTML")

    p = sub.add_parser("methods", help="a methods paragraph: classifier, thresholds, switches, label counts")
    p.add_argument("ks_dir", type=Path, help="Kilosort folder (or its Bombcell results folder)")
    p.add_argument("--bombcell-dir", type=Path, default=None, help="Bombcell results folder")


def run_audit_command(args: argparse.Namespace) -> int:
    from .batch import audit, compare, methods, report

    try:
        if args.command == "methods":
            print(methods.methods_for_folder(args.ks_dir, args.bombcell_dir))
            return 0
        if args.command == "compare":
            comparison = compare.compare_runs(args.run_a, args.run_b)
            if args.html:
                from .batch.report import comparison_html, page

                args.html.write_text(page("Bombcell runs compared", comparison_html(comparison)), encoding="utf-8",
                                     newline="\n")
            print(json.dumps(comparison.to_dict(), allow_nan=False, default=str) if args.json else comparison.text())
            if args.html:
                print(f"wrote {args.html}", file=sys.stderr)
            return 0
        targets = audit.discover(args.roots)
        audit.check_outside(args.out, targets, args.roots)
        if not targets:
            raise UsageError(f"no Bombcell results under {', '.join(map(str, args.roots))}")
        backend = None
        if args.dask_scheduler:
            try:
                from dask.distributed import Client
            except ImportError:
                raise UsageError("--dask-scheduler needs dask.distributed: pip install \"dask[distributed]\"") from None

            client = Client(args.dask_scheduler)
            backend = "dask"
        try:
            result = audit.run_audit(targets, args.jobs, live=args.live, backend=backend, model_dir=args.model,
                                     progress=sys.stderr if sys.stderr.isatty() and len(targets) > 1 else None)
        finally:
            if args.dask_scheduler:
                client.close()
        comparisons = [compare.compare_runs(a, b) for a, b in args.compare]
        written = report.write_audit(result, args.out, report=not args.no_report, comparisons=comparisons)
        print("\n".join(audit.summary_lines(result)))
        for path in written:
            print(f"wrote {path}")
        return 0
    except (audit.AuditError, compare.CompareError) as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    install.console_safe()   # never a UnicodeEncodeError on the console's code page
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (BombcellResultsError, LiveMetricsError, UsageError, WhatIfError, UnitRefineError) as exc:
        print(f"phy-bcreason: {exc}", file=sys.stderr)
        return 2
