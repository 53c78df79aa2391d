"""Test data for Bombcell run through SpikeInterface (``bombcell.run_bombcell_qc``).

The units, recording and sorting are those of ``tests/dataset_builder.py`` (``simulate``).
Here they go into a SpikeInterface ``SortingAnalyzer`` (in memory) with the extensions
``run_bombcell_qc`` needs, Bombcell labels them with SpikeInterface's
``bombcell_label_units`` (``run_bombcell_qc`` computes the quality metrics it lacks), and the
sorting is written as a folder Phy opens, in one of two layouts:

``layout="export"`` (what ``spikeinterface.exporters.export_to_phy`` gives)::

    out_dir/phy/            params.py, spike_*.npy, templates.npy, cluster_si_unit_ids.tsv,
                            cluster_<metric>.tsv for every quality and template metric, ...
    out_dir/phy/bombcell/   run_bombcell_qc's output folder

    SI unit ids are 100..126 (int), Phy cluster ids 0..26: cluster_si_unit_ids.tsv maps them.

``layout="sorter_output"`` (a Kilosort-like sorter folder, Bombcell's results beside it)::

    out_dir/sorter_output/  the same Phy files, without cluster_si_unit_ids.tsv,
                            cluster_channel_group.tsv, channel_map_si.npy nor cluster_<metric>.tsv
    out_dir/bombcell/       run_bombcell_qc's output folder

    SI unit ids are 0..26 and equal to the Phy cluster ids.

``with_analyzer=True`` also saves the labelled analyzer (quality and template metrics included)
as a ``binary_folder`` SortingAnalyzer in ``out_dir/analyzer/``, beside the Phy folder (what
UnitRefine predicts from; ``tests/ur_builder.py``).

run_bombcell_qc's output folder holds ``labeling_results_wide.csv`` (first column, unnamed,
is the SI unit id; then ``label``; then every metric), ``labeling_results_narrow.csv``,
``thresholds.json`` and ``bombcell_config.json`` (plots are off, so no PNG).

Differences from the native dataset, on purpose:

* waveforms are cut 1 ms before and 2 ms after the trough (90 samples), so that the
  axon-like units' first peak does not fall in SpikeInterface's baseline window;
* the sorting drops the spikes of ``axon_b`` after 40 % of the recording (presence ratio
  1/3), so that a non-somatic unit also fails an MUA threshold (``non_soma_mua`` when split).

The analyzer with every extension but the quality metrics is kept (in memory, per seed and
layout) for the life of the process: the first build of a layout takes ~15 s, the next
variants well under 1 s (each labels its own copy, so the results do not depend on the order).

SpikeInterface's ``exp_decay`` template metric imports ``sklearn.metrics.r2_score``; the project
does not depend on scikit-learn, so a numpy ``r2_score`` stands in while the template metrics
are computed if scikit-learn is not installed.

API::

    VARIANTS: dict[str, dict]        # name -> {"thresholds": dict | None, "params": dict}
    build_si_dataset(out_dir, *, variant="default", layout="export", seed=0, with_analyzer=False) -> SIDataset
    si_dataset_copy(src: SIDataset, dst) -> SIDataset

Command line (from the repository root)::

    python -m tests.si_builder OUT_DIR [--variant NAME] [--layout export|sorter_output] [--seed N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import os
import shutil
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

if __package__ in (None, ""):  # pragma: no cover - run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import dataset_builder as dsb  # noqa: E402

__all__ = [
    "VARIANTS",
    "LAYOUTS",
    "SI_LABELS",
    "EXPORT_UNIT_ID_OFFSET",
    "WAVEFORM_MS_BEFORE",
    "WAVEFORM_MS_AFTER",
    "SIDataset",
    "build_si_dataset",
    "si_dataset_copy",
    "default_thresholds",
    "load_wide",
]

LAYOUTS = ("export", "sorter_output")
SI_LABELS = ("good", "mua", "noise", "non_soma", "non_soma_good", "non_soma_mua")
EXPORT_UNIT_ID_OFFSET = 100  # export layout: SI unit id = Phy cluster id + 100
WAVEFORM_MS_BEFORE = 1.0
WAVEFORM_MS_AFTER = 2.0
PRESENCE_CUT_UNIT = "axon_b"  # its spikes after PRESENCE_CUT_FRACTION of the recording are dropped
PRESENCE_CUT_FRACTION = 0.4


def default_thresholds() -> dict:
    """SpikeInterface's default Bombcell thresholds (a fresh copy)."""
    from spikeinterface.curation import bombcell_get_default_thresholds

    return bombcell_get_default_thresholds()


