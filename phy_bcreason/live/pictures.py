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

# How closely a drawn value must equal the table's (relative): the coarser of the precision the table's number
# carries and the drawn value's (README, "When a panel is not drawn", has the measurements behind them).
FLOAT64_PRECISION = 1e-9  # float64 arithmetic, which another machine may do in another order
FLOAT32_PRECISION = 1e-6  # a float32 number (8 units in its last place): Bombcell computed it in float32
FIT_PRECISION = 1e-5      # a least-squares fit: curve_fit stops at its default tolerance, and one unit in the
                          # last place of np.exp moves the fitted value by up to 7e-7


def measure(recording, spike_ids) -> dict:
    """Bombcell's metric functions on one cluster, with everything they measured (``evidence["metrics"]``: the
    values, as `metrics.cluster_metrics` gives them)."""
    from .metrics import cluster_metrics

    evidence: dict = {}
    cluster_metrics(recording, spike_ids, evidence)
    return evidence


def _same(drawn: float, table, precision: float = FLOAT64_PRECISION) -> bool:
    if table is None:
        return True  # nothing to disagree with
    table = float(table)
    if math.isnan(drawn) or math.isnan(table):
        return math.isnan(drawn) and math.isnan(table)
    return bool(np.isclose(drawn, table, rtol=precision, atol=1e-12))


def shared_precision(table: float, drawn_precision: float = 0.0) -> float:
    """The relative precision a table value and a drawn one can be compared at: the table's number's (a
    float32 number when Bombcell computed it in float32, e.g. the waveform ratios of a folder whose
    templates.npy is float32, though its parquet column is float64), or the drawn value's if coarser."""
    carried = FLOAT32_PRECISION if float(np.float32(table)) == table else FLOAT64_PRECISION
    return max(carried, drawn_precision)


def _ratio(numerator: float, denominator: float) -> float:
    return float("inf") if denominator == 0 else numerator / denominator  # Bombcell's get_ratio


def _waveform(evidence: dict) -> Panel:
    wave = evidence.get("waveform")
    panel = Panel()
    if wave is None or np.isnan(evidence["metrics"].get("nPeaks", np.nan)):
        panel.note = "fewer than 50 spikes, or a NaN template: Bombcell measures no waveform (nPeaks is NaN)"
        return panel
    trace = np.asarray(wave["trace"], dtype=float)
    rate = wave["sample_rate"]
    peaks, troughs = wave["peaks"].astype(int), wave["troughs"].astype(int)
    start, stop = (int(x) for x in wave["baseline_window"])
    calls = wave["calls"]
    ratios = [c["args"] for c in calls if c["name"] == "get_ratio"]  # in waveform_shape's order
    panel.values = {
        "nPeaks": float(len(peaks)), "nTroughs": float(len(troughs)),
        "waveformDuration_peakTrough": 1e6 * abs(wave["duration_trough"] - wave["duration_peak"]) / rate,
        "waveformBaselineFlatness": float(np.max(np.abs(trace[start:stop])) / np.max(np.abs(trace))),
    }
    sizes = {}
    if len(ratios) == 4:  # scnd (after, trough), peak1/peak2 (before, after), main, trough/peak2 (trough, before)
        sizes = dict(before=float(ratios[1][0]), after=float(ratios[1][1]), trough=float(ratios[0][1]))
        panel.values.update(
            scndPeakToTroughRatio=_ratio(sizes["after"], sizes["trough"]),
            peak1ToPeak2Ratio=_ratio(sizes["before"], sizes["after"]),
            mainPeakToTroughRatio=_ratio(max(sizes["before"], sizes["after"]), sizes["trough"]),
            troughToPeak2Ratio=_ratio(sizes["trough"], sizes["before"]))
    # the widths find_peaks measured (half prominence), as segments on the trace; the one Bombcell reported is
    # found by its value
    segments = []
    for call in (c for c in calls if c["name"] == "find_peaks"):
        searched = call["args"][0]
        n, known = len(searched), ~np.isnan(searched)  # waveform_shape blanks the first samples
        sign, offset = 1.0, 0
        if n == len(trace) and np.allclose(searched[known], -trace[known]):
            sign = -1.0
        elif not np.allclose(searched[known], trace[:n][known]):
            offset = len(trace) - n
        locations, properties = call["result"]
        for k in range(len(locations)):
            segments.append(dict(width=float(properties["widths"][k]), height=sign * properties["width_heights"][k],
                                 left=offset + properties["left_ips"][k], right=offset + properties["right_ips"][k],
                                 trough=sign < 0))
    metrics = evidence["metrics"]
    for name, trough in (("mainTrough_width", True), ("mainPeak_before_width", False)):
        match = next((s for s in segments if s["trough"] == trough and _same(s["width"], metrics.get(name))
                      and not np.isnan(metrics.get(name, np.nan))), None)
        if match is not None:
            panel.values[name] = match["width"]
            panel.data[name] = match
    formulas = {}  # how each ratio and width comes from what is drawn
    if sizes:
        for metric, (top, bottom) in {"scndPeakToTroughRatio": ("after", "trough"),
                                      "peak1ToPeak2Ratio": ("before", "after"),
                                      "troughToPeak2Ratio": ("trough", "before")}.items():
            formulas[metric] = f"{top}/{bottom} = {sizes[top]:.3g}/{sizes[bottom]:.3g}"
        formulas["mainPeakToTroughRatio"] = (f"max(before, after)/trough = "
                                             f"{max(sizes['before'], sizes['after']):.3g}/{sizes['trough']:.3g}")
    for name in ("mainTrough_width", "mainPeak_before_width"):
        if name in panel.data:
            formulas[name] = "cyan bar, in samples"
    panel.data.update(trace=trace, peaks=peaks, troughs=troughs, rate=rate, baseline=(start, stop), formulas=formulas,
                      duration=(int(wave["duration_peak"]), int(wave["duration_trough"])), sizes=sizes,
                      first_valid=24 if len(trace) == 82 else 4)
    return panel


