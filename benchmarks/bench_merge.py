"""A merge in a real Phy GUI: from the merge to the new cluster's recomputed columns and dock, and how long
the GUI thread is held, against the same merges without the plugin in the same run.

    python benchmarks/bench_merge.py [--spikes 50000] [--pairs 4]

The bundled demo recording (a real Bombcell run) is repeated in time until each merged pair of clusters
holds at least ``--spikes`` spikes, and Bombcell is run on the longer folder. Phy opens it twice in one
process, without and with the plugin, and merges the same pairs. A 1 ms Qt timer records every gap in the
GUI thread's event loop: the longest gap while the plugin computes is the longest the user waits on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "phy_bcreason" / "demo_data"


def long_dataset(copies: int, out: Path) -> Path:
    """The demo folder with its recording repeated ``copies`` times in time, labelled by Bombcell."""
    from tests.dataset_builder import run_bombcell

    shutil.copytree(DEMO, out, ignore=shutil.ignore_patterns("bombcell", "cluster_*.tsv"))
    times = np.load(DEMO / "spike_times.npy").ravel().astype(np.uint64)
    span = int(times.max()) + 30_000  # one second of silence between copies
    np.save(out / "spike_times.npy", np.concatenate([times + np.uint64(k * span) for k in range(copies)]))
    for name in ("spike_templates.npy", "spike_clusters.npy", "amplitudes.npy"):
        np.save(out / name, np.tile(np.load(DEMO / name).ravel(), copies))
    run_bombcell(out)
    return out


class GapRecorder:
    """Times between ticks of a 1 ms Qt timer: how long the GUI thread was busy."""

    def __init__(self):
        from phy.gui.qt import QTimer

        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(1)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()

    def longest_since(self, start: float) -> float:
        ticks = [t for t in self.ticks if t >= start]
        return max(np.diff(ticks), default=0.0)


def run(ks: Path, config: Path, pairs: list[tuple[int, int]], with_plugin: bool, window: float) -> list[dict]:
    from phy.apps.template import TemplateController, get_template_params
    from phy.gui.qt import QApplication
    from phylib.utils import reset

    import phy_bcreason.plugin  # noqa: F401  (defining the plugin class registers it with Phy)
    from phy_bcreason.gui import guard as bc_guard

    controller = TemplateController(config_dir=config, plugins=["BombcellReasonPlugin"] if with_plugin else [],
                                    clear_cache=True, clear_state=True,
                                    **get_template_params(str(ks / "params.py")))  # Phy's default threading
    gui = controller.create_gui(do_prompt_save=False)
    gui.show()
    supervisor = controller.supervisor
    plugin = getattr(controller, "phy_bcreason", None)
    if plugin is not None:
        while not plugin.worker.idle():  # Bombcell's own classifier, on the worker, after start-up
            QApplication.processEvents()
            time.sleep(0.01)
    gaps = GapRecorder()
    out = []
    for a, b in pairs:
        n_spikes = len(supervisor.clustering.spikes_per_cluster[a]) + len(supervisor.clustering.spikes_per_cluster[b])
        supervisor.select([a, b])  # as a user does before pressing G; Phy then selects the merged cluster
        for _ in range(500):  # settle
            QApplication.processEvents()
            time.sleep(0.001)
        bc_guard.GUI_THREAD_TIMES.clear()
        start = time.perf_counter()
        supervisor.actions.merge()  # the G key: Phy merges, then selects the merged cluster
        merge_call = time.perf_counter() - start
        merged = int(max(supervisor.clustering.cluster_ids))
        updated = None
        while time.perf_counter() - start < window:
            QApplication.processEvents()
            time.sleep(0.0005)
            if updated is None and plugin is not None \
                    and (supervisor.cluster_view.get(merged) or {}).get("bc_source") == "live" \
                    and "recomputed live" in gui.list_views("BombcellWhyView")[0].content.title:
                updated = time.perf_counter() - start
        if plugin is not None and updated is None:
            raise RuntimeError(f"cluster {merged} not updated within {window} s")
        ours = max(bc_guard.GUI_THREAD_TIMES, key=lambda t: t[1], default=("", 0.0))
        out.append({"spikes": n_spikes, "merge_call": merge_call, "updated": updated,
                    "longest_gap_after_call": gaps.longest_since(start + merge_call),
                    "longest_plugin_call": ours,
                    "label": (supervisor.cluster_view.get(merged) or {}).get("bc_label")})
    gaps.timer.stop()
    gui.close()
    controller.close()
    reset()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=int, default=50_000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--window", type=float, default=4.0, help="seconds watched after each merge")
    args = parser.parse_args(argv)

    from phy.gui.qt import QApplication

    _app = QApplication.instance() or QApplication([])  # noqa: F841  (keep the application alive)
    counts = np.bincount(np.load(DEMO / "spike_clusters.npy").ravel())
    order = np.argsort(counts)[::-1]
    pairs = [(int(order[2 * i]), int(order[2 * i + 1])) for i in range(args.pairs)]
    smallest = min(counts[a] + counts[b] for a, b in pairs)
    copies = -(-args.spikes // smallest)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        ks = long_dataset(copies, tmp / "ks")
        print(f"dataset: demo x{copies} in time, {len(np.load(ks / 'spike_times.npy')):,} spikes, "
              f"Bombcell run {time.perf_counter() - start:.0f} s")
        without = run(ks, tmp / "config-without", pairs, False, args.window)
        shutil.rmtree(ks / ".phy", ignore_errors=True)
        with_ = run(ks, tmp / "config-with", pairs, True, args.window)

    print(f"{'pair':>8} {'spikes':>7} | {'merge call ms':>17} | {'live columns and dock ms':>24} | "
          f"{'longest GUI gap after the call ms':>33} | {'longest plugin call on the GUI thread':>40} | label")
    print(f"{'':>8} {'':>7} | {'without':>8} {'with':>8} | {'from merge':>11} {'after call':>12} | "
          f"{'without':>16} {'with':>16} |")
    for (a, b), w, p in zip(pairs, without, with_):
        name, seconds = p["longest_plugin_call"]
        print(f"{a:>3}+{b:<4} {p['spikes']:>7,} | {w['merge_call'] * 1e3:>8.0f} {p['merge_call'] * 1e3:>8.0f} | "
              f"{p['updated'] * 1e3:>11.0f} {(p['updated'] - p['merge_call']) * 1e3:>12.0f} | "
              f"{w['longest_gap_after_call'] * 1e3:>16.1f} "
              f"{p['longest_gap_after_call'] * 1e3:>16.1f} | {seconds * 1e3:>29.1f} ({name:>8}) | {p['label']}")
    median = statistics.median
    print(f"median: merge call {median(p['merge_call'] for p in with_) * 1e3:.0f} ms with the plugin, "
          f"{median(w['merge_call'] for w in without) * 1e3:.0f} ms without "
          f"(ratio {median(p['merge_call'] / w['merge_call'] for p, w in zip(with_, without)):.2f}); "
          f"columns and dock updated {median(p['updated'] for p in with_) * 1e3:.0f} ms after the merge began, "
          f"{median(p['updated'] - p['merge_call'] for p in with_) * 1e3:.0f} ms after Phy's merge call returned "
          f"(max {max(p['updated'] - p['merge_call'] for p in with_) * 1e3:.0f} ms); longest gap in the GUI "
          f"thread's event loop after the call {max(p['longest_gap_after_call'] for p in with_) * 1e3:.1f} ms "
          f"(without the plugin {max(w['longest_gap_after_call'] for w in without) * 1e3:.1f} ms); "
          f"longest plugin call on the GUI thread "
          f"{max(p['longest_plugin_call'][1] for p in with_) * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
