"""Bombcell's quality metrics for clusters made in Phy (merges, splits), computed from their spikes.

Bombcell handles a Phy-curated folder (`bombcell.loading_utils.handle_manual_curation`) by giving each new
cluster the plain mean of the Kilosort templates its spikes came from (one template: that template), then
running the same per-unit metric functions as for any unit. `cluster_metrics` does exactly that for one
cluster, calling Bombcell's own functions (`bombcell.quality_metrics`) in the order of
`bombcell.helper_functions.get_all_quality_metrics`, without Bombcell's plots, GUI cache or files: nothing is
written. No Qt here. `process.MetricsProcess` runs it in a separate process (`child.py`), so that the
computation never holds the GIL that Phy's GUI thread needs. What it reads is a `recording.Recording`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import listed
from ..io.results import BombcellResults
from .recording import Recording, spike_clusters_of

MIN_SPIKES = 50  # get_all_quality_metrics: fewer spikes -> every metric NaN except nSpikes
# Bombcell writes one cluster_<name>.tsv per metric into the Kilosort folder, which Phy shows as columns:
# Python Bombcell with the metric's own name, MATLAB Bombcell with these names.
MATLAB_TSV_NAMES = {
    "percentage_spikes_missing": "percentageSpikesMissing_gaussian", "presence_ratio": "presenceRatio",
    "max_drift": "maxDriftEstimate", "n_peaks": "nPeaks", "n_troughs": "nTroughs",
    "waveform_duration": "waveformDuration_peakTrough", "spatial_decay_slope": "spatialDecaySlope",
    "wv_baseline_flatness": "waveformBaselineFlatness", "SNR": "signalToNoiseRatio",
    "frac_RPVs": "fractionRPVs_estimatedTauR", "peak_2_to_trough": "scndPeakToTroughRatio",
    "peak_1_to_peak_2": "peak1ToPeak2Ratio", "peak_main_to_trough": "mainPeakToTroughRatio",
    "isolation_distance": "isolationDistance", "L-ratio": "Lratio", "silhouette_score": "silhouetteScore",
    "good_chunk_start": "useTheseTimesStart", "good_chunk_stop": "useTheseTimesStop",
}
NOT_METRICS = ("phy_clusterID", "clusterID", "cluster_id", "bc_unitType")


def import_bombcell_functions() -> None:
    """Make ``import bombcell.<module>`` run only that module (and what it imports), not Bombcell's package
    ``__init__``, which also imports its GUI (IPython, ipywidgets) and plotting: for our own child process,
    which only calls Bombcell's metric functions."""
    if "bombcell" in sys.modules:
        return
    import importlib.util
    import types

    spec = importlib.util.find_spec("bombcell")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("bombcell")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__, package.__spec__ = spec.origin, spec
    sys.modules["bombcell"] = package