def _spatial_decay(evidence: dict) -> Panel:
    panel = Panel()
    wave = evidence.get("waveform") or {}
    fit = next((c for c in wave.get("calls", ()) if c["name"] == "curve_fit"
                and c["args"][0] in ("exp_fit", "linear_fit")), None)
    if fit is None:
        panel.note = "Bombcell fitted no spatial decay for this cluster (too few channels nearby, or switched off)"
        return panel
    function, distances, amplitudes = fit["args"]
    params = fit["result"][0]
    panel.values["spatialDecaySlope"] = float(-params[0])
    panel.precision["spatialDecaySlope"] = FIT_PRECISION
    grid = np.linspace(0, float(np.max(distances)) * 1.05, 100)
    curve = params[1] * np.exp(params[0] * grid) if function == "exp_fit" else params[0] * grid + params[1]
    panel.data.update(function=function, distances=distances, amplitudes=amplitudes, grid=grid, curve=curve,
                      params=params)
    return panel


def _amplitudes(evidence: dict) -> Panel:
    from scipy.stats import norm

    panel = Panel()
    if "kept_amplitudes" not in evidence:
        panel.note = "fewer than 50 spikes: Bombcell measures no amplitude distribution"
        return panel
    fit = next((c for c in evidence["amplitude_calls"] if c["name"] == "curve_fit"
                and c["args"][0] == "gaussian_cut"), None)
    panel.data["amplitudes"] = evidence["kept_amplitudes"]
    if fit is None:
        value = evidence["metrics"].get("percentageSpikesMissing_gaussian", np.nan)
        panel.note = ("the amplitude distribution's peak is cut off: Bombcell counts 100% missing"
                      if value == 100 else "too few spikes for Bombcell to fit the amplitude distribution")
        return panel
    _, centres, counts = fit["args"]
    height, mean, width, cutoff = fit["result"][0]
    panel.values["percentageSpikesMissing_gaussian"] = float(100 * (1 - norm.cdf((mean - cutoff) / abs(width))))
    panel.precision["percentageSpikesMissing_gaussian"] = FIT_PRECISION
    grid = np.linspace(min(centres.min(), mean - 4 * abs(width)), max(centres.max(), mean + 4 * abs(width)), 300)
    panel.data.update(centres=centres, counts=counts, grid=grid, fit=fit["result"][0],
                      gaussian=height * np.exp(-((grid - mean) ** 2) / (2 * width ** 2)), cutoff=float(cutoff))
    return panel


def _kept_chunk_times(evidence: dict) -> tuple[np.ndarray, float]:
    """The spikes the refractory test used (Bombcell's chunk test: start <= t < stop) and the chunk's length."""
    start, stop = evidence["use_times"]
    times = np.sort(evidence["kept_times"])
    return times[(times >= start) & (times < stop)], float(stop - start)


def _refractory(evidence: dict) -> Panel:
    panel = Panel()
    rpv = evidence.get("rpv")
    if rpv is None:
        panel.note = ("not drawn for Bombcell's legacy refractory test (a parameter file without rpv_method)"
                      if "kept_times" in evidence else "fewer than 50 spikes: no refractory test")
        return panel
    import bombcell.quality_metrics as qm
    from scipy.stats import poisson

    times, duration = _kept_chunk_times(evidence)
    tau_c, method = float(rpv["tauC"]), rpv["method"]
    tau_r = evidence["metrics"]["estimatedTauR"]
    window = max(0.015, 1.5 * float(np.max(rpv["tauR_values"])))
    ends = np.searchsorted(times, times + window)
    pairs = np.concatenate([times[i + 1:e] - times[i] for i, e in enumerate(ends) if e > i + 1] or [np.array([])])
    panel.data.update(pairs=pairs, window=window, tauC=tau_c, tauR=tau_r, method=method,
                      violations=rpv["violations"], n=len(times), duration=duration,
                      confidence=rpv["confidence_threshold"])
    tested = np.atleast_1d(np.asarray(rpv["tauR_values"], dtype=float))
    if len(times) <= 1:
        return panel
    if method == "ibl_sliding":
        # the spike pairs tauC <= dt < tauR at each tested tauR: Bombcell's own count (in the live-metrics
        # process, remembered from the metric's computation a moment ago)
        counted = qm._sliding_rp_violation_counts(times, duration, tested, tau_c, rpv["tauR_reject"])
        if counted is None:
            return panel
        tested, counts, effective = counted
        levels = rpv["contamination_values"]
        levels = np.arange(0.5, 35.5, 0.5) / 100 if levels is None else np.asarray(levels, dtype=float)
        expected = qm._sliding_rp_expected_violations(len(times), effective, tested[:, None], tau_c, levels[None])
        confident = np.any(1 - poisson.cdf(counts[:, None], expected) >= rpv["confidence_threshold"], axis=0)
        panel.values["fractionRPVs_estimatedTauR"] = float(levels[np.argmax(confident)]) if confident.any() else 1.0
        panel.data.update(tested=tested, counts=counts, levels=levels)
    elif method == "hill":
        intervals = np.diff(times)
        counts = np.array([np.sum(intervals <= t) for t in tested])
        found = [qm._compute_contamination_hill(c, len(times), duration, t, tau_c) for c, t in zip(counts, tested)]
        found = [f for f in found if not np.isnan(f)]
        panel.values["fractionRPVs_estimatedTauR"] = float(min(found)) if found else float("nan")
        panel.data.update(tested=tested, counts=counts)
    return panel


