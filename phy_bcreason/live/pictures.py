"""The evidence behind each rule, for one cluster, as Bombcell measured it: `measure` runs Bombcell's own calls
(`metrics.cluster_metrics` with an ``evidence`` dict: its functions' per-bin outputs, and the fits, peaks and sizes
they computed on the way), never a re-implementation. Each panel gives back the metric values its drawn features
imply (`panels`: ``values``), and a panel whose values differ from the table's is not drawn (`disagreements`): a
picture that disagrees with the number beside it is worse than none. They are compared at the precision the two
numbers carry (`shared_precision`: a float32 number, a least-squares fit), and a difference within it is still one
if a rule reads the two values on either side of its threshold (`engine.rule_fires`). `figure` lays the panels
out, decisive rules first; `evidence.py` draws each one. No Qt here: `render` makes a PNG (in the live-metrics
child process for the dock, `picture`; in-process for ``phy-bcreason explain --figure``, `write_figure`).
"""

from __future__ import annotations

import functools
import io
import math
import os

import numpy as np

from ..core.engine import STATUS_NAMES, rule_fires
from ..core.errors import UserError
from .evidence import (
    BACKGROUND,
    DRAW,
    FOREGROUND,
    NOT_DRAWN,
    PANEL_METRICS,
    PANEL_TITLES,
    SHOWN_RULES,
    STATUS_COLOURS,
    Panel,
    _rule_text,
    _style,
)
from .panels import panels, same, shared_precision


def measure(recording, spike_ids) -> dict:
    """Bombcell's metric functions on one cluster, with everything they measured (``evidence["metrics"]``: the
    values, as `metrics.cluster_metrics` gives them)."""
    from .metrics import cluster_metrics

    evidence: dict = {}
    cluster_metrics(recording, spike_ids, evidence)
    return evidence


def _order(comparisons: list[dict]) -> list[str]:
    """Panels in the order a curator needs them: those with a rule that decided the label, then those with a
    failed rule, then the rest (in `PANEL_METRICS` order); panels whose rules are all switched off go last."""
    def rank(name):
        statuses = [c["status"] for c in comparisons if c["metric"] in PANEL_METRICS[name]]
        for i, status in enumerate(("decisive", "also_failed", "pass", "exempt")):
            if status in statuses:
                return i
        return 4
    return sorted(PANEL_METRICS, key=rank)


def disagreements(panel: Panel, comparisons: list[dict]) -> list[str]:
    """Where the panel's drawn values differ from the values in the table beside it: beyond the precision
    the two carry (`shared_precision`), or on either side of the threshold of a rule that reads the metric (as
    `engine.rule_fires` compares). Each with the digits that tell the two values apart."""
    out = []
    for metric, drawn in panel.values.items():
        rules = [c for c in comparisons if c["metric"] == metric and not c["abs"]]
        table = rules[0]["value"] if rules else None
        if table is None:
            continue  # no rule reads it, or the table has no number: nothing to disagree with
        flipped = [c for c in rules if c["status"] != "inactive" and (c["threshold"] is not None or c["op"] == "isnan")
                   and _fires(c, drawn) != _fires(c, table)]
        if not flipped and same(drawn, table, shared_precision(table, panel.precision.get(metric, 0.0))):
            continue
        shown_drawn, shown_table = _distinct(drawn, table)
        text = f"{metric}: {shown_drawn} drawn, {shown_table} in the table"
        if flipped:
            c = flipped[0]
            text += ", on either side of " + ("NaN" if c["op"] == "isnan" else f"{c['op']} {c['threshold']:g}")
        out.append(text)
    return sorted(out)


def _fires(c: dict, value: float) -> bool:
    """Whether comparison ``c`` fires for ``value``."""
    threshold = np.nan if c["threshold"] is None else c["threshold"]
    return bool(rule_fires(value, threshold, c["op"]))