def _custom_thresholds() -> dict:
    t = default_thresholds()
    # tighter amplitude (|amplitude_median| >= 100 uV): good_a (~96 uV) becomes mua
    t["mua"]["amplitude_median"] = {"greater": 100, "less": None, "abs": True}
    # the other refractory-period method: SpikeInterface's rp_violation metric (rp_contamination column)
    del t["mua"]["sliding_rp_violation"]
    t["mua"]["rp_contamination"] = {"greater": None, "less": 0.1}
    # a narrower duration band: the slowest somatic units and the narrowest axon become noise
    t["noise"]["peak_to_trough_duration"] = {"greater": 0.00018, "less": 0.0007}
    # a standalone (OR'd) extra non-somatic rule on a template metric: bad_baseline
    # (~1.4e6 uV/s) becomes non_soma through it alone
    t["non-somatic"]["repolarization_slope"] = {"greater": None, "less": 1.2e6}
    return t


def _no_nonsomatic_thresholds() -> dict:
    t = default_thresholds()
    t["non-somatic"] = {}
    return t


_PLOTS_OFF = {"plot_histograms": False, "plot_waveforms": False, "plot_upset": False}

# name -> what run_bombcell_qc gets: thresholds (None = SpikeInterface's defaults) and params
# (merged over bombcell.spikeinterface_pipeline.get_default_qc_params()).
VARIANTS: dict[str, dict] = {
    # SI default thresholds (thresholds=None), non-somatic units all "non_soma"
    "default": {"thresholds": None, "params": {**_PLOTS_OFF, "split_non_somatic": False}},
    # SI default thresholds, non-somatic units split into non_soma_good / non_soma_mua
    "split": {"thresholds": None, "params": {**_PLOTS_OFF, "split_non_somatic": True}},
    # edited thresholds: amplitude_median >= 100 (abs), rp_contamination instead of
    # sliding_rp_violation, duration band 0.18-0.7 ms, extra standalone non-somatic rule
    # repolarization_slope <= 1.2e6 (units above it are non-somatic)
    "custom": {"thresholds": _custom_thresholds(), "params": {**_PLOTS_OFF, "split_non_somatic": False}},
    # non-somatic labelling off: empty "non-somatic" section
    "no_nonsomatic": {"thresholds": _no_nonsomatic_thresholds(),
                      "params": {**_PLOTS_OFF, "split_non_somatic": False}},
}


@dataclass
class SIDataset:
    phy_dir: Path  # the folder a user opens in Phy (has params.py)
    results_dir: Path  # run_bombcell_qc's output_folder
    thresholds: dict  # as run_bombcell_qc used them (== thresholds.json)
    split: bool  # params["split_non_somatic"]
    layout: str  # "export" or "sorter_output"
    out_dir: Path | None = None  # holds phy_dir, results_dir and design.json
    variant: str = ""
    seed: int = 0
    analyzer_dir: Path | None = None  # out_dir/analyzer (with_analyzer=True): the labelled SortingAnalyzer


# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _r2_score_without_sklearn():
    """SpikeInterface's exp_decay imports sklearn.metrics.r2_score; give it a numpy one if needed."""
    if importlib.util.find_spec("sklearn") is not None:
        yield
        return

    def r2_score(y_true, y_pred):
        y_true = np.asarray(y_true, dtype="float64")
        y_pred = np.asarray(y_pred, dtype="float64")
        ss_res = np.sum((y_true - y_pred) ** 2)
        ss_tot = np.sum((y_true - y_true.mean()) ** 2)
        if ss_tot == 0:
            return 1.0 if ss_res == 0 else 0.0
        return float(1.0 - ss_res / ss_tot)

    sklearn = types.ModuleType("sklearn")
    metrics = types.ModuleType("sklearn.metrics")
    metrics.r2_score = r2_score
    sklearn.metrics = metrics
    sys.modules["sklearn"], sys.modules["sklearn.metrics"] = sklearn, metrics
    try:
        yield
    finally:
        sys.modules.pop("sklearn.metrics", None)
        sys.modules.pop("sklearn", None)


# SortingAnalyzers with every extension run_bombcell_qc needs but no quality metrics, by
# (seed, unit ids): variants of a layout share one, each build labels its own copy.
_BASE_ANALYZERS: dict[tuple[int, tuple[int, ...]], object] = {}


