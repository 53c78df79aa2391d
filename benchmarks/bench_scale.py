"""What a user feels at Neuropixels scale, Phy with the plugin against Phy without it, in the same run.

    python benchmarks/bench_scale.py [--clusters 616] [--repeats 5] [--startup-only] [--json OUT]

On the folder `bench_dataset.py` builds (616 clusters, 18.3 million spikes, one hour, labelled by Bombcell),
each repeat opens Phy twice in fresh processes, without and with the plugin, in alternating order, with
Phy's default threading and a shown window (offscreen platform), and measures:

- start-up: from before ``TemplateController`` (plugin import included) to ``create_gui()`` returning, and
  to the first paint of the cluster view;
- a merge of the two largest clusters (two copies of the demo's largest unit, 52,938 spikes each) through
  Phy's merge action, then a split of another such cluster in two halves: the longest gap in the GUI
  thread's event loop (a 1 ms Qt timer under Qt's own event loop, ``app.exec_()``) in the 15 s after Phy's
  call returns, and, with the plugin, the time from the call's return to the live label in the cluster
  view;
- memory: Phy's resident set size once settled (plugin's work done) and after the merge and split, and
  the live-metrics child process's resident set size when ready and its peak.

Reports medians, ranges and n; ratios are taken run by run (paired) and their median reported.

Phy 2.1 updates its plot views on the GUI thread (its view threading is disabled in
`phy/cluster/views/base.py`): after a merge of 100,000 spikes its amplitude, correlogram and waveform views
hold the GUI thread for seconds, with or without the plugin. ``--views tables`` opens Phy without those
views (its cluster and similarity views and our dock only), so that the gaps measured are those of the
tables, where the plugin acts; start-up is measured with Phy's default views.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

SESSION = r"""
import json, os, sys, time
start = time.perf_counter()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from pathlib import Path
ks, config, with_plugin, startup_only = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
tables_only = sys.argv[5] == "tables"
from phy.gui.qt import QApplication, QEvent, QObject, QTimer
app = QApplication([])
from phy.apps.template import TemplateController, get_template_params
if with_plugin:
    import phy_bcreason.plugin  # noqa: F401


