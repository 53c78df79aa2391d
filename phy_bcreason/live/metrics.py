"""Bombcell's quality metrics for clusters made in Phy (merges, splits), computed from their spikes.

Bombcell handles a Phy-curated folder (`bombcell.loading_utils.handle_manual_curation`) by giving each new
cluster the plain mean of the Kilosort templates its spikes came from (one template: that template), then
running the same per-unit metric functions as for any unit. `cluster_metrics` does exactly that for one
cluster, calling Bombcell's own functions (`bombcell.quality_metrics`) in the order of
`bombcell.helper_functions.get_all_quality_metrics`, without Bombcell's plots, GUI cache or files: nothing is
written. No Qt here. `MetricsProcess` runs it in a separate process, so that the computation never holds the
GIL that Phy's GUI thread needs.

Metrics that cannot be recomputed from one cluster's spikes are left NaN and listed in `Recording.not_live`
with the reason (distance metrics compare against every other cluster; raw amplitude and SNR need the raw
recording's waveforms).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.backfill import bombcell_default_arrays
from ..core.errors import UserError, listed
from ..io.find import load_results
from ..io.kilosort import find_spike_file
from ..io.results import BombcellResults

MIN_SPIKES = 50  # get_all_quality_metrics: fewer spikes -> every metric NaN except nSpikes
DISTANCE_METRICS = ("isolationDistance", "Lratio", "silhouetteScore")
RAW_METRICS = ("rawAmplitude", "signalToNoiseRatio")
DRIFT_METRICS = ("maxDriftEstimate", "cumDriftEstimate")
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


class LiveMetricsError(UserError):
    """The Kilosort folder lacks what the live metrics need; one line for the user."""


def _load(path: Path, mmap: bool = True) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise LiveMetricsError(f"{path}: file not found (needed to recompute Bombcell metrics live)") from None
    except Exception as exc:
        raise LiveMetricsError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None


class WindowedArray:
    """A .npy file (spike-sized: one row per spike) read a window at a time.

    Memory-mapped pages that were read count as the process's resident memory until they are unmapped: a
    cluster's spikes spread over an hour-long recording touch nearly every page of spike_times.npy,
    amplitudes.npy and spike_templates.npy. Indexing with an array of spike ids here maps one window of the
    file (``window_bytes``) at a time and unmaps it before the next, so the child process holds only the
    values it gathered. ``flat``: a (n, 1) file reads as (n,), like ``reshape(-1)``.
    """

    def __init__(self, path: Path, flat: bool = False, window_bytes: int = 4 << 20):
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                self.offset = f.tell()
        except FileNotFoundError:
            raise LiveMetricsError(f"{path}: file not found (needed to recompute Bombcell metrics live)") from None
        except Exception as exc:
            raise LiveMetricsError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
        if dtype.hasobject or (fortran and len(shape) > 1 and int(np.prod(shape[1:])) > 1):
            raise LiveMetricsError(f"{path}: cannot read (object or Fortran-ordered array)")
        self.path, self.dtype, self.file_shape = Path(path), dtype, tuple(shape)
        self.shape = (int(np.prod(shape)),) if flat else tuple(shape)
        self.row_shape = self.shape[1:]
        row_bytes = max(1, dtype.itemsize * int(np.prod(self.row_shape)))
        self.rows_per_window = max(1, window_bytes // row_bytes)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def _window(self, start: int, stop: int) -> np.ndarray:
        row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape))
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset + start * row_bytes,
                         shape=(stop - start, *self.row_shape))

    def _windows(self):
        for start in range(0, len(self), self.rows_per_window):
            yield start, min(start + self.rows_per_window, len(self))

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        flat = index.ravel().astype(np.int64)
        flat = np.where(flat < 0, flat + len(self), flat)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"index out of bounds for {self.path.name} of {len(self)} rows")
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        out = np.empty((flat.size, *self.row_shape), dtype=self.dtype)
        windows = ordered // self.rows_per_window
        for window in np.unique(windows):
            lo, hi = np.searchsorted(windows, [window, window + 1])
            start = int(window) * self.rows_per_window
            mapped = self._window(start, min(start + self.rows_per_window, len(self)))
            out[order[lo:hi]] = mapped[ordered[lo:hi] - start]
            del mapped  # unmapped: its pages leave the process
        return out.reshape(index.shape + self.row_shape)

    def min(self):
        return min(self._window(a, b).min() for a, b in self._windows())

    def max(self):
        return max(self._window(a, b).max() for a, b in self._windows())


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


@dataclass
class LiveInfo:
    """What the dock says about live metrics: rebuilt parameters, metrics not recomputed, notes."""

    rebuilt: dict[str, str]
    not_live: dict[str, str]
    notes: list[str]
    rebuilt_values: dict[str, np.ndarray]

    def caveats(self) -> list[str]:
        """What the dock and the CLI say of every live row: metrics not recomputed (grouped by why), rebuilt
        parameters."""
        reasons: dict[str, list[str]] = {}
        for metric, why in self.not_live.items():
            reasons.setdefault(why, []).append(metric)
        return ([f"not recomputed: {', '.join(metrics)} ({why})" for why, metrics in reasons.items()]
                + [f"rebuilt parameter {name}: {how}" for name, how in self.rebuilt.items()])


@dataclass
class Recording:
    """What Bombcell's metric functions read, loaded once (large arrays memory-mapped)."""

    ks_dir: Path
    params: dict                     # the run's parameters, with the arrays its parameter file dropped
    spike_samples: WindowedArray     # one value per spike, read a window at a time
    spike_templates: WindowedArray
    amplitudes: WindowedArray
    templates: np.ndarray            # whitened, as Kilosort saved them
    whitening_inverse: np.ndarray
    channel_positions: np.ndarray
    time_chunks: np.ndarray
    pc_features: WindowedArray | None = None
    pc_feature_ind: np.ndarray | None = None
    raw: np.ndarray | None = None    # the raw recording (samples x channels, memory-mapped), if reachable
    rebuilt: dict[str, str] = field(default_factory=dict)   # parameter -> how it was rebuilt
    not_live: dict[str, str] = field(default_factory=dict)  # metric -> why it is not recomputed live
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, ks_dir: str | Path, run_params: dict, run_metrics: pd.DataFrame | None = None) -> Recording:
        """``run_params`` as read from Bombcell's parameter file, ``run_metrics`` its metrics table (a metric
        the run did not compute is not listed as missing live; tauR_values may be told from it)."""
        ks_dir = Path(ks_dir)
        params = dict(run_params)
        params.update(plotDetails=False, plotGlobal=False, verbose=False)
        rebuilt = rebuild_arrays(params, run_metrics)
        corrected = ks_dir / "spike_times_corrected.npy"
        spike_samples = WindowedArray(corrected if corrected.is_file() else ks_dir / "spike_times.npy", flat=True)
        try:
            rate = float(params["ephys_sample_rate"])
        except (KeyError, TypeError, ValueError):
            raise LiveMetricsError("Bombcell's parameter file has no usable ephys_sample_rate") from None
        first, last = float(spike_samples.min()) / rate, float(spike_samples.max()) / rate
        if params.get("computeTimeChunks"):
            time_chunks = np.append(np.arange(first, last, params["deltaTimeChunk"]), last)
        else:
            time_chunks = np.array((first, last))

        recording = cls(
            ks_dir=ks_dir,
            params=params,
            spike_samples=spike_samples,
            spike_templates=WindowedArray(ks_dir / "spike_templates.npy", flat=True),
            amplitudes=WindowedArray(ks_dir / "amplitudes.npy", flat=True),
            templates=_load(ks_dir / "templates.npy"),
            whitening_inverse=_load(ks_dir / "whitening_mat_inv.npy", mmap=False),
            channel_positions=_load(ks_dir / "channel_positions.npy", mmap=False).squeeze(),
            time_chunks=time_chunks,
            rebuilt=rebuilt,
        )
        columns = set(run_metrics.columns) if run_metrics is not None else set()

        def ran(metrics) -> bool:
            return not columns or any(m in columns for m in metrics)

        if params.get("computeDrift") and ran(DRIFT_METRICS):
            if (ks_dir / "pc_features.npy").is_file():
                recording.pc_features = WindowedArray(ks_dir / "pc_features.npy")
                recording.pc_feature_ind = _load(ks_dir / "pc_feature_ind.npy", mmap=False)
            else:
                recording.not_live.update(dict.fromkeys(DRIFT_METRICS, "needs pc_features.npy"))
        if params.get("computeDistanceMetrics") and ran(DISTANCE_METRICS):
            recording.not_live.update(dict.fromkeys(
                DISTANCE_METRICS, "compares the cluster with every other cluster's PC features: not recomputed live"))
        if params.get("extractRaw") and ran(RAW_METRICS):
            recording.raw, why = open_raw(ks_dir, params)
            if recording.raw is None:
                recording.not_live.update(dict.fromkeys(RAW_METRICS, why))
        if params.get("removeDuplicateSpikes"):
            recording.notes.append("Bombcell ran with removeDuplicateSpikes on: live metrics count every spike, "
                                   "duplicates included")
        return recording

    def info(self) -> LiveInfo:
        return LiveInfo(self.rebuilt, self.not_live, self.notes,
                        {name: self.params[name] for name in self.rebuilt})

    def template_of(self, spike_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The cluster's template as Bombcell builds it for a curated folder (float64, unwhitened) and its PC
        channel indices."""
        parents = np.unique(np.asarray(self.spike_templates[spike_ids]).astype(int))
        # load_ephys_data unwhitens into an array of templates.npy's dtype; the padding for curated
        # clusters then makes the whole array float64
        waveforms = np.stack([
            (np.asarray(self.templates[t]).squeeze() @ self.whitening_inverse).astype(self.templates.dtype)
            for t in parents
        ]).astype(np.float64)
        template = waveforms.mean(axis=0) if len(parents) > 1 else waveforms[0]
        pc_ind = None
        if self.pc_feature_ind is not None:
            rows = self.pc_feature_ind[parents].astype(np.float64)
            pc_ind = (rows.mean(axis=0) if len(parents) > 1 else rows[0]).astype(int)
        return template, pc_ind


def rebuild_arrays(params: dict, run_metrics: pd.DataFrame | None) -> dict[str, str]:
    """Put back, in ``params``, the numpy arrays Bombcell's parameter file drops; returns how each was rebuilt.

    Bombcell's default for each (its `get_default_parameters`), except tauR_values for the 'hill' and 'llobet'
    RPV methods, which Bombcell documents as one value: when every unit of the run has the same estimatedTauR,
    that value is the one the run tested.
    """
    rebuilt = {}
    for name, value in bombcell_default_arrays().items():
        if isinstance(params.get(name), np.ndarray):
            continue
        how = "Bombcell's default"
        if name == "tauR_values" and params.get("rpv_method") in ("hill", "llobet") and run_metrics is not None \
                and "estimatedTauR" in run_metrics.columns:
            estimated = pd.to_numeric(run_metrics["estimatedTauR"], errors="coerce").dropna().unique()
            if len(estimated) == 1 and np.isfinite(estimated[0]):
                value = np.array([float(estimated[0])])
                how = "the one estimatedTauR of every unit of the run"
        params[name] = value
        span = f"{value[0] * 1000:g} ms" if value.size == 1 else \
            f"{value.min() * 1000:g}-{value.max() * 1000:g} ms, {value.size} values"
        rebuilt[name] = f"{span}: {how} (Bombcell's parameter file does not store arrays)"
    return rebuilt


def open_raw(ks_dir: Path, params: dict) -> tuple[np.ndarray | None, str]:
    """The raw recording as Bombcell's `extract_raw_waveforms` opens it (int16, samples x channels), or None and
    why not."""
    raw_file = params.get("raw_data_file")
    if not isinstance(raw_file, str) or not Path(raw_file).is_file():
        return None, f"needs the raw recording, and the run's raw_data_file ({raw_file}) is not there"
    if raw_file.endswith(".cbin") or params.get("ephys_meta_file"):
        return None, "needs the raw recording: compressed data and meta files are not read live"
    channel_map = ks_dir / "channel_map.npy"
    if channel_map.is_file() and not np.array_equal(np.load(channel_map).ravel(),
                                                     np.arange(np.load(channel_map).size)):
        return None, "needs the raw recording: a reordered channel map is not read live"
    n_channels = int(params["nChannels"])
    n_samples = Path(raw_file).stat().st_size // 2 // n_channels
    return np.memmap(raw_file, dtype="int16", mode="r", shape=(n_samples, n_channels)), ""


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


def spike_clusters_of(ks_dir: Path) -> np.ndarray:
    """Each spike's cluster, as Phy saved it (spike_clusters.npy), or Kilosort's templates before any curation."""
    try:
        path = find_spike_file(ks_dir)
    except FileNotFoundError as exc:
        raise LiveMetricsError(str(exc)) from None
    return _load(path).reshape(-1)


def with_live_rows(results: BombcellResults, ks_dir: str | Path) -> BombcellResults:
    """For scripts and the CLI (``--live``): add rows, recomputed here, for the clusters of the Kilosort folder's
    spike_clusters.npy that Bombcell's results lack (merged or split in Phy after Bombcell ran)."""
    ks_dir = Path(ks_dir)
    spike_clusters = spike_clusters_of(ks_dir)
    missing = np.setdiff1d(np.unique(spike_clusters), results.cluster_ids)
    if not len(missing):
        return results
    recording = Recording.load(ks_dir, results.params, results.metrics)
    order = np.argsort(spike_clusters, kind="stable")
    starts = np.searchsorted(spike_clusters[order], missing)
    ends = np.searchsorted(spike_clusters[order], missing, side="right")
    table = metrics_table(recording, {int(c): order[a:b] for c, a, b in zip(missing, starts, ends)})
    ids = listed(missing.tolist(), 10)
    notes = [f"{len(missing)} cluster(s) without a Bombcell row recomputed live with Bombcell's metric functions "
             f"({ids})", *recording.notes, *recording.info().caveats()]
    return append_rows(results, table, notes)


CHILD_WITHOUT_PYARROW = ("import sys; sys.modules['pyarrow'] = None; "
                         "from phy_bcreason.live.metrics import main; main(sys.argv[1:])")


def _columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """A table as plain numpy columns, which unpickle without pyarrow whatever the table's dtypes."""
    return {name: table[name].to_numpy() for name in table.columns}


class MetricsProcess:
    """`metrics_table` in a child process that keeps the recording open between calls, so that the computation
    never holds the GIL Phy's GUI thread needs. A plain ``python -m phy_bcreason.live.metrics`` child, not
    multiprocessing's spawn, which would run the script that started Phy again in the child. The two processes
    exchange pickles over the child's stdin/stdout; the child reads nothing but the parquet and npy files
    (with ``results``, not even the parquet files: the parent's copy is sent).

    The child also runs Bombcell's own classifier (`labels`), so that Bombcell and its imports (numba, scipy,
    matplotlib: about 160 MB) never enter Phy's process. It imports only Bombcell's metric modules, runs at
    a lower scheduling priority (``nice``) than Phy, and maps spike-sized files one window at a time."""

    def __init__(self, ks_dir: str | Path, bombcell_dir: str | Path, results: BombcellResults | None = None,
                 nice: int = 0):
        package_parent = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent,
                                                                           os.environ.get("PYTHONPATH")])),
               "MPLBACKEND": "Agg"}
        args = [sys.executable, "-m", "phy_bcreason.live.metrics", str(ks_dir), str(bombcell_dir)]
        if results is not None:
            # the child reads no parquet file then: without pyarrow (about 65 MB), which pandas would import
            args[1:3] = ["-c", CHILD_WITHOUT_PYARROW]
            args.append("--results-on-stdin")
        if nice:
            args.append(f"--nice={int(nice)}")
        env[PARENT_VARIABLE] = str(os.getpid())
        # its own session: Ctrl-C in Phy's terminal is for Phy, which then closes the child (or the child sees
        # its parent gone and ends by itself: `serve`)
        self.child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      start_new_session=True)
        self.ready = False
        self._lock = threading.Lock()  # one request at a time: live metrics and pictures come from two threads
        if results is not None:
            self._send((results.params, _columns(results.metrics)))

    def wait_ready(self) -> None:
        """Block until the child has opened the recording and imported Bombcell (seconds, once)."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if not self.ready:
            self._answer()
            self.ready = True

    def _ask(self, request):
        with self._lock:
            self._wait_ready()
            self._send(request)
            return self._answer()

    def _send(self, request) -> None:
        try:
            pickle.dump(request, self.child.stdin)
            self.child.stdin.flush()
        except OSError:
            raise LiveMetricsError("the process computing live metrics stopped (its error is in Phy's console)") \
                from None

    def _answer(self):
        try:
            ok, payload = pickle.load(self.child.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise LiveMetricsError("the process computing live metrics stopped (its error is in Phy's console)") \
                from None
        if not ok:
            raise LiveMetricsError(payload)
        return payload

    def table(self, clusters: dict[int, np.ndarray]) -> tuple[pd.DataFrame, LiveInfo]:
        return self._ask({int(c): np.asarray(s, dtype=np.int64) for c, s in clusters.items()})

    def labels(self, metrics: pd.DataFrame) -> np.ndarray:
        """Bombcell's own classifier (`api.bombcell_labels`) on ``metrics`` with the run's parameters."""
        return self._ask(("labels", _columns(metrics)))

    def evidence(self, cluster_id: int, spike_ids: np.ndarray, comparisons: list[dict], title: str,
                 width_px: int, draw: bool = True) -> tuple[dict, bytes] | None:
        """The evidence panel of one cluster (`evidence.picture`): what is drawn, and the PNG (None without
        ``draw``: measured only)."""
        return self._ask(("evidence", int(cluster_id), np.asarray(spike_ids, dtype=np.int64), comparisons, title,
                          int(width_px), bool(draw)))

    def close(self) -> None:
        """Stop the child at once: it only ever reads files, so there is nothing to finish."""
        self.child.kill()
        self.child.wait()
        for pipe in (self.child.stdin, self.child.stdout):
            pipe.close()


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


PARENT_VARIABLE = "PHY_BCREASON_PARENT_PID"


def _child_setup() -> None:
    """The child says nothing on the terminal it shares with Phy and never outlives Phy: what Bombcell prints
    (and warns) goes to the log at debug level (the child has no log handler: dropped), fd 1 to the null device,
    Ctrl-C is left to Phy, and a thread ends the process as soon as its parent is gone (killed, crashed) even in
    the middle of a computation."""
    from ..quiet import send_prints_to_log

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send_prints_to_log()
    logging.captureWarnings(True)
    logging.getLogger().addHandler(logging.NullHandler())  # no "last resort" printing of warnings to stderr
    try:
        parent = int(os.environ.get(PARENT_VARIABLE, ""))
    except ValueError:
        parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="watch-parent").start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _reply(out, answer) -> None:
    try:
        pickle.dump(answer, out)
        out.flush()
    except OSError:  # Phy is gone (BrokenPipeError): nobody to answer, nothing to say
        os._exit(0)


def _request():
    """The next request, or None when Phy closed the pipe (or died in the middle of a request)."""
    try:
        return pickle.load(sys.stdin.buffer)
    except EOFError:
        return None
    except Exception:
        os._exit(0)


def serve(ks_dir: str, bombcell_dir: str, results_on_stdin: bool = False, nice: int = 0) -> None:
    """The child's loop: {cluster id: spike ids} in, (True, (table, info)) or (False, message) out; or
    ("labels", metrics table) in, (True, Bombcell's labels) out; or ("evidence", cluster id, spike ids,
    comparisons, title, width, draw) in, (True, (what is drawn, PNG), or None when not drawn) out. With
    ``results_on_stdin`` the first message is the run's (params, metrics), instead of reading them from
    ``bombcell_dir``."""
    out = os.fdopen(os.dup(1), "wb")  # the answers; fd 1 itself goes to the null device
    _child_setup()
    if nice:
        os.nice(nice)
    error, recording, params = None, None, None
    measured: dict = {}  # cluster id -> its evidence, for pictures drawn again (what-if edits, a wider dock)
    try:
        if results_on_stdin:
            params, columns = pickle.load(sys.stdin.buffer)
            metrics = pd.DataFrame(columns)
        else:
            results = load_results(bombcell_dir, ks_dir=ks_dir)
            params, metrics = results.params, results.metrics
        import_bombcell_functions()
        recording = Recording.load(ks_dir, params, metrics)
        del metrics
        share_rpv_counts()  # imports Bombcell: seconds, before the first merge rather than during it
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0] if not isinstance(exc, LiveMetricsError) else str(exc)
    _reply(out, (True, None))  # ready (errors are told with each answer)
    while True:
        request = _request()
        if request is None:
            return
        try:
            if isinstance(request, tuple) and request[0] == "evidence":
                from .evidence import picture

                if error:
                    raise LiveMetricsError(error)
                answer = (True, picture(recording, measured, *request[1:]))
            elif isinstance(request, tuple) and request[0] == "labels":
                from ..core.judge import bombcell_labels

                if params is None:
                    raise LiveMetricsError(error)
                answer = (True, bombcell_labels(pd.DataFrame(request[1]), params, quiet=False))
            else:
                answer = (False, error) if error else (True, (metrics_table(recording, request), recording.info()))
        except Exception as exc:
            answer = (False, f"{type(exc).__name__}: {exc}".splitlines()[0])
        _reply(out, answer)


def main(argv: list[str]) -> None:
    """``KS_DIR BOMBCELL_DIR [--results-on-stdin] [--nice=N]``"""
    options = [arg for arg in argv[2:] if arg.startswith("--")]
    serve(*argv[:2], results_on_stdin="--results-on-stdin" in options,
          nice=next((int(o.split("=", 1)[1]) for o in options if o.startswith("--nice=")), 0))


if __name__ == "__main__":
    from phy_bcreason.live import metrics  # the real module, so that what it pickles names it, not __main__

    metrics.main(sys.argv[1:])
