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
RPV_METRICS = ("fractionRPVs_estimatedTauR", "estimatedTauR", "RPV_window_index")
# measured on the time chunks kept, which the refractory test helps choose when computeTimeChunks is on
KEPT_TIME_METRICS = ("useTheseTimesStart", "useTheseTimesStop", "percentageSpikesMissing_gaussian",
                     "percentageSpikesMissing_symmetric", "presenceRatio", "nSpikes", *DRIFT_METRICS)


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
    rpv_grid: str = ""  # the refractory periods Bombcell's legacy test swept, and where they were told from

    def caveats(self) -> list[str]:
        """What the dock and the CLI say of every live row: metrics not recomputed (grouped by why), rebuilt
        parameters, the legacy refractory test's grid."""
        reasons: dict[str, list[str]] = {}
        for metric, why in self.not_live.items():
            reasons.setdefault(why, []).append(metric)
        return ([f"not recomputed: {', '.join(metrics)} ({why})" for why, metrics in reasons.items()]
                + [f"rebuilt parameter {name}: {how}" for name, how in self.rebuilt.items()]
                + ([f"refractory periods tested: {self.rpv_grid}"] if self.rpv_grid else []))


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
    rpv_grid: str = ""

    @classmethod
    def load(cls, ks_dir: str | Path, run_params: dict, run_metrics: pd.DataFrame | None = None,
             tauR_columns=None) -> Recording:
        """``run_params`` as read from Bombcell's parameter file, ``run_metrics`` its metrics table (a metric
        the run did not compute is not listed as missing live; tauR_values may be told from it),
        ``tauR_columns`` the column names of its per-tauR table (the legacy refractory test's grid)."""
        ks_dir = Path(ks_dir)
        params = dict(run_params)
        params.update(plotDetails=False, plotGlobal=False, verbose=False)
        rebuilt = rebuild_arrays(params, run_metrics)
        rpv_grid, withheld = refractory_grid(params, rebuilt, run_metrics, tauR_columns)
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
            rpv_grid=rpv_grid,
        )
        recording.not_live.update(withheld)
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
                        {name: self.params[name] for name in self.rebuilt}, self.rpv_grid)

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
    that value is the one the run tested. A run without rpv_method (Bombcell's legacy refractory test) never
    reads tauR_values: its grid is `legacy_grid`'s, and tauR_values is not put back.
    """
    rebuilt = {}
    for name, value in bombcell_default_arrays().items():
        if isinstance(params.get(name), np.ndarray) or (name == "tauR_values" and "rpv_method" not in params):
            continue
        how = "Bombcell's default"
        if name == "tauR_values" and params.get("rpv_method") in ("hill", "llobet") and run_metrics is not None \
                and "estimatedTauR" in run_metrics.columns:
            estimated = pd.to_numeric(run_metrics["estimatedTauR"], errors="coerce").dropna().unique()
            if len(estimated) == 1 and np.isfinite(estimated[0]):
                value = np.array([float(estimated[0])])
                how = "the one estimatedTauR of every unit of the run"
        params[name] = value
        rebuilt[name] = f"{span(value)}: {how} (Bombcell's parameter file does not store arrays)"
    return rebuilt


def refractory_grid(params: dict, rebuilt: dict[str, str], run_metrics: pd.DataFrame | None,
                    tauR_columns) -> tuple[str, dict[str, str]]:
    """(what the dock says of the refractory periods tested, {metric: why withheld}). Without rpv_method:
    `legacy_grid`'s, or, when the run's files do not tell it, the refractory metrics withheld (and, with
    computeTimeChunks, those of the chunks they help keep). With rpv_method and tauR_values rebuilt: withheld
    the same when the run's estimatedTauR are not all on the rebuilt grid (the run swept another one)."""
    why = "the refractory periods the run tested are unknown: {}; not recomputed on a grid the run may not have used"
    if "rpv_method" not in params:
        grid, source = legacy_grid(params, run_metrics, tauR_columns)
        if grid is not None:
            return f"{span(grid)}: {source} (Bombcell's legacy refractory test: the parameter file has no " \
                   "rpv_method)", {}
        # Bombcell's legacy defaults, only so that its functions run: what they give on them is withheld
        params.update(tauR_valuesMin=0.002, tauR_valuesMax=0.002, tauR_valuesStep=0.0005)
        withheld = RPV_METRICS
    elif "tauR_values" in rebuilt and run_metrics is not None and "estimatedTauR" in run_metrics.columns:
        grid = np.atleast_1d(np.asarray(params["tauR_values"], dtype=float))
        estimated = pd.to_numeric(run_metrics["estimatedTauR"], errors="coerce").to_numpy(dtype=float)
        estimated = estimated[np.isfinite(estimated)]
        off = estimated[~np.isclose(estimated[:, None], grid[None], rtol=1e-9, atol=0).any(axis=1)]
        if not off.size:
            return "", {}
        values = np.unique(off) * 1000
        shown = ", ".join(f"{value:g}" for value in values[:3]) + (", ..." if values.size > 3 else "")
        source = (f"its parameter file does not store tauR_values, and {off.size} of its units' estimatedTauR "
                  f"({shown} ms) are not on {rebuilt.pop('tauR_values').split(': ')[0]}, Bombcell's default")
        withheld = (*RPV_METRICS, "RPV_status")
    else:
        return "", {}
    reason = why.format(source)
    out = dict.fromkeys(withheld, reason)
    if params.get("computeTimeChunks"):
        out.update(dict.fromkeys(KEPT_TIME_METRICS, f"{reason}, which chooses the time chunks kept"))
    return "", out


def span(grid: np.ndarray) -> str:
    """A tauR grid (s) in words, in ms."""
    grid = np.atleast_1d(np.asarray(grid, dtype=float)) * 1000
    if grid.size == 1:
        return f"{grid[0]:g} ms"
    steps = np.diff(grid)
    step = f" in {steps[0]:.6g} ms steps" if np.allclose(steps, steps[0], rtol=1e-6) else ""
    return f"{grid[0]:.6g}-{grid[-1]:.6g} ms{step}, {grid.size} values"


LEGACY_TAUR = ("tauR_valuesMin", "tauR_valuesMax", "tauR_valuesStep")


def _legacy_arange(low: float, high: float, step: float) -> np.ndarray:
    # fraction_RP_violations' legacy grid, the same expression in every Python Bombcell since the names
    # tauR_valuesMin/Max/Step (May 2025; the camelCase thresholds came with them)
    return np.arange(low, high + step, step)


def _legacy_scalars(params: dict) -> tuple[float, float, float] | None:
    try:
        low, high, step = (float(params[name]) for name in LEGACY_TAUR)
    except (KeyError, TypeError, ValueError):
        return None
    return (low, high, step) if np.isfinite([low, high, step]).all() and step > 0 and 0 < low <= high else None


def _column_grid(columns) -> np.ndarray | None:
    """The per-tauR table's columns as a grid: in Bombcell's legacy mode each column is named by its tauR (s);
    with rpv_method there is one column, named fractionRPVs_estimatedTauR or by the unused legacy grid."""
    try:
        grid = np.array([float(name) for name in columns or ()])
    except (TypeError, ValueError):
        return None
    return grid if grid.size and np.isfinite(grid).all() and (grid > 0).all() and (np.diff(grid) > 0).all() \
        else None


def _scalars_for(grid: np.ndarray) -> tuple[float, float, float] | None:
    """tauR_valuesMin/Max/Step whose legacy grid is ``grid``, if any: the values as typed (a few digits) are
    tried first, since np.arange's last value carries its rounding (0.005000000000000001 for 0.005)."""
    def typed(value: float) -> list[float]:
        return list(dict.fromkeys([float(f"{value:.{digits}g}") for digits in (6, 10, 15)] + [float(value)]))

    steps = [grid[-1] - grid[0]] if grid.size == 1 else [(grid[-1] - grid[0]) / (grid.size - 1)]
    steps = [step for step in steps if step > 0] or [float(grid[0]) / 4]
    for low in typed(grid[0]):
        for high in typed(grid[-1]):
            for step in typed(steps[0]):
                swept = _legacy_arange(low, high, step)
                if swept.shape == grid.shape and np.allclose(swept, grid, rtol=1e-9, atol=0):
                    return low, high, step
    return None


def legacy_grid(params: dict, run_metrics: pd.DataFrame | None, tauR_columns) -> tuple[np.ndarray | None, str]:
    """For a run without rpv_method (Python Bombcell before 0.84, which had none): the refractory periods its
    legacy test swept, `_legacy_arange` of its tauR_valuesMin/Max/Step (scalars: its parameter file keeps
    them), else of what its per-tauR table's columns give; checked against the columns and the run's
    RPV_window_index and estimatedTauR. Sets the three in ``params`` when they came from the columns. The grid
    and where it was told from, or None and why the run's files do not tell it."""
    scalars = _legacy_scalars(params)
    from_params = _legacy_arange(*scalars) if scalars else None
    columns = _column_grid(tauR_columns)
    if from_params is not None:
        if columns is not None and not (from_params.shape == columns.shape
                                        and np.allclose(from_params, columns, rtol=1e-9, atol=0)):
            return None, (f"its tauR_valuesMin/Max/Step give {span(from_params)}, the columns of its per-tauR table "
                          f"{span(columns)}")
        grid, source = from_params, "the run's tauR_valuesMin/Max/Step" + \
            (", the same as the columns of its per-tauR table" if columns is not None else "")
    elif columns is not None:
        scalars = _scalars_for(columns)
        if scalars is None:
            return None, (f"its parameter file has no usable tauR_valuesMin/Max/Step, and the columns of its "
                          f"per-tauR table ({span(columns)}) are no grid Bombcell's legacy test sweeps")
        params.update(zip(LEGACY_TAUR, scalars))
        grid, source = columns, ("the columns of the run's per-tauR table (its parameter file has no usable "
                                 "tauR_valuesMin/Max/Step)")
    else:
        return None, ("its parameter file has no usable tauR_valuesMin/Max/Step and it has no per-tauR table with "
                      "a column per tauR")
    if run_metrics is not None and "RPV_window_index" in run_metrics.columns:
        index = pd.to_numeric(run_metrics["RPV_window_index"], errors="coerce").to_numpy(dtype=float)
        if np.nanmax(index, initial=-1) >= grid.size:
            return None, (f"its units' RPV_window_index reaches {np.nanmax(index):g}, beyond the {grid.size} values "
                          f"of {span(grid)} ({source})")
        if "estimatedTauR" in run_metrics.columns:
            estimated = pd.to_numeric(run_metrics["estimatedTauR"], errors="coerce").to_numpy(dtype=float)
            known = np.isfinite(index) & np.isfinite(estimated) & (index >= 0)
            if not np.allclose(grid[index[known].astype(int)], estimated[known], rtol=1e-9, atol=0):
                return None, f"its units' estimatedTauR are not the values of {span(grid)} ({source})"
    return grid, source


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