def raw_metrics(recording: Recording, spike_ids: np.ndarray, max_channel: int,
                evidence: dict | None = None) -> tuple[float, float]:
    """rawAmplitude and signalToNoiseRatio as `run_bombcell` gets them from `extract_raw_waveforms` (evenly
    spaced spikes, Bombcell's `process_a_unit`) and `get_raw_amplitude`; ``evidence`` gets the waveforms and
    the baseline they were measured on."""
    import bombcell.quality_metrics as qm
    from bombcell.extract_raw_waveforms import process_a_unit

    param, raw = recording.params, recording.raw
    spike_width = int(param["spike_width"])
    half_width = {82: 41, 61: 20}.get(spike_width, spike_width // 2)
    times = np.asarray(recording.spike_samples[spike_ids])
    times = times[(half_width < times) & (times < raw.shape[0] - spike_width + half_width)]
    n_extract = int(param["nRawSpikesToExtract"])
    chosen = np.full(n_extract, np.nan)
    if n_extract < len(times):
        chosen[:] = times[np.linspace(0, len(times) - 1, n_extract, dtype=int)]
    else:
        chosen[: len(times)] = times
    baseline_samples = param.get("waveformBaselineNoiseWindow", 20)
    unit = process_a_unit(raw, spike_width, half_width, chosen, raw.shape[1], int(param["nChannels"]),
                              int(param["nSyncChannels"]), 0, param["detrendWaveform"],
                              param.get("detrendForUnitMatch", False), baseline_samples, None, False,
                              template_peak_channel=max_channel)
    waveform, baseline = unit["raw_waveforms_full"], unit["average_baseline"]
    signal = np.max(np.abs(np.squeeze(waveform[int(unit["raw_waveforms_peak_channel"]), :])))
    noise = np.median(np.abs(baseline - np.median(baseline)))
    amplitude = np.nan
    if param.get("gain_to_uV") is not None:
        amplitude = qm.get_raw_amplitude(waveform, param["gain_to_uV"], peak_channel=max_channel)
    if evidence is not None:
        evidence["raw"] = dict(snr_trace=np.squeeze(waveform[int(unit["raw_waveforms_peak_channel"]), :]),
                               amplitude_trace=np.asarray(waveform[max_channel, :], dtype=float),
                               baseline=np.asarray(baseline, dtype=float), gain_to_uV=param.get("gain_to_uV"))
    return float(amplitude), float(signal / noise)


def metric_names() -> list[str]:
    from bombcell.save_utils import get_metric_keys

    return ["nSpikes", *get_metric_keys()]


class _Calls:
    """Within the block, remember the calls Bombcell's metric module makes to some of the functions it uses
    (``curve_fit``, ``find_peaks``, ``get_ratio``): their arguments and results are what the metric was measured
    on (the Gaussian fitted to the amplitudes, the spatial decay fit, the peaks found and their widths, the peak
    and trough sizes of the ratios), which Bombcell's functions do not return. The calls are Bombcell's own,
    unchanged; only in our own process."""

    NAMES = ("curve_fit", "find_peaks", "get_ratio")

    def __init__(self, qm):
        self.qm = qm

    def __enter__(self) -> list[dict]:
        self.calls, self.originals = [], {name: getattr(self.qm, name) for name in self.NAMES}
        for name, function in self.originals.items():
            setattr(self.qm, name, self._remembering(name, function))
        return self.calls

    def _remembering(self, name, function):
        def remembering(*args, **kwargs):
            result = function(*args, **kwargs)
            if name == "curve_fit":
                args = (args[0].__name__, *[np.array(a, dtype=float) for a in args[1:3]])
                result = (np.array(result[0], dtype=float),)
            elif name == "find_peaks":
                args = (np.array(args[0], dtype=float),)
            self.calls.append(dict(name=name, args=args, kwargs={k: v for k, v in kwargs.items()
                                                                  if np.isscalar(v)}, result=result))
            return result

        return remembering

    def __exit__(self, *exc):
        for name, function in self.originals.items():
            setattr(self.qm, name, function)


def cluster_metrics(recording: Recording, spike_ids: np.ndarray, evidence: dict | None = None) -> dict[str, float]:
    """Bombcell's metrics for the cluster made of ``spike_ids`` (indices into the Kilosort spike arrays).

    With ``evidence`` (a dict), also what the metrics were measured on, as Bombcell's functions return it or
    fit it (`evidence.py` draws it): the spikes and chunks, the amplitude fit, the spikes the refractory
    test used, the template with the peaks and troughs `waveform_shape` detected, the drift per bin, the raw
    waveform."""
    import bombcell.quality_metrics as qm

    collect = evidence is not None
    evidence = evidence if collect else {}
    calls = _Calls(qm) if collect else contextlib.nullcontext([])

    param = dict(recording.params)  # Bombcell's functions may write into it
    spike_ids = np.sort(np.asarray(spike_ids, dtype=np.int64))
    out = dict.fromkeys(metric_names(), np.nan)
    template, pc_ind = recording.template_of(spike_ids)
    max_channel = int(qm.get_waveform_peak_channel(template[np.newaxis])[0])
    out["maxChannels"] = max_channel
    times = np.asarray(recording.spike_samples[spike_ids]) / param["ephys_sample_rate"]
    amplitudes = np.asarray(recording.amplitudes[spike_ids]).astype(np.float64)
    out["nSpikes"] = times.shape[0]
    evidence.update(times=times, amplitudes=amplitudes, metrics=out)
    if times.size < MIN_SPIKES:
        return out

    chunks = recording.time_chunks
    missing_gaussian, _, _ = qm.perc_spikes_missing(amplitudes, times, chunks, param, return_per_bin=True)
    fraction_rpvs, _, _ = qm.fraction_RP_violations(times, amplitudes, chunks, param, return_per_bin=True)
    evidence.update(chunks=chunks,
                    chunk_missing=np.asarray(missing_gaussian, dtype=float).ravel(),
                    chunk_rpv=np.asarray(fraction_rpvs, dtype=float).reshape(len(chunks) - 1, -1).min(axis=1)
                    if np.size(fraction_rpvs) else np.array([]))
    local_clusters = np.zeros(times.shape[0], dtype=np.int32)  # this cluster is "unit 0" below
    (kept_times, kept_amplitudes, kept_clusters, out["useTheseTimesStart"], out["useTheseTimesStop"],
     out["RPV_window_index"]) = qm.time_chunks_to_keep(missing_gaussian, fraction_rpvs, chunks, times, amplitudes,
                                                        local_clusters, times, param)
    use_times = np.array((out["useTheseTimesStart"], out["useTheseTimesStop"]))
    with calls as amplitude_calls:
        out["percentageSpikesMissing_gaussian"], out["percentageSpikesMissing_symmetric"] = qm.perc_spikes_missing(
            kept_amplitudes, kept_times, use_times, param, metric=True)
    evidence.update(kept_times=kept_times, kept_amplitudes=kept_amplitudes, use_times=use_times,
                    amplitude_calls=amplitude_calls)

    if "rpv_method" in param:
        contamination, out["estimatedTauR"], violations = qm.sliding_rp_violations(kept_times, use_times, param)
        out["fractionRPVs_estimatedTauR"] = contamination
        evidence["rpv"] = dict(method=param["rpv_method"], violations=int(violations),
                               tauR_values=np.atleast_1d(param.get("tauR_values", np.array([0.002]))),
                               tauC=param.get("tauC", 0.0001), tauR_reject=param.get("tauR_reject", 0.0005),
                               confidence_threshold=param.get("confidence_threshold", 0.9),
                               contamination_values=param.get("contamination_values"))
        if param["rpv_method"] == "ibl_sliding":
            out["RPV_status"] = qm.sliding_rp_status(kept_times, use_times, param)
        elif not np.isnan(contamination):
            out["RPV_status"] = 1.0 if contamination <= param["maxRPVviolations"] else -1.0
    else:  # Bombcell's legacy mode (parameter files without rpv_method)
        fractions, _ = qm.fraction_RP_violations(kept_times, kept_amplitudes, use_times, param)
        fractions = fractions[0]
        index = int(out["RPV_window_index"])
        out["fractionRPVs_estimatedTauR"] = fractions[index]
        step = param.get("tauR_valuesStep", 0.0005)
        window = np.arange(param.get("tauR_valuesMin", 0.002), param.get("tauR_valuesMax", 0.002) + step, step)
        out["estimatedTauR"] = window[index] if index < len(window) else window[0]

    out["presenceRatio"] = qm.presence_ratio(kept_times, out["useTheseTimesStart"], out["useTheseTimesStop"], param)
    evidence["presence_bin_size"] = param["presenceRatioBinSize"]
    if param.get("computeDrift") and recording.pc_features is not None:
        out["maxDriftEstimate"], out["cumDriftEstimate"], evidence["drift"] = qm.max_drift_estimate(
            np.asarray(recording.pc_features[spike_ids]), pc_ind[np.newaxis], kept_clusters, kept_times, 0,
            recording.channel_positions, param, return_per_bin=True)
    out["nSpikes"] = kept_times.shape[0]

    baseline_window = np.array((param["waveform_baseline_window_start"], param["waveform_baseline_window_stop"]))
    with calls as shape_calls:
        shape = qm.waveform_shape(template[np.newaxis], 0, np.array([max_channel]), recording.channel_positions,
                                  baseline_window, param)
    for name, value in zip(("nPeaks", "nTroughs", "waveformDuration_peakTrough", "spatialDecaySlope",
                            "waveformBaselineFlatness", "scndPeakToTroughRatio", "peak1ToPeak2Ratio",
                            "mainPeakToTroughRatio", "troughToPeak2Ratio", "mainPeak_before_width",
                            "mainTrough_width"), shape):
        out[name] = value
    if collect:
        peaks, troughs, duration_peak, duration_trough = shape[11:15]
        evidence["waveform"] = dict(
            trace=template[:, max_channel], peaks=np.atleast_1d(peaks).astype(float),
            troughs=np.atleast_1d(troughs).astype(float), duration_peak=float(duration_peak),
            duration_trough=float(duration_trough), baseline_window=baseline_window,
            sample_rate=float(param["ephys_sample_rate"]), max_channel=max_channel,
            calls=shape_calls)
    if recording.raw is not None:
        out["rawAmplitude"], out["signalToNoiseRatio"] = raw_metrics(recording, spike_ids, max_channel,
                                                                     evidence if collect else None)
    out.update({name: np.nan for name in recording.not_live if name in out})  # never a value on a guess
    metrics = {name: float(value) for name, value in out.items()}
    evidence["metrics"] = metrics
    return metrics


def metrics_table(recording: Recording, clusters: dict[int, np.ndarray]) -> pd.DataFrame:
    """One row per cluster (``{cluster id: spike ids}``), Bombcell's columns plus ``phy_clusterID``."""
    rows = [{"phy_clusterID": int(cluster_id), **cluster_metrics(recording, spike_ids)}
            for cluster_id, spike_ids in clusters.items()]
    return pd.DataFrame(rows, columns=["phy_clusterID", *metric_names(), "maxChannels"])


def append_rows(results: BombcellResults, live_metrics: pd.DataFrame | None, notes=()) -> BombcellResults:
    """Bombcell's rows followed by rows recomputed live (their ``phy_clusterID`` gives their ids)."""
    if live_metrics is None or not len(live_metrics):
        return results
    live_ids = live_metrics["phy_clusterID"].to_numpy(dtype=np.int64)
    metrics = pd.concat([results.metrics, live_metrics], ignore_index=True)
    return BombcellResults(results.folder, results.params, metrics, np.concatenate([results.cluster_ids, live_ids]),
                           [*results.notes, *notes])


def with_live_rows(results: BombcellResults, ks_dir: str | Path) -> BombcellResults:
    """For scripts and the CLI (``--live``): add rows, recomputed here, for the clusters of the Kilosort folder's
    spike_clusters.npy that Bombcell's results lack (merged or split in Phy after Bombcell ran)."""
    ks_dir = Path(ks_dir)
    spike_clusters = spike_clusters_of(ks_dir)
    missing = np.setdiff1d(np.unique(spike_clusters), results.cluster_ids)
    if not len(missing):
        return results
    recording = Recording.load(ks_dir, results.params, results.metrics, results.tauR_columns)
    order = np.argsort(spike_clusters, kind="stable")
    starts = np.searchsorted(spike_clusters[order], missing)
    ends = np.searchsorted(spike_clusters[order], missing, side="right")
    table = metrics_table(recording, {int(c): order[a:b] for c, a, b in zip(missing, starts, ends)})
    ids = listed(missing.tolist(), 10)
    notes = [f"{len(missing)} cluster(s) without a Bombcell row recomputed live with Bombcell's metric functions "
             f"({ids})", *recording.notes, *recording.info().caveats()]
    return append_rows(results, table, notes)


def share_rpv_counts() -> None:
    """Bombcell counts a unit's refractory-period violations three times on the same spike times (the first
    pass over time chunks, the contamination estimate, the RPV status); the count is a pure function of its
    inputs and most of a unit's cost. In our own child process, remember the last few counts by content."""
    import bombcell.quality_metrics as qm

    count, remembered = qm._sliding_rp_violation_counts, {}

    @functools.wraps(count)
    def remembering_count(spike_times, duration, tauR_values, tauC, tauR_reject):
        key = (hashlib.blake2b(np.ascontiguousarray(spike_times, dtype=float).tobytes()).digest(), float(duration),
               np.asarray(tauR_values, dtype=float).tobytes(), float(tauC), float(tauR_reject))
        if key not in remembered:
            if len(remembered) > 8:
                remembered.clear()
            remembered[key] = count(spike_times, duration, tauR_values, tauC, tauR_reject)
        return remembered[key]

    qm._sliding_rp_violation_counts = remembering_count
