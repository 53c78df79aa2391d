"""What Bombcell's metric functions read from a Kilosort folder, opened once for the live metrics (`metrics.py`):
the spike-sized arrays read a window at a time (`WindowedArray`), the templates, the run's parameters with the
arrays Bombcell's parameter file drops put back (`rebuild_arrays`), the raw recording where it can be read
(`open_raw`). No Qt here.

Metrics that cannot be recomputed from one cluster's spikes are left NaN and listed in `Recording.not_live`
with the reason (distance metrics compare against every other cluster; raw amplitude and SNR need the raw
recording's waveforms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.backfill import bombcell_default_arrays
from ..core.errors import UserError
from ..io.kilosort import find_raw_file, find_spike_file

DISTANCE_METRICS = ("isolationDistance", "Lratio", "silhouetteScore")
RAW_METRICS = ("rawAmplitude", "signalToNoiseRatio")
DRIFT_METRICS = ("maxDriftEstimate", "cumDriftEstimate")


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
            recording.raw, why = open_raw(ks_dir, params, recording.notes)
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


def open_raw(ks_dir: Path, params: dict, notes: list[str] | None = None) -> tuple[np.ndarray | None, str]:
    """The raw recording as Bombcell's `extract_raw_waveforms` opens it (int16, samples x channels), or None and
    why not. ``raw_data_file`` is as written where Bombcell ran (perhaps another OS, another drive): when it is
    not there, the file of that name in the Kilosort folder or beside params.py's dat_path (`find_raw_file`);
    a note in ``notes`` says which was read."""
    written = params.get("raw_data_file")
    if not isinstance(written, str) or not written:
        return None, f"needs the raw recording, and the run names none (raw_data_file {written!r})"
    found, tried = find_raw_file(ks_dir, written)
    if found is None:
        return None, f"needs the raw recording, and the run's raw_data_file ({written}) is not there; also " \
                     f"looked for it by name at {', '.join(tried[1:]) or 'no other place'}"
    if str(found) != written and notes is not None:
        notes.append(f"the run's raw_data_file ({written}) is not on this machine: read {found}, the file of "
                     "that name")
    raw_file = str(found)
    channel_map = ks_dir / "channel_map.npy"
    if channel_map.is_file() and not np.array_equal(np.load(channel_map).ravel(),
                                                     np.arange(np.load(channel_map).size)):
        return None, "needs the raw recording: a reordered channel map is not read live"
    n_channels = int(params["nChannels"])
    n_samples = Path(raw_file).stat().st_size // 2 // n_channels
    return np.memmap(raw_file, dtype="int16", mode="r", shape=(n_samples, n_channels)), ""


def spike_clusters_of(ks_dir: Path) -> np.ndarray:
    """Each spike's cluster, as Phy saved it (spike_clusters.npy), or Kilosort's templates before any curation."""
    try:
        path = find_spike_file(ks_dir)
    except FileNotFoundError as exc:
        raise LiveMetricsError(str(exc)) from None
    return _load(path).reshape(-1)