def _presence(evidence: dict) -> Panel:
    panel = Panel()
    if "kept_times" not in evidence:
        panel.data.update(times=evidence.get("times", np.array([])), amplitudes=evidence.get("amplitudes"))
        panel.values["nSpikes"] = float(len(panel.data["times"]))
        panel.note = "fewer than 50 spikes: Bombcell measures nothing else"
        return panel
    kept = evidence["kept_times"]
    start, stop = evidence["use_times"]
    edges = np.arange(start, stop, evidence["presence_bin_size"])  # presence_ratio's bins
    if edges.shape[0] < 2:
        edges = np.array([start, stop])
    counts = np.array([np.sum((kept >= a) & (kept < b)) for a, b in zip(edges[:-1], edges[1:])])
    threshold = 0.05 * np.percentile(counts, 90)
    full = (counts >= threshold) & (counts > 0)
    panel.values.update(presenceRatio=float(full.sum() / full.shape[0]), nSpikes=float(len(kept)))
    panel.data.update(times=evidence["times"], amplitudes=evidence["amplitudes"], edges=edges, counts=counts,
                      threshold=float(threshold), full=full, chunks=evidence["chunks"], kept=(start, stop))
    return panel


def _drift(evidence: dict) -> Panel:
    panel = Panel()
    drift = evidence.get("drift")
    if drift is None:
        panel.note = "Bombcell measured no drift for this cluster (computeDrift off, or no pc_features.npy)"
        return panel
    depths = np.asarray(drift["median_spike_depth_per_bin"], dtype=float)
    panel.values["maxDriftEstimate"] = float(np.nanmax(depths) - np.nanmin(depths)) if np.isfinite(depths).any() \
        else float("nan")
    panel.data.update(bins=np.asarray(drift["time_bins"], dtype=float), depths=depths)
    return panel


def _raw(evidence: dict) -> Panel:
    panel = Panel()
    raw = evidence.get("raw")
    if raw is None:
        panel.note = "no raw waveform: Bombcell ran without extractRaw, or the raw recording is not reachable"
        return panel
    baseline = raw["baseline"]
    noise = float(np.median(np.abs(baseline - np.median(baseline))))
    trace = np.asarray(raw["snr_trace"], dtype=float)
    panel.values["signalToNoiseRatio"] = float(np.max(np.abs(trace)) / noise)
    gain = raw["gain_to_uV"]
    if gain is not None and not np.isnan(gain):
        scaled = raw["amplitude_trace"] * gain
        panel.values["rawAmplitude"] = float(abs(np.nanmax(scaled)) + abs(np.nanmin(scaled)))
    panel.data.update(trace=trace, noise=noise, scaled=None if gain is None else raw["amplitude_trace"] * gain)
    return panel


BUILDERS = {"waveform": _waveform, "spatial_decay": _spatial_decay, "amplitudes": _amplitudes,
            "refractory": _refractory, "presence": _presence, "drift": _drift, "raw": _raw}


def panels(evidence: dict) -> dict[str, Panel]:
    """Every panel's drawn features and the metric values they imply."""
    return {name: build(evidence) for name, build in BUILDERS.items()}


def drawn_values(evidence: dict) -> dict[str, float]:
    """metric -> its value from the features drawn (tests compare these with the table)."""
    return {metric: value for panel in panels(evidence).values() for metric, value in panel.values.items()}


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
        if not flipped and _same(drawn, table, shared_precision(table, panel.precision.get(metric, 0.0))):
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
        recording = Recording.load(ks_dir, results.params, results.metrics)
        evidence = measure(recording, spike_ids)
    comparisons = explanation.comparisons(cluster_id)
    built = panels(evidence)
    label = explanation.labels[explanation.row_of(cluster_id)] or "(empty)"
    Path(path).write_bytes(render(evidence, comparisons, f"cluster {cluster_id}: {label}", width_px, built=built))
    return summary(built, comparisons)
