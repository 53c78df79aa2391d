"""The evidence panels of one cluster as data: what each picture shows, built from what Bombcell measured
(`pictures.measure`), with the metric values its drawn features imply (``values``), and how closely those must
equal the table's (`shared_precision`, `same`). No drawing (`evidence.py`) and no measuring (`pictures.py`)."""

from __future__ import annotations

import math

import numpy as np

from .evidence import Panel

# How closely a drawn value must equal the table's (relative): the coarser of the precision the table's number
# carries and the drawn value's (README, "When a panel is not drawn", has the measurements behind them).
FLOAT64_PRECISION = 1e-9  # float64 arithmetic, which another machine may do in another order
FLOAT32_PRECISION = 1e-6  # a float32 number (8 units in its last place): Bombcell computed it in float32
FIT_PRECISION = 1e-5      # a least-squares fit: curve_fit stops at its default tolerance, and one unit in the
                          # last place of np.exp moves the fitted value by up to 7e-7


def same(drawn: float, table, precision: float = FLOAT64_PRECISION) -> bool:
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
        match = next((s for s in segments if s["trough"] == trough and same(s["width"], metrics.get(name))
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