def _distinct(drawn: float, table: float) -> tuple[str, str]:
    """The two values with the fewest significant digits, six at least, that tell them apart."""
    for digits in range(6, 18):
        shown = f"{drawn:.{digits}g}", f"{table:.{digits}g}"
        if shown[0] != shown[1]:
            break
    return shown


def figure(evidence: dict, comparisons: list[dict], title: str = "", width_px: int = 900, dpi: int = 100,
           built: dict[str, Panel] | None = None):
    """The panels for one cluster, decisive rules first, as a matplotlib Figure (no pyplot, no GUI)."""
    from matplotlib.figure import Figure

    built = panels(evidence) if built is None else built
    names = [n for n in _order(comparisons) if built[n].values or built[n].data or
             any(c["metric"] in PANEL_METRICS[n] and c["status"] in ("decisive", "also_failed") for c in comparisons)]
    columns = 1 if width_px < 700 else 2
    rows = max(1, math.ceil(len(names) / columns))
    # fixed inches per panel (title lines, axes, labels): no layout engine, which would cost more than the drawing
    title_in, axes_in, below_in, top_in = (SHOWN_RULES + 2) * 0.13, 1.9, 0.45, 0.35
    row_in = title_in + axes_in + below_in
    height_in = top_in + rows * row_in
    fig = Figure(figsize=(width_px / dpi, height_in), dpi=dpi, facecolor=BACKGROUND)
    undrawn = sorted({c["metric"] for c in comparisons if c["metric"] in NOT_DRAWN and c["status"] != "inactive"})
    if undrawn:
        title += f"   (no picture for {', '.join(undrawn)}: {NOT_DRAWN[undrawn[0]]})"
    fig.text(0.01, 1 - 0.1 / height_in, title, color=FOREGROUND, fontsize=9, va="top")
    left, gap = 0.75 / (width_px / dpi), 1.0 / (width_px / dpi)
    panel_width = (1 - left - 0.02 - (columns - 1) * gap) / columns
    for i, name in enumerate(names):
        row, column = divmod(i, columns)
        bottom = 1 - (top_in + row * row_in + title_in + axes_in) / height_in
        ax = fig.add_axes((left + column * (panel_width + gap), bottom, panel_width - 0.45 / (width_px / dpi),
                           axes_in / height_in))
        _style(ax)
        panel = built[name]
        rules = sorted((c for c in comparisons if c["metric"] in PANEL_METRICS[name] and c["status"] != "inactive"),
                       key=lambda c: STATUS_NAMES.index(c["status"]))
        lines = [PANEL_TITLES[name]] + [_rule_text(c, panel.data.get("formulas")) for c in rules[:SHOWN_RULES]]
        if len(rules) > SHOWN_RULES:
            lines.append(f"  and {len(rules) - SHOWN_RULES} more (in the table above)")
        colour = next((STATUS_COLOURS[c["status"]] for c in rules if c["status"] in ("decisive", "also_failed")),
                      FOREGROUND)
        ax.set_title("\n".join(lines), fontsize=7, color=colour, loc="left")
        wrong = disagreements(panel, comparisons)
        if wrong or not panel.data:
            text = ("not drawn: the picture would disagree with the table (" + "; ".join(wrong) + ")") if wrong \
                else panel.note
            ax.text(0.5, 0.5, text, color=FOREGROUND, fontsize=7, ha="center", va="center", wrap=True,
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        DRAW[name](ax, panel, comparisons)
        if panel.note:
            ax.text(0.01, 0.01, panel.note, color="#c8a0ff", fontsize=6, transform=ax.transAxes)
    return fig


def render(evidence: dict, comparisons: list[dict], title: str = "", width_px: int = 900,
           built: dict[str, Panel] | None = None) -> bytes:
    """`figure` as PNG bytes (Agg, off any GUI thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure(evidence, comparisons, title, width_px, built=built)
    out = io.BytesIO()
    FigureCanvasAgg(fig).print_png(out)
    return out.getvalue()


def summary(built: dict[str, Panel], comparisons: list[dict]) -> dict[str, dict]:
    """Per panel: the metric values its drawn features imply, its note, where they differ from the table (then
    it is not drawn), and the drawn features small enough to send between processes (arrays of at most 512
    values: peaks, troughs, fits, counts; not the spikes), in the order the panels are drawn."""
    return {name: dict(values=built[name].values, note=built[name].note,
                       withheld=disagreements(built[name], comparisons),
                       features={k: v for k, v in built[name].data.items() if np.size(v) <= 512})
            for name in _order(comparisons)}  # in the order drawn


MEASURED_KEPT = 1  # clusters whose evidence a process keeps, to draw them again (what-if, width) without measuring


def picture(recording, measured: dict, cluster_id: int, spike_ids: np.ndarray, comparisons: list[dict],
            title: str, width_px: int, draw: bool = True) -> tuple[dict, bytes] | None:
    """One cluster's panel: measured once per cluster (``measured`` keeps the last few; Phy never gives an id
    to another set of spikes), drawn with the comparisons of the moment (what-if edits change them). Without
    ``draw``, only measured (None): the caller asks again to draw if the cluster is still wanted."""
    if cluster_id not in measured:
        if len(measured) >= MEASURED_KEPT:
            measured.pop(next(iter(measured)))
        measured[cluster_id] = measure(recording, spike_ids)
    if not draw:
        return None
    evidence = measured[cluster_id]
    built = panels(evidence)
    answer = summary(built, comparisons), render(evidence, comparisons, title, width_px, built=built)
    _give_back_memory()
    return answer


def _give_back_memory() -> None:
    """The live-metrics process has a memory budget (250 MB): free the figure's reference cycles now, and give
    the freed heap back to the system (glibc keeps it otherwise). Only glibc has ``malloc_trim``; elsewhere
    (macOS, Windows, musl) the memory is reused by the next picture anyway."""
    import ctypes
    import gc

    gc.collect()
    if not _glibc():
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@functools.cache
def _glibc() -> bool:
    """Whether this process runs on glibc (``os.confstr`` is POSIX only; the name is glibc's own)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def no_pictures(classifier: str | None) -> str:
    """Why results of another classifier than Python Bombcell get no pictures."""
    from ..core.rules import CLASSIFIER_TITLES

    run = CLASSIFIER_TITLES[classifier].split(" (")[0] if classifier in CLASSIFIER_TITLES else "these"
    return (f"No pictures for {run} results: they are drawn from Python Bombcell's own metric functions, which "
            "measure what the classifier measured only for Python Bombcell's runs.")


class EvidenceError(UserError):
    """Why a cluster's pictures cannot be drawn here; one line for the user."""


def write_figure(results, explanation, ks_dir, cluster_id: int, path, width_px: int = 1000) -> dict[str, dict]:
    """``phy-bcreason explain KS_DIR --cluster N --figure FILE``: the dock's panel for one cluster, as a PNG.
    Returns `summary`."""
    from pathlib import Path

    from ..core.rules import PYTHON
    from ..quiet import bombcell_output_to_log
    from .metrics import import_bombcell_functions
    from .recording import Recording, spike_clusters_of

    if results.classifier != PYTHON:
        message = no_pictures(results.classifier)
        raise EvidenceError(message[0].lower() + message[1:])
    ks_dir = Path(ks_dir)
    spike_ids = np.flatnonzero(spike_clusters_of(ks_dir) == cluster_id)
    if not len(spike_ids):
        raise EvidenceError(f"cluster {cluster_id}: no spikes in {ks_dir}'s spike_clusters.npy")
    with bombcell_output_to_log():
        import_bombcell_functions()
        recording = Recording.load(ks_dir, results.params, results.metrics, results.tauR_columns)
        evidence = measure(recording, spike_ids)
    comparisons = explanation.comparisons(cluster_id)
    built = panels(evidence)
    label = explanation.labels[explanation.row_of(cluster_id)] or "(empty)"
    Path(path).write_bytes(render(evidence, comparisons, f"cluster {cluster_id}: {label}", width_px, built=built))
    return summary(built, comparisons)
