"""The evidence panels, drawn as Bombcell measured them: for one cluster, the template with the peaks and troughs
`waveform_shape` detected, the amplitude histogram with the Gaussian `perc_spikes_missing` fitted, the spike pairs
the refractory test counted, the presence bins, the drift per bin, the raw waveform.

Drawing only: each `DRAW` function draws one panel's features (a `Panel`, which `panels.panels` builds from
Bombcell's own calls for that cluster) on a matplotlib Axes; `pictures.figure` lays the panels out and
`pictures.render` makes the PNG. No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.engine import STATUS_NAMES, STATUS_TEXT

WAVEFORM_METRICS = ("nPeaks", "nTroughs", "waveformDuration_peakTrough", "waveformBaselineFlatness",
                    "scndPeakToTroughRatio", "peak1ToPeak2Ratio", "mainPeakToTroughRatio", "troughToPeak2Ratio",
                    "mainPeak_before_width", "mainTrough_width")
PANEL_METRICS = {  # panel -> the metrics it shows, in the order the panels are drawn when none decides
    "waveform": WAVEFORM_METRICS,
    "spatial_decay": ("spatialDecaySlope",),
    "amplitudes": ("percentageSpikesMissing_gaussian",),
    "refractory": ("fractionRPVs_estimatedTauR",),
    "presence": ("presenceRatio", "nSpikes"),
    "drift": ("maxDriftEstimate",),
    "raw": ("rawAmplitude", "signalToNoiseRatio"),
}
PANEL_TITLES = {
    "waveform": "template on its peak channel", "spatial_decay": "amplitude across nearby channels",
    "amplitudes": "amplitude distribution (kept time)", "refractory": "autocorrelogram (kept time)",
    "presence": "spikes over time", "drift": "depth over time", "raw": "raw waveform",
}
NOT_DRAWN = {  # metrics with rules but no picture, and why
    "isolationDistance": "compares the cluster with every other cluster's PC features",
    "Lratio": "compares the cluster with every other cluster's PC features",
    "silhouetteScore": "compares the cluster with every other cluster's PC features",
}
SHOWN_RULES = 5  # rule lines above a panel
STATUS_COLOURS = {"decisive": "#ff6b6b", "also_failed": "#f0a030", "pass": "#7fd17f", "exempt": "#7fb2ff"}
FOREGROUND, BACKGROUND, TRACE = "#dddddd", "#151515", "#8fb8ff"


@dataclass
class Panel:
    values: dict[str, float] = field(default_factory=dict)  # metric -> its value from the drawn features
    data: dict = field(default_factory=dict)                 # what is drawn
    note: str = ""                                           # said in place of (or beside) the picture
    precision: dict[str, float] = field(default_factory=dict)  # metric -> how precise its drawn value is


def _rule_text(c: dict, formulas: dict | None = None) -> str:
    """``✗ nPeaks 3 > 2: decided the label`` for a failed rule, ``✓ nPeaks 1, fails if > 2`` for a passed one;
    with how the value comes from the picture where that is not plain (``formulas``)."""
    value = "NaN" if c["value"] is None else f"{c['value']:.4g}"
    if formulas and c["metric"] in formulas:
        value = f"{value} ({formulas[c['metric']]})"
    test = "is NaN" if c["op"] == "isnan" else f"{c['op']} {c['threshold']:.4g}" if c["threshold"] is not None \
        else f"{c['op']} (threshold missing)"
    if c["status"] in ("decisive", "also_failed"):
        return f"✗ {c['metric']} {value} {test}: {STATUS_TEXT[STATUS_NAMES.index(c['status'])]}"
    mark = "✓" if c["status"] == "pass" else "·"
    fails_if = "NaN" if c["op"] == "isnan" else test
    return f"{mark} {c['metric']} {value}, fails if {fails_if} ({STATUS_TEXT[STATUS_NAMES.index(c['status'])]})"


def _thresholds(comparisons: list[dict], metric: str) -> list[tuple[float, str]]:
    """(threshold, status) of the metric's rules that apply."""
    return [(c["threshold"], c["status"]) for c in comparisons
            if c["metric"] == metric and c["threshold"] is not None and c["status"] != "inactive"]


def _style(ax) -> None:
    ax.set_facecolor(BACKGROUND)
    ax.locator_params(nbins=5)  # a few ticks: their labels are most of the drawing time
    ax.tick_params(colors=FOREGROUND, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color("#555555")
    ax.xaxis.label.set_color(FOREGROUND)
    ax.yaxis.label.set_color(FOREGROUND)
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)


