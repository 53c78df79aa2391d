"""Realistic Kilosort-format test data, labelled by a real Bombcell run.

The folders written here are opened by Phy's ``TemplateController`` and by Bombcell
alike. The recording is simulated with SpikeInterface (its noise generator and template
injection, i.e. what ``spikeinterface.core.generate_ground_truth_recording`` does, plus
per-spike amplitude factors, which that function does not take) from hand-designed units,
exported with ``spikeinterface.exporters.export_to_phy`` (dense templates) and completed
with what Kilosort writes and Bombcell needs: ``whitening_mat_inv.npy``, Kilosort-like
positive amplitudes, PC features (computed here with numpy: SpikeInterface's PCA needs
scikit-learn, which the project does not depend on).

The units are chosen so that Bombcell's *default* parameters give every label
(GOOD, MUA, NOISE, NON-SOMA) several times, and so that most of Bombcell's rules fail
somewhere: see ``UNIT_SPECS`` (unit ``i`` of the folder is ``UNIT_SPECS[i]``) and
``label_table()``.

API::

    make_kilosort_folder(out_dir, seed=0, duration_s=200.0, with_raw=False) -> Path
    run_bombcell(ks_dir, save_path=None, param_overrides=None, raw=False) -> Path
    build_dataset(out_dir, seed=0, with_raw=False, param_overrides=None) -> Path

Command line (from the repository root)::

    python -m tests.dataset_builder OUT_DIR [--raw] [--seed N] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Bombcell imports matplotlib (and may plot): never open a window.
os.environ.setdefault("MPLBACKEND", "Agg")

__all__ = [
    "FS",
    "N_CHANNELS",
    "DEFAULT_DURATION_S",
    "GAIN_TO_UV",
    "UnitSpec",
    "UNIT_SPECS",
    "expected_labels",
    "simulate",
    "make_kilosort_folder",
    "run_bombcell",
    "build_dataset",
    "rerun_bombcell",
    "copy_dataset",
    "raw_file_of",
    "bombcell_params",
    "load_bc_metrics",
    "load_bc_params",
    "LABELS",
    "N_PCS",
    "label_table",
    "failing_comparisons",
    "BC_RULES",
]

# ---------------------------------------------------------------------------------------
# Recording constants
# ---------------------------------------------------------------------------------------

FS = 30000.0  # Hz, Bombcell's default ephys_sample_rate
N_CHANNELS = 32  # 2 columns x 16 rows
X_PITCH_UM = 32.0  # within Bombcell's 33 um channel tolerance: both columns feed the spatial decay fit
Y_PITCH_UM = 20.0  # < 30 um, so Bombcell computes the spatial decay
DEFAULT_DURATION_S = 200.0  # 3 full presence-ratio bins of 60 s
NOISE_UV = 6.0  # white noise std on every channel
NOISE_BLOCK_S = 10.0  # the noise repeats with this period
N_PCS = 3  # PC features per channel, as Kilosort
GAIN_TO_UV = 0.195  # uV per bit of the int16 raw file (Neuropixels 1.0 AP gain)

# Injected waveforms: 1 ms before the trough, 2.5 ms after.
INJECT_MS_BEFORE = 1.0
INJECT_MS_AFTER = 2.5
INJECT_NBEFORE = int(round(INJECT_MS_BEFORE * FS / 1000))
INJECT_WIDTH = INJECT_NBEFORE + int(round(INJECT_MS_AFTER * FS / 1000))

# Exported templates: 20 samples before the trough and 41 after, 61 in all like Kilosort 4
# (Bombcell's KS4 settings: spike_width 61, baseline window = samples 0..10).
TEMPLATE_MS_BEFORE = 0.67  # round(0.67 * 30) = 20 samples
TEMPLATE_MS_AFTER = 1.37  # round(1.37 * 30) = 41 samples
EDGE_MARGIN_S = 0.01  # no spike closer than this to the start or end of the recording

LABELS = ("GOOD", "MUA", "NOISE", "NON-SOMA")


# ---------------------------------------------------------------------------------------
# Unit designs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSpec:
    """One cluster of the sorting output.

    ``shape`` is ``"somatic"`` (SpikeInterface's 3-exponential fake spike, parameters in
    ``shape_params``, unset ones drawn from SpikeInterface's default ranges) or
    ``"gauss"`` (a sum of Gaussians: ``shape_params["components"]`` is a list of
    ``(centre, sigma, amplitude)`` in samples relative to the trough at 0, amplitude
    relative to the trough at -1).
    """

    name: str
    expected: str  # Bombcell label with default parameters and no raw data
    defect: str  # what is wrong with the unit, in words
    fails: tuple[str, ...] = ()  # Bombcell metrics expected past their threshold
    expected_raw: str | None = None  # label with raw data (extractRaw), if different
    shape: str = "somatic"
    shape_params: dict = field(default_factory=dict)
    amp_uv: float | tuple[float, float] = (90.0, 220.0)  # |trough| on the best channel
    decay_um: float | tuple[float, float] = (12.0, 18.0)  # exponential spatial decay length
    x_um: float | tuple[float, float] = (4.0, X_PITCH_UM - 4.0)  # position across the probe
    z_um: float | tuple[float, float] = (10.0, 20.0)  # distance from the probe plane
    on_channel: bool = False  # right in front of a channel (depth snapped to a channel row)
    rate_hz: float | tuple[float, float] = (5.0, 12.0)
    n_spikes: int | None = None  # fixed spike count instead of a rate
    refractory_ms: float = 3.0
    active: tuple[float, float] = (0.0, 1.0)  # fraction of the recording the unit fires in
    amp_cv: float = 0.08  # spike-to-spike amplitude variability
    amp_cut_z: float | None = None  # spikes with amplitude factor below 1 + z * cv are not detected
    merged_rate_hz: float | None = None  # a second neuron whose spikes were merged into this cluster
    merged_offset_um: float = 14.0  # its distance (in depth) from the first


def _g(*components):
    return {"components": [tuple(c) for c in components]}


# Unit i of the Kilosort folder is UNIT_SPECS[i]. Bombcell's default thresholds (0.94):
# nPeaks <= 2, nTroughs <= 1, 100 <= duration <= 1150 us, baseline <= 0.3, 2nd peak / trough
# <= 0.8, 0.01 <= spatial decay <= 0.1 /um; non-somatic: main peak / trough > 0.8, or
# (trough / peak1 < 5 and peak1 width < 4 and trough width < 5 and peak1 / peak2 > 3);
# MUA: spikes missing > 20 %, nSpikes < 300, RPV fraction > 0.1, presence ratio < 0.7,
# (raw data) raw amplitude < 40 uV or SNR < 5.
UNIT_SPECS: tuple[UnitSpec, ...] = (
    # --- GOOD ------------------------------------------------------------------------
    UnitSpec("good_a", "GOOD", "clean somatic unit", rate_hz=(8.0, 12.0)),
    UnitSpec("good_b", "GOOD", "clean somatic unit"),
    UnitSpec("good_c", "GOOD", "clean somatic unit, narrow (fast-spiking like)",
             shape_params=dict(repolarization_ms=0.45, recovery_ms=0.9, positive_amplitude=0.3),
             rate_hz=(12.0, 18.0), refractory_ms=2.5),
    UnitSpec("good_d", "GOOD", "clean somatic unit, large", amp_uv=(250.0, 320.0)),
    UnitSpec("good_e", "GOOD", "clean somatic unit"),
    UnitSpec("good_f", "GOOD", "clean somatic unit, slow firing but enough spikes", rate_hz=(4.5, 5.0),
             refractory_ms=4.5),
    UnitSpec("good_g", "GOOD", "clean somatic unit"),
    UnitSpec("low_amplitude", "GOOD", "clean but small unit: raw amplitude < 40 uV",
             fails=("rawAmplitude",), expected_raw="MUA", amp_uv=(27.0, 30.0)),
    # --- MUA -------------------------------------------------------------------------
    UnitSpec("low_rate", "MUA", "too few spikes", fails=("nSpikes",), rate_hz=(0.9, 1.1)),
    UnitSpec("drops_out", "MUA", "only fires in the first 55 s", fails=("presenceRatio",),
             active=(0.0, 0.275), rate_hz=(12.0, 15.0), refractory_ms=5.0),
    UnitSpec("drifts_in", "MUA", "only fires from 110 s on", fails=("presenceRatio",),
             active=(0.55, 1.0), rate_hz=(12.0, 15.0), refractory_ms=5.0),
    UnitSpec("merged_pair", "MUA", "two neurons merged in one cluster",
             fails=("fractionRPVs_estimatedTauR",), rate_hz=(7.0, 9.0), merged_rate_hz=7.0),
    UnitSpec("contaminated", "MUA", "a big neuron with a smaller one merged in",
             fails=("fractionRPVs_estimatedTauR",), rate_hz=(9.0, 11.0), merged_rate_hz=3.0,
             merged_offset_um=22.0),
    UnitSpec("amplitude_cut", "MUA", "lower half of the amplitude distribution below detection",
             fails=("percentageSpikesMissing_gaussian",), amp_cv=0.3, amp_cut_z=0.0,
             rate_hz=(10.0, 12.0), amp_uv=(200.0, 260.0)),
    UnitSpec("multi_fail", "MUA", "two neurons, few spikes, only present for 60 s",
             fails=("nSpikes", "presenceRatio", "fractionRPVs_estimatedTauR"),
             rate_hz=2.0, active=(0.3, 0.6), merged_rate_hz=2.0),
    # --- NOISE -----------------------------------------------------------------------
    UnitSpec("multi_peak", "NOISE", "ringing artefact: several peaks and troughs",
             fails=("nPeaks", "nTroughs"), shape="gauss",
             shape_params=_g((-6, 1.6, 0.45), (0, 1.6, -1.0), (6, 1.6, 0.75), (12, 1.6, -0.7),
                             (18, 1.6, 0.55), (24, 1.6, -0.45))),
    UnitSpec("too_long", "NOISE", "very slow repolarisation (> 1150 us)",
             fails=("waveformDuration_peakTrough",), shape="gauss",
             shape_params=_g((0, 2.5, -1.0), (38, 5.0, 0.3), (20, 8.0, 0.05))),
    UnitSpec("too_short", "NOISE", "sharp artefact (< 100 us)", fails=("waveformDuration_peakTrough",),
             shape="gauss", shape_params=_g((0, 0.8, -1.0), (2, 0.7, 0.5))),
    UnitSpec("bad_baseline", "NOISE", "large slow deflection before the spike",
             fails=("waveformBaselineFlatness",), shape="gauss",
             shape_params=_g((-15, 3.5, 0.55), (0, 1.6, -1.0), (9, 3.5, 0.2))),
    UnitSpec("big_second_peak", "NOISE", "second peak as large as the trough",
             fails=("scndPeakToTroughRatio",), shape="gauss",
             shape_params=_g((0, 1.6, -1.0), (8, 3.0, 0.95))),
    UnitSpec("flat_footprint", "NOISE", "same waveform on every channel (reference artefact)",
             fails=("spatialDecaySlope",), decay_um=900.0),
    UnitSpec("single_channel", "NOISE", "seen on one channel only", fails=("spatialDecaySlope",),
             decay_um=3.0, x_um=(0.0, 1.0), z_um=(2.0, 3.0), on_channel=True),
    UnitSpec("few_spikes", "NOISE", "< 50 spikes: Bombcell computes no waveform metric (NaN)",
             fails=("nPeaks",), n_spikes=35),
    # --- NON-SOMA --------------------------------------------------------------------
    UnitSpec("axon_a", "NON-SOMA", "axonal: positive peak larger than the trough",
             fails=("mainPeakToTroughRatio",), shape="gauss",
             shape_params=_g((-5, 1.5, 1.3), (0, 1.5, -1.0), (8, 3.0, 0.25))),
    UnitSpec("axon_b", "NON-SOMA", "axonal: positive peak larger than the trough",
             fails=("mainPeakToTroughRatio",), shape="gauss",
             shape_params=_g((-6, 2.0, 1.1), (0, 1.3, -1.0), (7, 2.5, 0.15))),
    UnitSpec("narrow_peak1_a", "NON-SOMA", "axonal: narrow first peak and trough, tiny second peak",
             fails=("troughToPeak2Ratio", "mainPeak_before_width", "mainTrough_width",
                    "peak1ToPeak2Ratio"), shape="gauss",
             shape_params=_g((-3, 0.9, 0.55), (0, 1.0, -1.0), (6, 2.5, 0.1))),
    UnitSpec("narrow_peak1_b", "NON-SOMA", "axonal: narrow first peak and trough, tiny second peak",
             fails=("troughToPeak2Ratio", "mainPeak_before_width", "mainTrough_width",
                    "peak1ToPeak2Ratio"), shape="gauss",
             shape_params=_g((-3, 0.8, 0.45), (0, 0.9, -1.0), (5, 2.0, 0.08))),
)


def expected_labels(raw: bool = False) -> dict[int, str]:
    """Cluster id -> the label Bombcell is expected to give with default parameters."""
    return {
        i: (s.expected_raw or s.expected) if raw else s.expected for i, s in enumerate(UNIT_SPECS)
    }


# ---------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------


def _draw(rng, value):
    if isinstance(value, tuple):
        return float(rng.uniform(*value))
    return float(value)


def _make_probe():
    from probeinterface import generate_multi_columns_probe

    probe = generate_multi_columns_probe(
        num_columns=2,
        num_contact_per_column=N_CHANNELS // 2,
        xpitch=X_PITCH_UM,
        ypitch=Y_PITCH_UM,
        contact_shapes="square",
        contact_shape_params={"width": 12},
    )
    probe.set_device_channel_indices(np.arange(N_CHANNELS))
    return probe


def _temporal_waveform(spec: UnitSpec, rng) -> np.ndarray:
    """Waveform of INJECT_WIDTH samples, trough (or main deflection) at INJECT_NBEFORE, min -1."""
    if spec.shape == "somatic":
        from spikeinterface.core.generate import default_unit_params_range, generate_single_fake_waveform

        kw = {}
        for key in ("positive_amplitude", "depolarization_ms", "repolarization_ms", "recovery_ms",
                    "smooth_ms"):
            kw[key] = _draw(rng, spec.shape_params.get(key, default_unit_params_range[key]))
        wf = generate_single_fake_waveform(
            sampling_frequency=FS, ms_before=INJECT_MS_BEFORE, ms_after=INJECT_MS_AFTER,
            negative_amplitude=-1.0, dtype="float64", **kw,
        )
    elif spec.shape == "gauss":
        t = np.arange(INJECT_WIDTH) - INJECT_NBEFORE
        wf = np.zeros(INJECT_WIDTH)
        for centre, sigma, amp in spec.shape_params["components"]:
            wf += amp * np.exp(-((t - centre) ** 2) / (2 * sigma**2))
    else:
        raise ValueError(f"unknown shape {spec.shape!r}")
    # taper both ends so that nothing is cut abruptly by the injection window
    n = 6
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    wf[:n] *= ramp
    wf[-n:] *= ramp[::-1]
    return wf / np.abs(wf.min())


def _footprint(channel_positions, location, decay_um) -> np.ndarray:
    """Exponential decay of the amplitude with the distance to a 3D location, 1 at the closest channel."""
    ch = np.column_stack([channel_positions, np.zeros(len(channel_positions))])
    dist = np.linalg.norm(ch - np.asarray(location)[None, :], axis=1)
    return np.exp(-(dist - dist.min()) / decay_um)


def _spike_train(rng, rate_hz, refractory_s, t0, t1) -> np.ndarray:
    """Poisson spike train with a dead time, in seconds, within [t0, t1)."""
    if t1 <= t0 or rate_hz <= 0:
        return np.zeros(0)
    mean_isi = 1.0 / rate_hz
    free = max(mean_isi - refractory_s, 1e-4)
    n = int((t1 - t0) * rate_hz * 1.5) + 20
    isi = refractory_s + rng.exponential(free, size=n)
    times = t0 + rng.uniform(0, mean_isi) + np.cumsum(isi)
    while times[-1] < t1:  # pragma: no cover - 1.5x margin makes this rare
        more = times[-1] + np.cumsum(refractory_s + rng.exponential(free, size=n))
        times = np.concatenate([times, more])
    return times[times < t1]


def _fixed_count_train(rng, n_spikes, refractory_s, t0, t1) -> np.ndarray:
    times = np.sort(rng.uniform(t0, t1, size=n_spikes))
    keep = np.concatenate([[True], np.diff(times) > refractory_s])
    return times[keep]


def _design(seed: int, duration_s: float):
    """Templates, spike trains and amplitude factors of the ground truth, and the sorting output."""
    probe = _make_probe()
    chan_pos = probe.contact_positions.astype(float)
    n_units = len(UNIT_SPECS)
    rng = np.random.default_rng(seed)

    # depths: spread along the probe (avoiding its ends), in a seed-dependent order
    y_min, y_max = 30.0, chan_pos[:, 1].max() - 30.0
    depths = np.linspace(y_min, y_max, n_units)
    depths = depths[rng.permutation(n_units)] + rng.uniform(-4, 4, n_units)

    gt_templates, gt_trains, gt_factors, gt_cluster = [], [], [], []
    units_meta = []
    t_lo, t_hi = EDGE_MARGIN_S, duration_s - EDGE_MARGIN_S
    for i, spec in enumerate(UNIT_SPECS):
        urng = np.random.default_rng([seed, i])
        loc = np.array([_draw(urng, spec.x_um), depths[i], _draw(urng, spec.z_um)])
        if spec.on_channel:
            loc[1] = Y_PITCH_UM * np.round(loc[1] / Y_PITCH_UM)
        amp = _draw(urng, spec.amp_uv)
        decay = _draw(urng, spec.decay_um)
        wf = _temporal_waveform(spec, urng)
        rate = _draw(urng, spec.rate_hz)
        a0 = t_lo + spec.active[0] * (t_hi - t_lo)
        a1 = t_lo + spec.active[1] * (t_hi - t_lo)

        neurons = [(loc, amp, wf, rate)]
        if spec.merged_rate_hz is not None:
            sign = 1.0 if loc[1] < chan_pos[:, 1].mean() else -1.0
            loc2 = loc + np.array([0.0, sign * spec.merged_offset_um, 0.0])
            loc2[0] = X_PITCH_UM - loc[0]
            neurons.append((loc2, amp * 0.85, wf, spec.merged_rate_hz))

        n_total = 0
        for nloc, namp, nwf, nrate in neurons:
            template = (namp * nwf)[:, None] * _footprint(chan_pos, nloc, decay)[None, :]
            refr = spec.refractory_ms / 1000
            if spec.n_spikes is not None:
                times = _fixed_count_train(urng, spec.n_spikes, refr, a0, a1)
                factors = 1.0 + spec.amp_cv * urng.standard_normal(times.size)
            elif spec.amp_cut_z is not None:
                # one detection threshold for the cluster, at 1 + z * cv times its main
                # neuron's amplitude: fire faster, then lose the spikes below the threshold
                from scipy.stats import norm

                z_cut = ((amp * (1.0 + spec.amp_cut_z * spec.amp_cv)) / namp - 1.0) / spec.amp_cv
                kept_fraction = max(1.0 - norm.cdf(z_cut), 0.05)
                times = _spike_train(urng, nrate / kept_fraction, refr, a0, a1)
                z = urng.standard_normal(times.size)
                keep = z >= z_cut
                times, factors = times[keep], 1.0 + spec.amp_cv * z[keep]
            else:
                times = _spike_train(urng, nrate, refr, a0, a1)
                factors = 1.0 + spec.amp_cv * urng.standard_normal(times.size)
            gt_templates.append(template)
            gt_trains.append(np.round(times * FS).astype(np.int64))
            gt_factors.append(np.clip(factors, 0.2, None))
            gt_cluster.append(i)
            n_total += times.size

        units_meta.append(dict(
            cluster_id=i, name=spec.name, expected=spec.expected,
            expected_raw=spec.expected_raw or spec.expected, defect=spec.defect, fails=list(spec.fails),
            x_um=float(loc[0]), y_um=float(loc[1]), z_um=float(loc[2]), amp_uv=amp, decay_um=decay,
            rate_hz=rate, n_neurons=len(neurons), n_spikes=int(n_total),
        ))

    return dict(
        probe=probe,
        templates=np.stack(gt_templates).astype("float32"),
        trains=gt_trains,
        factors=gt_factors,
        cluster_of_neuron=np.array(gt_cluster),
        units=units_meta,
    )


def _fit_channel_pcas(waveforms, n_components):
    """One PCA per channel (like Kilosort / SpikeInterface's "by_channel_local"), with numpy.

    waveforms: (n_spikes, n_samples, n_channels). Returns the mean (n_channels, n_samples)
    and the components (n_channels, n_components, n_samples), signs fixed for determinism.
    """
    wf = np.ascontiguousarray(np.asarray(waveforms, dtype="float64").transpose(2, 0, 1))  # ch, spike, t
    mean = wf.mean(axis=1)
    comps = np.zeros((wf.shape[0], n_components, wf.shape[2]))
    for ch in range(wf.shape[0]):
        x = wf[ch] - mean[ch]
        _, evecs = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
        v = evecs[:, ::-1][:, :n_components].T
        signs = np.sign(v[np.arange(len(v)), np.abs(v).argmax(axis=1)])
        comps[ch] = v * signs[:, None]
    return mean, comps


def _pc_features(recording, spike_samples, templates_width, pca_mean, pca_components, chunk_s=4.0):
    """PC features of every spike on every channel, in one pass over the recording."""
    nbefore = int(round(TEMPLATE_MS_BEFORE * FS / 1000))
    n_total = recording.get_num_samples()
    chunk = int(chunk_s * FS)
    n_channels = pca_components.shape[0]
    features = np.zeros((spike_samples.size, pca_components.shape[1], n_channels), dtype="float32")
    offsets = np.arange(templates_width) - nbefore
    for start in range(0, n_total, chunk):
        stop = min(start + chunk, n_total)
        lo, hi = np.searchsorted(spike_samples, [start, stop])
        if hi == lo:
            continue
        t0 = max(start - nbefore, 0)
        t1 = min(stop + templates_width, n_total)
        traces = recording.get_traces(start_frame=t0, end_frame=t1, return_in_uV=True).astype("float64")
        idx = np.clip(spike_samples[lo:hi, None] - t0 + offsets[None, :], 0, traces.shape[0] - 1)
        centred = traces[idx] - pca_mean.T[None]  # spike, sample, channel
        features[lo:hi] = np.einsum("kts,sct->kcs", centred, pca_components)
    return features


def _kilosort_amplitudes(templates, neuron_templates, spike_neurons, spike_clusters, spike_factors, rng):
    """Per-spike amplitudes as Kilosort's template fit would give them, in uV.

    Kilosort's amplitude is the scaling of the cluster template that best fits the spike,
    fitted together with the overlapping spikes of the other templates. Here: the spike's
    true amplitude factor times the least-squares projection of its neuron's template on
    the cluster template (a merged neuron fits with its own scale), times the template's
    peak |uV|, plus the noise of a matched filter (NOISE_UV * peak / ||template||).
    Measuring it on the traces instead lets overlapping spikes through as outliers, which
    make Bombcell's Gaussian fit of the amplitude distribution (percentageSpikesMissing)
    unpredictable.
    """
    templates = templates.astype("float64")
    neuron_templates = neuron_templates.astype("float64")
    norms2 = np.maximum(np.einsum("uts,uts->u", templates, templates), 1e-12)
    peaks = np.abs(templates).max(axis=(1, 2))
    cluster_of_neuron = np.zeros(len(neuron_templates), dtype=int)
    cluster_of_neuron[spike_neurons] = spike_clusters
    scale = np.einsum("nts,nts->n", neuron_templates, templates[cluster_of_neuron])
    scale = scale / norms2[cluster_of_neuron] * peaks[cluster_of_neuron]
    noise_sd = NOISE_UV * peaks / np.sqrt(norms2)
    amplitudes = spike_factors * scale[spike_neurons]
    amplitudes += noise_sd[spike_clusters] * rng.standard_normal(amplitudes.size)
    return np.abs(amplitudes)


def _compute_template_similarity_numpy(analyzer):
    """export_to_phy computes "template_similarity" (similar_templates.npy) when missing. Its
    numba kernel (parallel=True, not cached) takes ~30 s to compile on a small machine, which
    is far more than the computation: compute it with SpikeInterface's numpy kernel instead."""
    from spikeinterface.postprocessing import template_similarity as ts

    kernel = getattr(ts, "_compute_similarity_matrix", None)
    numpy_kernel = getattr(ts, "_compute_similarity_matrix_numpy", None)
    if kernel is None or numpy_kernel is None:  # another SpikeInterface version: just wait
        analyzer.compute("template_similarity", method="cosine")
        return
    ts._compute_similarity_matrix = numpy_kernel
    try:
        analyzer.compute("template_similarity", method="cosine")
    finally:
        ts._compute_similarity_matrix = kernel


def _job_kwargs():
    return dict(n_jobs=1, chunk_duration="2s", progress_bar=False)


def _write_params(ks_dir: Path, dat_path: str, n_channels: int, dtype: str):
    (ks_dir / "params.py").write_text(
        f"dat_path = {dat_path!r}\n"
        f"n_channels_dat = {n_channels}\n"
        f"dtype = {dtype!r}\n"
        f"offset = 0\n"
        f"sample_rate = {FS}\n"
        f"hp_filtered = True\n"
    )


def simulate(seed: int = 0, duration_s: float = DEFAULT_DURATION_S) -> dict:
    """The simulated recording and the sorting output of the designed units (no file written).

    Returns a dict: ``design`` (see ``_design``), ``recording`` (lazy, uV gains set),
    ``sorting`` (cluster ``i`` = ``UNIT_SPECS[i]``, unit ids 0..N-1), the ground-truth spike
    ``samples``, neuron ``labels``, amplitude ``factors`` and ``clusters`` (cluster of each
    spike, in the same order), and ``main_channels`` (best channel of each cluster).
    """
    from spikeinterface.core import NumpySorting
    from spikeinterface.core.generate import InjectTemplatesRecording
    from spikeinterface.generation.noise_tools import NoiseGeneratorRecording

    seed = int(seed)
    design = _design(seed, float(duration_s))
    n_neurons = len(design["trains"])

    # --- ground truth recording, in int16 bits (gain GAIN_TO_UV) ------------------------
    samples = np.concatenate(design["trains"])
    labels = np.concatenate([np.full(t.size, k) for k, t in enumerate(design["trains"])])
    factors = np.concatenate(design["factors"])
    gt_sorting = NumpySorting.from_samples_and_labels([samples], [labels], FS, unit_ids=np.arange(n_neurons))
    # amplitude_factor follows the order of the sorting's spike vector (sample, then unit)
    gt_order = np.lexsort((labels, samples))
    spike_vector = gt_sorting.to_spike_vector()
    assert np.array_equal(spike_vector["sample_index"], samples[gt_order])
    assert np.array_equal(spike_vector["unit_index"], labels[gt_order])

    noise = NoiseGeneratorRecording(
        num_channels=N_CHANNELS, sampling_frequency=FS, durations=[float(duration_s)],
        noise_levels=NOISE_UV / GAIN_TO_UV, dtype="float32", seed=seed,
        # a 10 s block of white noise, tiled: generating 200 s of noise on the fly costs ~5 s
        # per pass over the recording
        strategy="tile_pregenerated", noise_block_size=int(NOISE_BLOCK_S * FS),
    )
    recording = InjectTemplatesRecording(
        gt_sorting, design["templates"] / GAIN_TO_UV, nbefore=INJECT_NBEFORE,
        amplitude_factor=factors[gt_order], parent_recording=noise,
    )
    recording.set_probe(design["probe"])
    recording.set_channel_gains(GAIN_TO_UV)
    recording.set_channel_offsets(0.0)
    recording.annotate(is_filtered=True)

    # --- the sorting output: hidden merged neurons take their cluster's label -----------
    clusters = design["cluster_of_neuron"][labels]
    n_clusters = len(UNIT_SPECS)
    sorting = NumpySorting.from_samples_and_labels([samples], [clusters], FS, unit_ids=np.arange(n_clusters))

    # main channels are known from the design: spares SpikeInterface a pass over the recording
    main_channels = np.array([
        int(np.ptp(design["templates"][np.flatnonzero(design["cluster_of_neuron"] == k)[0]], axis=0).argmax())
        for k in range(n_clusters)
    ])
    return dict(design=design, recording=recording, sorting=sorting, samples=samples, labels=labels,
                factors=factors, clusters=clusters, main_channels=main_channels)


def make_kilosort_folder(out_dir, *, seed=0, duration_s=DEFAULT_DURATION_S, with_raw=False) -> Path:
    """Simulate a recording and write the Kilosort folder of its (deliberately imperfect) sorting.

    ``out_dir`` must not exist or be empty. Writes spike_times.npy, spike_templates.npy,
    spike_clusters.npy, amplitudes.npy, templates.npy (dense, 61 samples, unwhitened),
    channel_map.npy, channel_positions.npy, whitening_mat.npy / whitening_mat_inv.npy
    (identity), pc_features.npy, pc_feature_ind.npy, similar_templates.npy, params.py,
    cluster_group.tsv, and ground_truth.json (the design of each cluster). With
    ``with_raw`` also ``recording.bin`` (int16, GAIN_TO_UV uV per bit), named by params.py.
    """
    from spikeinterface.core import create_sorting_analyzer
    from spikeinterface.exporters import export_to_phy

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    if out_dir.exists():
        out_dir.rmdir()
    seed = int(seed)
    sim = simulate(seed, duration_s)
    design, recording, sorting = sim["design"], sim["recording"], sim["sorting"]
    samples, labels, factors, clusters = sim["samples"], sim["labels"], sim["factors"], sim["clusters"]
    main_channels = sim["main_channels"]
    n_clusters = len(UNIT_SPECS)

    job_kwargs = _job_kwargs()
    analyzer = create_sorting_analyzer(
        sorting, recording, format="memory", sparse=False, return_in_uV=True, seed=seed,
        main_channel_indices=main_channels,
    )
    analyzer.compute("random_spikes", method="uniform", max_spikes_per_unit=300, seed=seed)
    analyzer.compute("waveforms", ms_before=TEMPLATE_MS_BEFORE, ms_after=TEMPLATE_MS_AFTER, **job_kwargs)
    analyzer.compute("templates", operators=["average"])
    _compute_template_similarity_numpy(analyzer)

    # amplitudes and PC features are computed below in one pass (SpikeInterface's
    # principal_components extension needs scikit-learn, which the project does not depend on)
    export_to_phy(
        analyzer, out_dir, compute_pc_features=False, compute_amplitudes=False, sparsity=None,
        copy_binary=with_raw, dtype="int16", remove_if_exists=False, use_relative_path=True,
        add_quality_metrics=False, add_template_metrics=False, verbose=False, **job_kwargs,
    )
    templates = np.load(out_dir / "templates.npy")
    random_waveforms = analyzer.get_extension("waveforms").get_data()
    pca_mean, pca_components = _fit_channel_pcas(random_waveforms, n_components=N_PCS)
    spike_times = np.load(out_dir / "spike_times.npy").ravel().astype(np.int64)
    spike_clusters = np.load(out_dir / "spike_clusters.npy").ravel()
    # the export's spike order (by sample, then cluster) in terms of the ground truth
    order = np.lexsort((clusters, samples))
    assert np.array_equal(samples[order], spike_times) and np.array_equal(clusters[order], spike_clusters)
    pc_features = _pc_features(recording, spike_times, templates.shape[1], pca_mean, pca_components)
    crop = slice(INJECT_NBEFORE - int(round(TEMPLATE_MS_BEFORE * FS / 1000)), None)
    neuron_templates = design["templates"][:, crop][:, : templates.shape[1]]
    amplitudes = _kilosort_amplitudes(
        templates, neuron_templates, labels[order], spike_clusters, factors[order],
        np.random.default_rng([seed, 1_000_003]),
    )
    np.save(out_dir / "amplitudes.npy", amplitudes)
    np.save(out_dir / "pc_features.npy", pc_features)
    np.save(out_dir / "pc_feature_ind.npy", np.tile(np.arange(N_CHANNELS, dtype="uint32"), (n_clusters, 1)))

    # --- complete / fix what Kilosort has and the export lacks --------------------------
    # templates are not whitened here: identity whitening matrices
    np.save(out_dir / "whitening_mat.npy", np.eye(N_CHANNELS))
    np.save(out_dir / "whitening_mat_inv.npy", np.eye(N_CHANNELS))
    # spike_times as Kilosort writes them
    np.save(out_dir / "spike_times.npy", np.load(out_dir / "spike_times.npy").astype("uint64"))
    # keep only the Kilosort files: the export's extra cluster_*.tsv would be loaded as columns by phy
    for extra in ("cluster_si_unit_ids.tsv", "cluster_channel_group.tsv", "channel_map_si.npy"):
        (out_dir / extra).unlink(missing_ok=True)

    if with_raw:
        (out_dir / "recording.dat").rename(out_dir / "recording.bin")
        _write_params(out_dir, "recording.bin", N_CHANNELS, "int16")
    else:
        _write_params(out_dir, "", N_CHANNELS, "int16")

    n_samples = int(round(duration_s * FS))
    meta = dict(
        seed=seed, duration_s=float(duration_s), n_samples=n_samples, sample_rate=FS,
        n_channels=N_CHANNELS, noise_uv=NOISE_UV, gain_to_uV=GAIN_TO_UV, with_raw=bool(with_raw),
        raw_file="recording.bin" if with_raw else None, units=design["units"],
        specs=[asdict(s) for s in UNIT_SPECS],
    )
    (out_dir / "ground_truth.json").write_text(json.dumps(meta, indent=1, default=_json_default))
    return out_dir


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------------------
# Bombcell
# ---------------------------------------------------------------------------------------


def _read_params_py(ks_dir: Path) -> dict:
    from phylib.io.model import get_template_params

    return get_template_params(str(ks_dir / "params.py"))


def raw_file_of(ks_dir) -> Path | None:
    """The raw data file named in params.py, if it exists."""
    params = _read_params_py(Path(ks_dir))
    for p in params.get("dat_path") or []:
        if Path(p).is_file():
            return Path(p)
    return None


# a param_overrides value: the parameter is left out (a parameter set of an older Bombcell, which had none)
DROP = "<left out>"


def bombcell_params(ks_dir, *, raw=False, param_overrides=None) -> dict:
    """Bombcell's default parameters for ``ks_dir`` (Kilosort 4), set up for this data.

    With ``raw`` the raw file named in params.py is used (extractRaw on) and the recording
    settings Bombcell cannot find without a SpikeGLX meta file are filled in from params.py
    (nChannels, nSyncChannels = 0, ephys_sample_rate, gain_to_uV). Plots are off, raw
    waveform extraction uses threads. ``param_overrides`` is applied last (``DROP``: the key removed).
    """
    import bombcell as bc

    ks_dir = Path(ks_dir)
    raw_file = None
    if raw:
        raw_file = raw_file_of(ks_dir)
        if raw_file is None:
            raise FileNotFoundError(f"{ks_dir} has no raw data file (build it with with_raw=True)")
    gain = GAIN_TO_UV if raw_file is not None else None
    param = bc.get_default_parameters(str(ks_dir), raw_file=str(raw_file) if raw_file else None,
                                      kilosort_version=4, gain_to_uV=gain)
    params_py = _read_params_py(ks_dir)
    param["ephys_sample_rate"] = float(params_py["sample_rate"])
    # no plots, no windows
    param["plotGlobal"] = False
    param["plotDetails"] = False
    param["savePlots"] = False
    param["verbose"] = False
    if raw_file is not None:
        param["extractRaw"] = True
        param["nChannels"] = int(params_py["n_channels_dat"])
        param["nSyncChannels"] = 0
        # processes need a pool start-up per run and fork a process per core: threads are
        # enough for a few dozen units
        param["joblib_backend_preference"] = "threads"
    for key, value in (param_overrides or {}).items():
        if isinstance(value, str) and value == DROP:
            param.pop(key, None)
        else:
            param[key] = value
    return param


def run_bombcell(ks_dir, *, save_path=None, param_overrides=None, raw=False) -> Path:
    """Run Bombcell on ``ks_dir`` (default parameters + overrides) and return its save_path.

    ``save_path`` defaults to ``ks_dir / "bombcell"``. Bombcell also writes its
    ``cluster_*.tsv`` files (bc_unitType...) into ``ks_dir`` itself.
    """
    import matplotlib

    matplotlib.use("Agg")
    import bombcell as bc

    ks_dir = Path(ks_dir)
    save_path = Path(save_path) if save_path is not None else ks_dir / "bombcell"
    save_path.mkdir(parents=True, exist_ok=True)
    param = bombcell_params(ks_dir, raw=raw, param_overrides=param_overrides)
    bc.run_bombcell(str(ks_dir), str(save_path), param)
    return save_path


def build_dataset(out_dir, *, seed=0, with_raw=False, param_overrides=None,
                  duration_s=DEFAULT_DURATION_S) -> Path:
    """``make_kilosort_folder`` then ``run_bombcell`` (raw data used when ``with_raw``)."""
    ks_dir = make_kilosort_folder(out_dir, seed=seed, duration_s=duration_s, with_raw=with_raw)
    run_bombcell(ks_dir, param_overrides=param_overrides, raw=with_raw)
    return ks_dir


def rerun_bombcell(ks_dir, param_overrides, name, *, raw=None) -> Path:
    """Run Bombcell again on ``ks_dir`` with ``param_overrides``, into ``ks_dir / name``.

    Bombcell always writes its ``cluster_*.tsv`` files into the Kilosort folder itself: they
    are put back as they were, so the folder keeps describing its first (default) run.
    ``raw=None`` uses the raw data if the first run (``ks_dir / "bombcell"``) did.
    """
    ks_dir = Path(ks_dir)
    if raw is None:
        base = ks_dir / "bombcell" / "_bc_parameters._bc_qMetrics.parquet"
        if base.exists():
            raw = _truthy(load_bc_params(ks_dir).get("extractRaw", False))
        else:
            raw = raw_file_of(ks_dir) is not None
    before = {p: p.read_bytes() for p in ks_dir.glob("cluster_*.tsv")}
    try:
        return run_bombcell(ks_dir, save_path=ks_dir / name, param_overrides=param_overrides, raw=raw)
    finally:
        for p in ks_dir.glob("cluster_*.tsv"):
            if p not in before:
                p.unlink()
        for p, content in before.items():
            p.write_bytes(content)


def copy_dataset(src, dst, *, raw="symlink") -> Path:
    """Copy a built dataset (Kilosort folder and its Bombcell output) to ``dst``.

    Bombcell variant reruns in subfolders are left out.
    The raw file, if any, is symlinked (``raw="symlink"``), copied (``"copy"``) or left out
    (``None``: params.py then names no raw file). Phy's cache (``.phy``) and log are left out.
    """
    src, dst = Path(src), Path(dst)
    raw_file = raw_file_of(src)
    patterns = shutil.ignore_patterns(".phy", "phy.log", *([raw_file.name] if raw_file else []))

    def ignore(folder, names):
        # Only the default Bombcell run: variant reruns (bombcell_rerun) stay with the session's dataset.
        reruns = {n for n in names if Path(folder) == src and n != "bombcell"
                  and (src / n / "templates._bc_qMetrics.parquet").is_file()}
        return set(patterns(folder, names)) | reruns

    shutil.copytree(src, dst, ignore=ignore)
    if raw_file is not None:
        if raw == "symlink":
            (dst / raw_file.name).symlink_to(raw_file.resolve())
        elif raw == "copy":
            shutil.copy2(raw_file, dst / raw_file.name)
        elif raw is None:
            params = _read_params_py(src)
            _write_params(dst, "", int(params["n_channels_dat"]), np.dtype(params["dtype"]).name)
        else:
            raise ValueError(f"raw must be 'symlink', 'copy' or None, not {raw!r}")
    return dst


# ---------------------------------------------------------------------------------------
# Reading the results back
# ---------------------------------------------------------------------------------------


def load_bc_metrics(ks_dir, save_path=None):
    """Bombcell's per-unit table (``templates._bc_qMetrics.parquet``), label in ``bc_unitType``."""
    import pandas as pd

    save_path = Path(save_path) if save_path is not None else Path(ks_dir) / "bombcell"
    return pd.read_parquet(save_path / "templates._bc_qMetrics.parquet")


def load_bc_params(ks_dir, save_path=None) -> dict:
    import pandas as pd

    save_path = Path(save_path) if save_path is not None else Path(ks_dir) / "bombcell"
    df = pd.read_parquet(save_path / "_bc_parameters._bc_qMetrics.parquet")
    return {k: df[k].iloc[0] for k in df.columns}


# Bombcell's classification comparisons (bombcell.quality_metrics.get_quality_unit_type):
# (group, metric, operator, threshold parameter). The label is NOISE if any "noise" comparison
# holds (or nPeaks is NaN: < 50 spikes), else MUA if any "mua" one holds (the "raw" ones only
# with extractRaw), else GOOD; then NOISE-free units that are "non_somatic" become NON-SOMA.
# The four "non_somatic_group" comparisons count only together (they are ANDed).
BC_RULES = (
    ("noise", "nPeaks", ">", "maxNPeaks"),
    ("noise", "nTroughs", ">", "maxNTroughs"),
    ("noise", "waveformDuration_peakTrough", "<", "minWvDuration"),
    ("noise", "waveformDuration_peakTrough", ">", "maxWvDuration"),
    ("noise", "waveformBaselineFlatness", ">", "maxWvBaselineFraction"),
    ("noise", "scndPeakToTroughRatio", ">", "maxScndPeakToTroughRatio_noise"),
    ("noise_exp_decay", "spatialDecaySlope", "<", "minSpatialDecaySlopeExp"),
    ("noise_exp_decay", "spatialDecaySlope", ">", "maxSpatialDecaySlopeExp"),
    ("noise_lin_decay", "spatialDecaySlope", "<", "minSpatialDecaySlope"),
    ("non_somatic_group", "troughToPeak2Ratio", "<", "minTroughToPeak2Ratio_nonSomatic"),
    ("non_somatic_group", "mainPeak_before_width", "<", "minWidthFirstPeak_nonSomatic"),
    ("non_somatic_group", "mainTrough_width", "<", "minWidthMainTrough_nonSomatic"),
    ("non_somatic_group", "peak1ToPeak2Ratio", ">", "maxPeak1ToPeak2Ratio_nonSomatic"),
    ("non_somatic", "mainPeakToTroughRatio", ">", "maxMainPeakToTroughRatio_nonSomatic"),
    ("mua", "percentageSpikesMissing_gaussian", ">", "maxPercSpikesMissing"),
    ("mua", "nSpikes", "<", "minNumSpikes"),
    ("mua", "fractionRPVs_estimatedTauR", ">", "maxRPVviolations"),
    ("mua", "presenceRatio", "<", "minPresenceRatio"),
    ("mua_raw", "rawAmplitude", "<", "minAmplitude"),
    ("mua_raw", "signalToNoiseRatio", "<", "minSNR"),
)


def failing_comparisons(row, param) -> list[str]:
    """The Bombcell comparisons a unit (a row of the qMetrics table) fails, as text."""
    p = dict(param)
    use = {"noise", "non_somatic", "mua", "non_somatic_group"}
    if _truthy(p.get("computeSpatialDecay", True)):
        use.add("noise_lin_decay" if _truthy(p.get("spDecayLinFit", False)) else "noise_exp_decay")
    if _truthy(p.get("extractRaw", False)):
        use.add("mua_raw")
    out, group = [], []
    if float(row.get("nSpikes", 0)) > 0 and np.isnan(float(row.get("nPeaks", np.nan))):
        out.append("nPeaks=NaN (< 50 spikes: no waveform metrics)")
    for kind, metric, op, key in BC_RULES:
        if kind not in use or key not in p or metric not in row:
            continue
        v, t = float(row[metric]), float(p[key])
        if np.isnan(v) or not ((op == "<" and v < t) or (op == ">" and v > t)):
            continue
        text = f"{metric}={v:.3g} {op} {key}={t:.3g}"
        (group if kind == "non_somatic_group" else out).append(text)
    if len(group) == 4:
        out.append("peak1/peak2 group: " + ", ".join(group))
    return out


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def label_table(ks_dir, save_path=None):
    """DataFrame: cluster_id, name, expected label, Bombcell's label and the failing comparisons."""
    import pandas as pd

    ks_dir = Path(ks_dir)
    qm = load_bc_metrics(ks_dir, save_path)
    param = load_bc_params(ks_dir, save_path)
    raw = _truthy(param.get("extractRaw", False))
    expected = expected_labels(raw=raw)
    rows = []
    for _, r in qm.iterrows():
        cid = int(r["phy_clusterID"])
        spec = UNIT_SPECS[cid] if cid < len(UNIT_SPECS) else None
        rows.append(dict(
            cluster_id=cid,
            name=spec.name if spec else "?",
            expected=expected.get(cid, "?"),
            bc_unitType=r["bc_unitType"],
            nSpikes=int(r["nSpikes"]),
            failing="; ".join(failing_comparisons(r, param)),
        ))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.dataset_builder", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--raw", action="store_true", help="also write the raw int16 recording and use it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="seconds")
    ap.add_argument("--no-bombcell", action="store_true", help="only write the Kilosort folder")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    ks_dir = make_kilosort_folder(args.out_dir, seed=args.seed, duration_s=args.duration, with_raw=args.raw)
    t1 = time.perf_counter()
    print(f"Kilosort folder: {ks_dir} ({t1 - t0:.1f} s)")
    if args.no_bombcell:
        return 0
    run_bombcell(ks_dir, raw=args.raw)
    t2 = time.perf_counter()
    print(f"Bombcell: {ks_dir / 'bombcell'} ({t2 - t1:.1f} s)")
    import pandas as pd

    table = label_table(ks_dir)
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 200):
        print(table.to_string(index=False))
    print(table["bc_unitType"].value_counts().to_string())
    mismatched = table[table["expected"] != table["bc_unitType"]]
    if len(mismatched):
        print(f"{len(mismatched)} unit(s) labelled differently from their design", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
