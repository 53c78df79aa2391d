"""Phy start-up with and without the plugin, and the dock's update on selection.

    python benchmarks/bench_phy.py [--clusters 1200] [--repeats 5]

The dataset is the bundled demo (a real Bombcell run) tiled to ``--clusters`` clusters: its templates,
spikes, Bombcell metrics rows and the per-metric cluster_*.tsv files Bombcell writes next to the Kilosort
output repeated, so Phy and the plugin see a large folder shaped like a real Bombcell user's.
Start-up is timed in fresh processes (TemplateController + create_gui, offscreen, plugin import included),
alternating with and without the plugin; the ratio is what counts on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

DEMO = Path(__file__).resolve().parents[1] / "phy_bcreason" / "demo_data"

STARTUP = """
import os, sys, time, json
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from pathlib import Path
from phy.gui.qt import QApplication
from phy.apps.template import TemplateController, get_template_params
app = QApplication([])
ks, cfg, with_plugin = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
start = time.perf_counter()
if with_plugin:
    import phy_bcreason.plugin
controller = TemplateController(config_dir=cfg, plugins=["BombcellReasonPlugin"] if with_plugin else [],
                                clear_cache=True, clear_state=True, enable_threading=False,
                                **get_template_params(str(ks / "params.py")))
gui = controller.create_gui(do_prompt_save=False)
elapsed = time.perf_counter() - start
dock = []
if with_plugin:
    view = gui.list_views("BombcellWhyView")[0]
    for cluster_id in controller.supervisor.clustering.cluster_ids[:300]:
        t = time.perf_counter()
        view.show_clusters([int(cluster_id)])
        dock.append(time.perf_counter() - t)
print(json.dumps({"startup": elapsed, "dock": dock, "n": len(controller.supervisor.clustering.cluster_ids)}))
gui.close()
"""


def tiled_dataset(n_clusters: int, out: Path) -> Path:
    """The demo folder with its clusters repeated up to n_clusters (new ids, same data)."""
    shutil.copytree(DEMO, out)
    n_units = np.load(DEMO / "templates.npy").shape[0]
    copies = -(-n_clusters // n_units)
    for tsv in out.glob("cluster_*.tsv"):  # Bombcell's per-metric columns, as a real run leaves them
        table = pd.read_csv(tsv, sep="\t")
        tiled = pd.concat([table] * copies, ignore_index=True)
        tiled["cluster_id"] = np.arange(len(tiled))
        tiled.to_csv(tsv, sep="\t", index=False)
    templates = np.load(DEMO / "templates.npy")
    spike_times = np.load(DEMO / "spike_times.npy").ravel()
    spike_templates = np.load(DEMO / "spike_templates.npy").ravel()
    amplitudes = np.load(DEMO / "amplitudes.npy").ravel()
    offsets = np.repeat(np.arange(copies) * n_units, len(spike_times))
    times = np.tile(spike_times, copies) + np.repeat(np.arange(copies), len(spike_times))  # keep unique-ish
    order = np.argsort(times, kind="stable")
    np.save(out / "templates.npy", np.tile(templates, (copies, 1, 1)))
    np.save(out / "spike_times.npy", times[order].astype(np.uint64))
    ids = (np.tile(spike_templates, copies) + offsets)[order].astype(np.int32)
    np.save(out / "spike_templates.npy", ids)
    np.save(out / "spike_clusters.npy", ids)
    np.save(out / "amplitudes.npy", np.tile(amplitudes, copies)[order])
    for name in ("similar_templates.npy",):
        (out / name).unlink(missing_ok=True)
    metrics = pd.read_parquet(DEMO / "bombcell" / "templates._bc_qMetrics.parquet")
    tiled = pd.concat([metrics] * copies, ignore_index=True)
    tiled["phy_clusterID"] = np.arange(len(tiled))
    tiled.to_parquet(out / "bombcell" / "templates._bc_qMetrics.parquet")
    return out


def run_once(ks: Path, with_plugin: bool) -> dict:
    with tempfile.TemporaryDirectory() as cfg:
        shutil.rmtree(ks / ".phy", ignore_errors=True)
        result = subprocess.run([sys.executable, "-c", STARTUP, str(ks), cfg, "1" if with_plugin else "0"],
                                capture_output=True, text=True, check=True, env=dict(os.environ))
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ks = tiled_dataset(args.clusters, Path(tmp) / "ks")
        runs = {True: [], False: []}
        for _ in range(args.repeats):
            for with_plugin in (False, True):
                runs[with_plugin].append(run_once(ks, with_plugin))
    without = statistics.median(r["startup"] for r in runs[False])
    with_ = statistics.median(r["startup"] for r in runs[True])
    dock = [t for r in runs[True] for t in r["dock"]]
    print(f"{runs[True][0]['n']} clusters, median of {args.repeats} fresh processes each")
    print(f"  Phy start-up without plugin {without:7.3f} s")
    print(f"  Phy start-up with plugin    {with_:7.3f} s   ratio {with_ / without:.3f} (target <= 1.10)")
    print(f"  dock update on selection    median {statistics.median(dock) * 1000:.2f} ms, "
          f"95th percentile {np.percentile(dock, 95) * 1000:.2f} ms over {len(dock)} selections (target < 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