def _make_analyzer(seed: int, unit_ids: np.ndarray):
    key = (int(seed), tuple(int(u) for u in unit_ids))
    if key not in _BASE_ANALYZERS:
        _BASE_ANALYZERS[key] = _make_base_analyzer(seed, unit_ids)
    return _BASE_ANALYZERS[key].copy()


def _make_base_analyzer(seed: int, unit_ids: np.ndarray):
    from spikeinterface.core import NumpySorting, create_sorting_analyzer

    sim = dsb.simulate(seed, dsb.DEFAULT_DURATION_S)
    samples, clusters = sim["samples"], sim["clusters"]
    names = [s.name for s in dsb.UNIT_SPECS]
    cut = names.index(PRESENCE_CUT_UNIT)
    n_samples = sim["recording"].get_num_samples()
    keep = ~((clusters == cut) & (samples > PRESENCE_CUT_FRACTION * n_samples))
    sorting = NumpySorting.from_samples_and_labels(
        [samples[keep]], [unit_ids[clusters[keep]]], dsb.FS, unit_ids=unit_ids,
    )
    analyzer = create_sorting_analyzer(
        sorting, sim["recording"], format="memory", sparse=False, return_in_uV=True, seed=seed,
        main_channel_indices=sim["main_channels"],
    )
    job_kwargs = dsb._job_kwargs()
    analyzer.compute("random_spikes", method="uniform", max_spikes_per_unit=300, seed=seed)
    analyzer.compute("waveforms", ms_before=WAVEFORM_MS_BEFORE, ms_after=WAVEFORM_MS_AFTER, **job_kwargs)
    analyzer.compute("templates", operators=["average"])
    analyzer.compute("noise_levels", random_slices_kwargs={"seed": seed})
    with _r2_score_without_sklearn():
        analyzer.compute("template_metrics", include_multi_channel_metrics=True)
    # run_bombcell_qc computes amplitude_scalings with its defaults, which refuse a dense
    # analyzer of more than 16 channels: compute it here on all 32 channels
    analyzer.compute("amplitude_scalings", max_dense_channels=None, **job_kwargs)
    # what run_bombcell_qc would compute (same parameters), once for all variants
    analyzer.compute("spike_amplitudes", **job_kwargs)
    analyzer.compute("spike_locations", **job_kwargs)
    dsb._compute_template_similarity_numpy(analyzer)  # export_to_phy wants it; numba is slow to compile
    return analyzer