def _draw_waveform(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    trace, rate = d["trace"], d["rate"]
    ms = np.arange(len(trace)) / rate * 1000
    ax.plot(ms[d["first_valid"]:], trace[d["first_valid"]:], color=TRACE, lw=1.2)
    ax.plot(ms[:d["first_valid"] + 1], trace[:d["first_valid"] + 1], color="#555555", lw=1,
            label="not searched for peaks")
    ax.plot(ms[d["peaks"]], trace[d["peaks"]], "^", color="#ffd24d", ms=7, label=f"{len(d['peaks'])} peak(s)")
    ax.plot(ms[d["troughs"]], trace[d["troughs"]], "v", color="#ff6bd5", ms=7, label=f"{len(d['troughs'])} trough(s)")
    start, stop = d["baseline"]
    ax.axvspan(ms[start], ms[min(stop, len(ms) - 1)], color="#3a3a3a", alpha=0.6, label="baseline window")
    peak_max = float(np.max(np.abs(trace)))
    for threshold, status in _thresholds(comparisons, "waveformBaselineFlatness"):
        ax.hlines([threshold * peak_max, -threshold * peak_max], ms[start], ms[min(stop, len(ms) - 1)],
                  colors=STATUS_COLOURS.get(status, FOREGROUND), linestyles=":", lw=1)
    a, b = d["duration"]
    y = float(np.nanmax(trace)) * 1.25
    ax.annotate("", (ms[a], y), (ms[b], y), arrowprops=dict(arrowstyle="<->", color="#7fd7e8", lw=0.9))
    ax.text((ms[a] + ms[b]) / 2, y, f"peak to trough {panel.values['waveformDuration_peakTrough']:.0f} µs",
            color="#7fd7e8", fontsize=7, ha="center", va="bottom")
    ax.set_ylim(top=float(np.nanmax(trace)) * 1.5 + 1e-12)
    for key, colour in (("before", "#ffd24d"), ("after", "#ffaa33"), ("trough", "#ff6bd5")):
        if key in d["sizes"]:
            level = -d["sizes"][key] if key == "trough" else d["sizes"][key]
            ax.axhline(level, color=colour, lw=0.6, ls="--", alpha=0.7)
            ax.text(ms[-1], level, f" {key} {abs(level):.3g}", color=colour, fontsize=6, va="center", ha="right")
    for name in ("mainTrough_width", "mainPeak_before_width"):
        if name in d:
            s = d[name]
            ax.hlines(s["height"], s["left"] / rate * 1000, s["right"] / rate * 1000, colors="#7fd7e8", lw=2)
    ax.set_xlabel("ms")
    ax.legend(fontsize=6, loc="best", facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555",
              framealpha=0.6)


def _draw_spatial_decay(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    ax.plot(d["distances"], d["amplitudes"], "o", color=TRACE, ms=4, label="channels used")
    ax.plot(d["grid"], d["curve"], color="#ffd24d", lw=1,
            label=f"{'exponential' if d['function'] == 'exp_fit' else 'linear'} fit: slope "
                  f"{panel.values['spatialDecaySlope']:.4g}")
    ax.set_xlabel("distance from the peak channel (µm)")
    ax.set_ylabel("template amplitude" + (" (normalised)" if d["function"] == "exp_fit" else ""))
    ax.legend(fontsize=6, facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555")


def _draw_amplitudes(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    if "centres" not in d:
        counts, edges = np.histogram(d["amplitudes"], bins=50)
        ax.stairs(counts, edges, orientation="horizontal", fill=True, color=TRACE)
        ax.set_ylabel("amplitude")
        return
    step = d["centres"][1] - d["centres"][0]
    edges = np.append(d["centres"] - step / 2, d["centres"][-1] + step / 2)
    ax.stairs(d["counts"], edges, orientation="horizontal", fill=True, color=TRACE, label="spikes per amplitude bin")
    ax.plot(d["gaussian"], d["grid"], color="#ffd24d", lw=1.2, label="Gaussian Bombcell fitted")
    below = d["grid"] < d["cutoff"]
    ax.fill_betweenx(d["grid"][below], 0, d["gaussian"][below], color="#ff6b6b", alpha=0.5,
                     label=f"missing: {panel.values['percentageSpikesMissing_gaussian']:.3g}%")
    ax.axhline(d["cutoff"], color="#ff6b6b", lw=1, ls="--")
    ax.set_ylabel("amplitude")
    ax.set_xlabel("spikes")
    ax.legend(fontsize=6, facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555")


def _draw_refractory(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    bins = np.arange(0, d["window"] * 1000 + 0.25, 0.25)
    ax.stairs(np.histogram(d["pairs"] * 1000, bins=bins)[0], bins, fill=True, color=TRACE)
    ax.axvspan(d["tauC"] * 1000, d["tauR"] * 1000, color="#ff6b6b", alpha=0.3,
               label=f"tauC {d['tauC'] * 1000:g} to tauR {d['tauR'] * 1000:g} ms: {d['violations']} pair(s)")
    ax.set_xlabel(f"time to later spikes (ms), {d['n']} spikes; method {d['method']}")
    ax.set_ylabel("spike pairs")
    ax.set_ylim(bottom=0)  # counts: an empty histogram is not centred on zero
    ax.yaxis.get_major_locator().set_params(integer=True)
    if "fractionRPVs_estimatedTauR" in panel.values:
        text = f"contamination {panel.values['fractionRPVs_estimatedTauR']:.3g}"
        limit, expected, threshold = _most_pairs_passing(d, comparisons)
        if limit is not None:
            text += f"\nto pass, at most {limit} pair(s) here"
        elif expected is not None:  # too few spikes: Bombcell's test cannot confirm a low contamination
            text += (f"\ntoo few spikes to pass: at contamination {threshold:g} Bombcell expects "
                     f"{expected:.2g} pair(s) here,\nso even 0 pairs do not reach its {d['confidence']:.0%} "
                     "confidence")
        ax.text(0.98, 0.95, text, color=FOREGROUND, fontsize=7, transform=ax.transAxes, ha="right", va="top",
                bbox=dict(facecolor=BACKGROUND, alpha=0.8, edgecolor="none"))
    ax.legend(fontsize=6, loc="upper left", facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555")


def _most_pairs_passing(d: dict, comparisons: list[dict]) -> tuple[int | None, float | None, float | None]:
    """For the sliding refractory test: the most spike pairs in the shaded window (this tauR) that would still
    confirm a contamination at or below the threshold (Bombcell's Poisson confidence), i.e. how far from
    flipping the unit is in what is drawn. Returns (that count, or None when no count passes, the pairs Bombcell
    expects there at the threshold, the threshold), or Nones where the test is another."""
    threshold = next((t for t, _status in _thresholds(comparisons, "fractionRPVs_estimatedTauR")), None)
    if d.get("method") != "ibl_sliding" or threshold is None or not np.isfinite(d["tauR"]):
        return None, None, None
    import bombcell.quality_metrics as qm
    from scipy.stats import poisson

    effective = d["duration"] - 2 * d["n"] * d["tauC"]
    expected = qm._sliding_rp_expected_violations(d["n"], effective, d["tauR"], d["tauC"], threshold)
    passing = np.flatnonzero(poisson.sf(np.arange(int(expected) + 50), expected) >= d["confidence"])
    return (int(passing.max()) if len(passing) else None), float(expected), float(threshold)


def _draw_presence(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    times, amplitudes = d["times"], d["amplitudes"]
    if len(times) > 5000:
        pick = np.linspace(0, len(times) - 1, 5000).astype(int)
        times, amplitudes = times[pick], amplitudes[pick]
    if "edges" not in d:
        ax.plot(times, amplitudes, ".", color=TRACE, ms=2)
        return
    start, stop = d["kept"]
    kept = (times >= start) & (times <= stop)
    ax.plot(times[kept], amplitudes[kept], ".", color=TRACE, ms=1.5)
    ax.plot(times[~kept], amplitudes[~kept], ".", color="#666666", ms=1.5)
    ax.set_ylabel("amplitude")
    ax.set_xlabel("time (s)")
    if len(d["chunks"]) > 2:
        for edge in d["chunks"]:
            ax.axvline(edge, color="#555555", lw=0.6)
        ax.axvspan(start, stop, color="#4b4b8f", alpha=0.35, label="time chunks kept (grey spikes: not used)")
    bars = ax.twinx()
    _style(bars)
    widths = np.diff(d["edges"])
    colours = np.where(d["full"], "#7fd17f", "#ff6b6b")
    bars.bar(d["edges"][:-1], d["counts"], width=widths, align="edge", color=colours, alpha=0.12,
             edgecolor=colours, lw=1)
    bars.axhline(d["threshold"], color="#ff6b6b", lw=0.8, ls="--")
    bars.set_ylabel("spikes per bin (red: counted absent)")
    if len(d["chunks"]) > 2:
        ax.legend(fontsize=6, facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555")


def _draw_drift(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    ax.stairs(d["depths"], d["bins"][:len(d["depths"]) + 1], color=TRACE, lw=1.2, baseline=None)
    for level in (np.nanmax(d["depths"]), np.nanmin(d["depths"])):
        ax.axhline(level, color="#ffd24d", lw=0.7, ls="--")
    ax.text(0.98, 0.95, f"max drift (highest - lowest) {panel.values['maxDriftEstimate']:.3g} µm",
            color="#ffd24d", fontsize=7, transform=ax.transAxes, ha="right", va="top")
    pad = max(float(np.nanmax(d["depths"]) - np.nanmin(d["depths"])), 1.0)  # room to read the steps
    ax.set_ylim(np.nanmin(d["depths"]) - pad, np.nanmax(d["depths"]) + pad)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("median spike depth (µm)")


def _draw_raw(ax, panel: Panel, comparisons: list[dict]) -> None:
    d = panel.data
    ax.plot(d["trace"], color=TRACE, lw=1.2, label=f"SNR {panel.values['signalToNoiseRatio']:.3g}")
    ax.axhspan(-d["noise"], d["noise"], color="#ff6b6b", alpha=0.3, label="baseline noise (MAD)")
    ax.set_xlabel("sample")
    ax.legend(fontsize=6, facecolor=BACKGROUND, labelcolor=FOREGROUND, edgecolor="#555555")


DRAW = {"waveform": _draw_waveform, "spatial_decay": _draw_spatial_decay, "amplitudes": _draw_amplitudes,
        "refractory": _draw_refractory, "presence": _draw_presence, "drift": _draw_drift, "raw": _draw_raw}