def rss(pid="self", field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB
    return float("nan")


out = {}
controller = TemplateController(config_dir=config, plugins=["BombcellReasonPlugin"] if with_plugin else [],
                                clear_cache=True, clear_state=True, **get_template_params(str(ks / "params.py")))
no_views = {"default_views": (), "view_count": {"WaveformView": 0}}  # a view count that opens no plot view
gui = controller.create_gui(do_prompt_save=False, **(no_views if tables_only else {}))
out["create_gui"] = time.perf_counter() - start
supervisor = controller.supervisor
plugin = getattr(controller, "phy_bcreason", None)


class Painted(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint and "painted" not in out:
            QTimer.singleShot(0, lambda: out.setdefault("painted", time.perf_counter() - start))
        return False


painted = Painted()
supervisor.cluster_view.table_view.viewport().installEventFilter(painted)
gui.show()

ticks = []
watch = {}  # cluster id whose live label is awaited -> time it appeared


def tick():
    now = time.perf_counter()
    ticks.append(now)
    rows = supervisor.cluster_view._model._rows_by_id  # replaced by Phy on each add/remove
    for cluster_id, seen in list(watch.items()):
        if seen is None and (rows.get(cluster_id) or {}).get("bc_source") == "live":
            watch[cluster_id] = now


timer = QTimer()
timer.setInterval(1)
timer.timeout.connect(tick)
timer.start()
steps = []


def later(seconds, func):
    steps.append((seconds, func))


def run_steps():
    if not steps:
        timer.stop()
        app.quit()
        return
    seconds, func = steps.pop(0)
    QTimer.singleShot(int(seconds * 1000), lambda: (func(), run_steps()))


def settled():
    if plugin is not None and not plugin.worker.idle():
        steps.insert(0, (0.2, settled))  # wait for the plugin's start-up work (classifier, child process)
        return
    out["rss_settled"] = rss()
    if plugin is not None and plugin.live.process is not None:
        out["child_rss_ready"] = rss(plugin.live.process.child.pid)


def largest(n):
    counts = {c: len(s) for c, s in supervisor.clustering.spikes_per_cluster.items()}
    return sorted(counts, key=lambda c: (-counts[c], c))[:n]


def action(name, do):
    def run():
        ticks.clear()
        t0 = time.perf_counter()
        new = do()
        t1 = time.perf_counter()
        out[name] = {"call": t1 - t0, "spikes": [len(supervisor.clustering.spikes_per_cluster[c]) for c in new]}
        for c in new:
            watch[c] = None

        def done():
            gaps = [b - a for a, b in zip(ticks, ticks[1:]) if b > t1]
            out[name]["longest_gap"] = max(gaps, default=float("nan"))
            if plugin is not None:
                seen = [watch.get(c) for c in new]
                out[name]["label_after_call"] = max(s - t1 for s in seen) if None not in seen else None
        steps.insert(0, (15.0, done))
    return run


def merge():
    supervisor.select(largest(2))
    app.processEvents()
    before = set(supervisor.clustering.cluster_ids.tolist())
    supervisor.actions.merge()  # the G key
    return sorted(set(supervisor.clustering.cluster_ids.tolist()) - before)


def split():
    cluster = largest(1)[0]
    spikes = supervisor.clustering.spikes_per_cluster[cluster]
    before = set(supervisor.clustering.cluster_ids.tolist())
    supervisor.split(spikes[: len(spikes) // 2])
    return sorted(set(supervisor.clustering.cluster_ids.tolist()) - before)


later(0.5, settled)
if not startup_only:
    later(3.0, action("merge", merge))
    later(1.0, action("split", split))
    later(0.0, lambda: out.update(rss_after=rss(), rss_peak=rss(field="VmHWM")))
    if with_plugin:
        later(0.0, lambda: plugin.live.process is not None and out.update(
            child_rss_after=rss(plugin.live.process.child.pid),
            child_rss_peak=rss(plugin.live.process.child.pid, "VmHWM")))
run_steps()
app.exec_()
print("RESULT " + json.dumps(out))
gui.close()
os._exit(0)
"""


def run_session(ks: Path, with_plugin: bool, startup_only: bool, views: str, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as config:
        subprocess.run(["rm", "-rf", str(ks / ".phy")], check=True)
        result = subprocess.run([sys.executable, "-c", SESSION, str(ks), config, "1" if with_plugin else "0",
                                 "1" if startup_only else "0", views], capture_output=True, text=True, env=env,
                                timeout=900)
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"session failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def summary(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g}, n={len(values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=616)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--startup-only", action="store_true")
    parser.add_argument("--views", choices=("all", "tables"), default="all",
                        help="tables: Phy without its plot views (cluster and similarity views, our dock)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench_dataset import build

    ks = build(args.clusters, args.hours)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "MPLBACKEND": "Agg"}
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for with_plugin in ((False, True) if repeat % 2 == 0 else (True, False)):
            runs[with_plugin].append(run_session(ks, with_plugin, args.startup_only, args.views, env))
            print(f"repeat {repeat} {'with' if with_plugin else 'without'}: {runs[with_plugin][-1]}",
                  file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"with": runs[True], "without": runs[False]}, indent=1))
    print(f"views: {args.views}")
    report(ks, runs, args.startup_only)
    return 0


def report(ks: Path, runs: dict, startup_only: bool) -> None:
    without, with_ = runs[False], runs[True]

    def paired(key, sub=None):
        get = (lambda r: r.get(key)) if sub is None else (lambda r: (r.get(key) or {}).get(sub))
        return [get(w) / get(o) for w, o in zip(with_, without) if get(w) and get(o)]

    def col(rs, key, sub=None, scale=1.0):
        get = (lambda r: r.get(key)) if sub is None else (lambda r: (r.get(key) or {}).get(sub))
        return [get(r) * scale if get(r) is not None else None for r in rs]

    print(f"{ks.name}: medians (range, n) of fresh processes, with and without the plugin interleaved")
    for key, name in (("painted", "start-up to a painted window, s"), ("create_gui", "start-up to create_gui(), s")):
        print(f"  {name:42} without {summary(col(without, key))}  with {summary(col(with_, key))}  "
              f"paired ratio {summary(paired(key))}")
    print(f"  {'Phy resident memory settled, MB':42} without {summary(col(without, 'rss_settled'))}  "
          f"with {summary(col(with_, 'rss_settled'))}  paired ratio {summary(paired('rss_settled'))}")
    print(f"  {'live-metrics child when ready, MB':42} {summary(col(with_, 'child_rss_ready'))}")
    if startup_only:
        return
    for name in ("merge", "split"):
        spikes = (with_[0].get(name) or {}).get("spikes")
        print(f"  {name} (new clusters of {spikes} spikes)")
        print(f"    {'Phy call, s':40} without {summary(col(without, name, 'call'))}  "
              f"with {summary(col(with_, name, 'call'))}")
        print(f"    {'longest GUI-thread gap after it, ms':40} "
              f"without {summary(col(without, name, 'longest_gap', 1e3))}  "
              f"with {summary(col(with_, name, 'longest_gap', 1e3))}")
        diff = [(w[name]["longest_gap"] - o[name]["longest_gap"]) * 1e3 for w, o in zip(with_, without)]
        print(f"    {'  paired difference, ms':40} {summary(diff)}")
        print(f"    {'live label after the call returned, s':40} {summary(col(with_, name, 'label_after_call'))}")
    print(f"  {'Phy resident memory after them, MB':42} without {summary(col(without, 'rss_after'))}  "
          f"with {summary(col(with_, 'rss_after'))}  paired ratio {summary(paired('rss_after'))}")
    print(f"  {'Phy peak resident memory, MB':42} without {summary(col(without, 'rss_peak'))}  "
          f"with {summary(col(with_, 'rss_peak'))}  paired ratio {summary(paired('rss_peak'))}")
    print(f"  {'live-metrics child after them / peak, MB':42} {summary(col(with_, 'child_rss_after'))} / "
          f"{summary(col(with_, 'child_rss_peak'))}")


if __name__ == "__main__":
    sys.exit(main())