def _run_qc(analyzer, results_dir: Path, variant: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    with contextlib.redirect_stdout(sys.stderr):  # bombcell prints on import, and "Labeled 27 units: ..."
        from bombcell.spikeinterface_pipeline import get_default_qc_params, run_bombcell_qc

        spec = VARIANTS[variant]
        params = {**get_default_qc_params(), **spec["params"]}
        thresholds = copy.deepcopy(spec["thresholds"])
        run_bombcell_qc(analyzer, output_folder=results_dir, params=params, thresholds=thresholds,
                        n_jobs=1, progress_bar=False)


def _export(analyzer, phy_dir: Path, *, with_metrics: bool) -> None:
    from spikeinterface.exporters import export_to_phy

    export_to_phy(
        analyzer, phy_dir, compute_pc_features=False, compute_amplitudes=True, sparsity=None,
        copy_binary=False, remove_if_exists=False, use_relative_path=True,
        add_quality_metrics=with_metrics, add_template_metrics=with_metrics, verbose=False,
        **dsb._job_kwargs(),
    )
    # Phy reads whitening_mat_inv.npy (identity: the templates are not whitened); Kilosort
    # also writes whitening_mat.npy
    n_channels = analyzer.get_num_channels()
    for name in ("whitening_mat.npy", "whitening_mat_inv.npy"):
        if not (phy_dir / name).exists():
            np.save(phy_dir / name, np.eye(n_channels))


def build_si_dataset(out_dir: Path, *, variant: str = "default", layout: str = "export", seed: int = 0,
                     with_analyzer: bool = False) -> SIDataset:
    """Simulate, label with ``run_bombcell_qc`` (``VARIANTS[variant]``) and write a Phy folder.

    ``out_dir`` must not exist or be empty. Also writes ``out_dir/design.json``: SI unit id ->
    unit name of ``dataset_builder.UNIT_SPECS`` (and the variant, layout, seed).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: one of {sorted(VARIANTS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: one of {LAYOUTS}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = int(seed)

    n_units = len(dsb.UNIT_SPECS)
    offset = EXPORT_UNIT_ID_OFFSET if layout == "export" else 0
    unit_ids = np.arange(n_units, dtype="int64") + offset
    analyzer = _make_analyzer(seed, unit_ids)

    if layout == "export":
        # the usual order: quality control on the analyzer, then export (which writes every
        # metric as a cluster_<metric>.tsv), Bombcell's results kept in the Phy folder
        phy_dir = out_dir / "phy"
        staging = out_dir / "_bombcell"
        _run_qc(analyzer, staging, variant)
        _export(analyzer, phy_dir, with_metrics=True)
        results_dir = phy_dir / "bombcell"
        shutil.move(str(staging), str(results_dir))
    else:
        phy_dir = out_dir / "sorter_output"
        results_dir = out_dir / "bombcell"
        _export(analyzer, phy_dir, with_metrics=False)
        # what a sorter writes: no SpikeInterface bookkeeping (cluster ids are the unit ids)
        for extra in ("cluster_si_unit_ids.tsv", "cluster_channel_group.tsv", "channel_map_si.npy"):
            (phy_dir / extra).unlink(missing_ok=True)
        _run_qc(analyzer, results_dir, variant)

    design = dict(
        variant=variant, layout=layout, seed=seed, duration_s=dsb.DEFAULT_DURATION_S,
        waveform_ms=[WAVEFORM_MS_BEFORE, WAVEFORM_MS_AFTER],
        presence_cut={"unit": PRESENCE_CUT_UNIT, "after_fraction": PRESENCE_CUT_FRACTION},
        units={str(int(u)): s.name for u, s in zip(unit_ids, dsb.UNIT_SPECS)},
    )
    (out_dir / "design.json").write_text(json.dumps(design, indent=1))
    if with_analyzer:
        import warnings

        with warnings.catch_warnings():  # the generated recording is not saved with it (a recordingless analyzer)
            warnings.simplefilter("ignore")
            analyzer.save_as(format="binary_folder", folder=out_dir / "analyzer")
    return _dataset(out_dir, phy_dir, results_dir, layout, variant, seed)


def _dataset(out_dir, phy_dir, results_dir, layout, variant, seed) -> SIDataset:
    thresholds = json.loads((results_dir / "thresholds.json").read_text())
    config = json.loads((results_dir / "bombcell_config.json").read_text())
    analyzer_dir = out_dir / "analyzer"
    return SIDataset(phy_dir=phy_dir, results_dir=results_dir, thresholds=thresholds,
                     split=bool(config["split_non_somatic"]), layout=layout, out_dir=out_dir,
                     variant=variant, seed=seed, analyzer_dir=analyzer_dir if analyzer_dir.is_dir() else None)


def si_dataset_copy(src: SIDataset, dst) -> SIDataset:
    """Copy the whole ``src.out_dir`` (Phy folder and Bombcell results) to ``dst`` (must not exist).

    Phy's cache (``.phy``) and log are left out.
    """
    dst = Path(dst)
    shutil.copytree(src.out_dir, dst, ignore=shutil.ignore_patterns(".phy", "phy.log"))
    return _dataset(dst, dst / src.phy_dir.relative_to(src.out_dir), dst / src.results_dir.relative_to(src.out_dir),
                    src.layout, src.variant, src.seed)


def load_wide(results_dir):
    """``labeling_results_wide.csv`` with the SI unit id as index (named ``unit_id``)."""
    import pandas as pd

    wide = pd.read_csv(Path(results_dir) / "labeling_results_wide.csv", index_col=0)
    wide.index.name = "unit_id"
    return wide


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.si_builder", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    ap.add_argument("--layout", default="export", choices=LAYOUTS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ds = build_si_dataset(args.out_dir, variant=args.variant, layout=args.layout, seed=args.seed)
    print(f"{ds.phy_dir} / {ds.results_dir} ({time.perf_counter() - t0:.1f} s)")
    import pandas as pd

    wide = load_wide(ds.results_dir)
    names = json.loads((ds.out_dir / "design.json").read_text())["units"]
    wide.insert(0, "name", [names[str(u)] for u in wide.index])
    with pd.option_context("display.max_rows", None, "display.width", 250):
        print(wide[["name", "label"]].to_string())
    print(wide["label"].value_counts().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
