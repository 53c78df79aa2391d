"""What the "why?" dock shows for one cluster, as plain data (no Qt): tested, and copied as text."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.engine import RUN_SPELLING, STATUS_NAMES, STATUS_TEXT, margin_text
from ..core.rules import BLOCK_TITLES, BLOCKS, GROUP_PHRASES, GROUP_TESTS, SPIKEINTERFACE

HEADERS = ("metric", "value", "test", "threshold", "margin", "status", "parameter")
STATUS_COLUMN = HEADERS.index("status")
THRESHOLD_COLUMN = HEADERS.index("threshold")


def _fmt(x) -> str:
    return "NaN" if x is None else f"{x:.4g}"


@dataclass
class Line:
    """One row of the dock: depth 0 = block, 1 = rule or group, 2 = group member."""

    depth: int
    cells: tuple[str, ...]
    status: str | None = None
    children: list[Line] = field(default_factory=list)
    param: str | None = None  # the threshold in this row can be edited (what-if)


@dataclass
class DockContent:
    title: str
    reason: str
    label: str | None = None
    lines: list[Line] = field(default_factory=list)
    source: str = ""  # for clusters recomputed live: what was computed and what was not
    flag: str = ""    # the label shown is a judge's, not the rules'


def _rule_line(c: dict, depth: int) -> Line:
    status_text = STATUS_TEXT[STATUS_NAMES.index(c["status"])]
    if c["note"]:
        status_text = f"{status_text}: {c['note']}"
    test, threshold = ("is NaN", "") if c["op"] == "isnan" else (c["op"], _fmt(c["threshold"]))
    if c["status"] == "threshold_missing":
        threshold = "missing"
    margin = "" if c["margin"] is None else margin_text(c["margin"])
    metric = f"|{c['metric']}|" if c["abs"] else c["metric"]
    cells = (metric, _fmt(c["value"]), test, threshold, margin, status_text, c["param"] or "")
    return Line(depth, cells, c["status"], param=c["param"])


def _block_status(statuses: list[str]) -> str:
    for status in ("decisive", "also_failed"):
        if status in statuses:
            return status
    return "inactive" if all(s == "inactive" for s in statuses) else "pass"


def dock_content(live, cluster_id: int) -> DockContent:
    """What the dock shows for one cluster (pure data, so it can be tested and copied as text)."""
    if live.explanation is None:
        return DockContent(f"cluster {cluster_id}", f"No Bombcell explanation: {live.error}")
    if not live.has_row(cluster_id):
        state = "computing…" if cluster_id in live.pending else "no Bombcell row"
        return DockContent(f"cluster {cluster_id}: {state}", live.why_no_row(cluster_id))
    explanation = live.explanation
    row = live.row(cluster_id)
    label = str(explanation.labels[row])
    source = live.source_line(cluster_id)
    run_label = RUN_SPELLING.get(label) if explanation.classifier == SPIKEINTERFACE else None
    title = (f"cluster {cluster_id}: {label or '(empty)'}" + (f" ({run_label})" if run_label else "")
             + (" (recomputed live)" if source else ""))
    flag = ""
    if explanation.flagged[row]:
        flag = (f"Flagged: Bombcell gave {label or '(empty)'}, the {explanation.classifier} rules below give "
                f"{explanation.rule_labels[row] or '(empty)'}.")
    content = DockContent(title, str(explanation.reasons[row]), label, source=source or "", flag=flag)
    comparisons = explanation.comparisons(cluster_id)
    if source:
        for c in comparisons:
            if c["metric"] in live.live_info.not_live and c["status"] in ("missing", "inactive"):
                c["note"] = live.live_info.not_live[c["metric"]]
    for block in BLOCKS:
        in_block = [c for c in comparisons if c["block"] == block]
        status = _block_status([c["status"] for c in in_block])
        verdict = STATUS_TEXT[STATUS_NAMES.index(status)]
        block_line = Line(0, (BLOCK_TITLES[block], "", "", "", "", verdict, ""), status)
        groups: dict[str, Line] = {}
        for c in in_block:
            if not c["group"]:
                block_line.children.append(_rule_line(c, 1))
                continue
            if c["group"] not in groups:
                groups[c["group"]] = Line(1, (GROUP_PHRASES.get(c["group"], c["group"]), "",
                                              GROUP_TESTS.get(c["group"], "all hold"), "", "", "", ""))
                block_line.children.append(groups[c["group"]])
            groups[c["group"]].children.append(_rule_line(c, 2))
        for name, group in groups.items():
            members = [child.status for child in group.children]
            held = sum(c["holds"] for c in in_block if c["group"] == name)
            group.status = _block_status(members)
            group.cells = group.cells[:5] + (
                f"{STATUS_TEXT[STATUS_NAMES.index(group.status)]} ({held} of {len(members)} hold)", "")
        content.lines.append(block_line)
    return content


def content_text(content: DockContent) -> str:
    """Plain text of the dock, for the clipboard."""
    out = [content.title, content.reason] + [line for line in (content.flag, content.source) if line]

    def walk(lines):
        for line in lines:
            cells = [cell for cell in line.cells if cell]
            out.append("    " * line.depth + "  ".join(cells))
            walk(line.children)

    walk(content.lines)
    return "\n".join(out)
