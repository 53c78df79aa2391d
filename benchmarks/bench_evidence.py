"""The evidence panel's cost to a curator stepping through clusters: Phy with the panel shown against the same
plugin and dock with the panel closed, in the same run.

    python benchmarks/bench_evidence.py [--repeats 3] [--paces 0.5 0.15] [--json OUT]

On the folder `bench_dataset.py` builds (616 clusters, 18.3 million spikes, one hour, labelled by Python
Bombcell), each repeat opens Phy in fresh processes, one per mode and pace, modes in alternating order:

- ``panel``: the plugin and its dock, the evidence panel shown (the dock's "Selected cluster" tab);
- ``hidden``: the same plugin and dock, the panel dragged closed (the tab's splitter set to ``[1, 0]``, as a user
  drags it down): the rule table is shown and filled as before, `EvidencePanel.shown()` is false, so no
  picture is asked for; everything else is the same process set-up (the live-metrics child is started too);
- ``noplugin``: Phy alone (``--no-plugin-reference``), for reference.

Each session runs with Phy's default threading and default views in a shown window (offscreen platform), sized
1600 x 1000 (Phy's first-run 800 x 600 leaves a dozen docks so little room that the panel is under the 30 px
below which it counts as closed), waits until the plugin has settled (its worker idle: the classifier's labels
and the child process ready), then selects 50 clusters one after another through Phy's supervisor, as a
curator steps through them: every 12th cluster by spike count (ranks 0, 12, ..., 588: the largest cluster,
52,938 spikes, down to the small ones), taken in cluster-id order, one selection ``pace`` seconds after the
previous one returned (0.5 s: reading each; 0.15 s: holding the down key). After the last one it waits 8 s.

Measured, with a 1 ms Qt timer under Qt's own event loop (``app.exec_()``), as `bench_scale.py`:

- the longest gap in the GUI thread's event loop over the whole stepping, and per step (gaps that end between
  a selection and the next);
- with the panel: the time from each selection (before Phy's call) to its picture being in the panel
  (``view.evidence.png`` set for that cluster, seen by the timer), for the pictures drawn before the next
  selection (at the fast pace most are skipped by design: only the latest request is drawn); how many;
- the plugin's own time on the GUI thread per call (`guard.GUI_THREAD_TIMES`: the selection handler, the
  picture's callback);
- memory: Phy's resident set size once settled and its peak (VmHWM) at the end; the live-metrics child's
  when settled and its peak.

Reports medians, ranges and n, and the paired difference (panel minus hidden, same repeat and pace) of the
longest gap: the target is under +50 ms.

Two things Phy does that shape the numbers:

- Phy debounces the cluster view's selections (``Debouncer``, 500 ms, in `phy/gui/qt.py`): at a pace under
  0.5 s only the first selection and the one the stepping stops on reach Phy's views and the plugin, so the
  fast pace measures that, not 50 pictures asked for.
- Phy 2.1 updates its plot views on the GUI thread: at this scale each selection holds it for 1.4 to 1.7 s
  (median; up to 5 s), with or without the plugin, and the paired difference is lost in that noise.
  ``--views tables`` opens Phy with its cluster and similarity views and our dock only (as `bench_scale.py`),
  so that what is measured is what the panel adds.
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
ks, config, mode, pace, wait = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
tables_only = sys.argv[6] == "tables"
from phy.gui.qt import QApplication, QTimer
app = QApplication([])
from phy.apps.template import TemplateController, get_template_params
out = {"mode": mode, "pace": pace}
if mode != "noplugin":
    import phy_bcreason.plugin as bc_plugin
    out["module"] = bc_plugin.__file__
    import phy_bcreason.gui.guard as bc_guard
    bc_guard.GUI_THREAD_TIMES = plugin_times = []  # all of them (the guard's deque keeps the last 10,000)
    asked = []  # what the child was asked for: (cluster id, seconds, drawn: False for a measurement only)
    from phy_bcreason.gui.worker import Pictures
    from phy_bcreason.live.process import MetricsProcess
    evidence = MetricsProcess.evidence

    def timed_evidence(self, cluster_id, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return evidence(self, cluster_id, *args, **kwargs)
        finally:
            asked.append((int(cluster_id), time.perf_counter() - t0, kwargs.get("draw", True)))

    MetricsProcess.evidence = timed_evidence
    from phy_bcreason.gui.panels import EvidencePanel
    gui_calls = {"request": [], "show_picture": []}  # the picture's own work on the GUI thread, seconds

    def timed(cls, name, into):
        method = getattr(cls, name)

        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - t0)
        setattr(cls, name, run)

    timed(Pictures, "request", gui_calls["request"])
    timed(EvidencePanel, "show_picture", gui_calls["show_picture"])


def rss(pid="self", field="VmRSS"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MB
    return float("nan")


controller = TemplateController(config_dir=config, plugins=[] if mode == "noplugin" else ["BombcellReasonPlugin"],
                                clear_cache=True, clear_state=True, **get_template_params(str(ks / "params.py")))
no_views = {"default_views": (), "view_count": {"WaveformView": 0}}  # as bench_scale.py: no plot view
gui = controller.create_gui(do_prompt_save=False, **(no_views if tables_only else {}))
gui.resize(1600, 1000)
supervisor = controller.supervisor
plugin = getattr(controller, "phy_bcreason", None)
dock = gui.list_views("BombcellWhyView")[0] if plugin is not None else None
gui.show()

ticks = []
selected = []  # (cluster id, time before the call, time after it)
pictures = {}  # step -> time its picture was first seen in the panel


def tick():
    now = time.perf_counter()
    ticks.append(now)
    if dock is not None and selected:
        step = len(selected) - 1
        evidence = dock.evidence
        if step not in pictures and evidence.png is not None and evidence.cluster_id == selected[-1][0]:
            pictures[step] = now


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
    if plugin is not None and (not plugin.worker.idle() or plugin.live.process is None):
        steps.insert(0, (0.2, settled))  # wait for the plugin's start-up work (classifier, child process)
        return
    if mode == "hidden":
        dock.tabs.widget(0).setSizes([1, 0])  # the panel dragged closed under the rule table
    out["settled_after"] = time.perf_counter() - start
    out["rss_settled"] = rss()
    if plugin is not None:
        out["child_rss_settled"] = rss(plugin.live.process.child.pid)


def check_layout():
    if dock is not None:
        evidence = dock.evidence
        out["panel_shown"] = evidence.shown()
        out["panel_size"] = [evidence.scroll.viewport().width(), evidence.scroll.viewport().height()]
        out["dock_size"] = [dock.width(), dock.height()]
    if plugin is not None:
        plugin_times.clear()
        asked.clear()
        for calls in gui_calls.values():
            calls.clear()
    ticks.clear()


def sizes():
    counts = {int(c): len(s) for c, s in supervisor.clustering.spikes_per_cluster.items()}
    chosen = sorted(counts, key=lambda c: (-counts[c], c))[::12][:50]
    return sorted(chosen), counts


def select(cluster_id):
    def run():
        t0 = time.perf_counter()
        supervisor.select([cluster_id])
        selected.append((cluster_id, t0, time.perf_counter()))
    return run


def finish():
    end = time.perf_counter()
    out["stepping"] = end - selected[0][1]
    starts = [t0 for _, t0, _ in selected] + [end]
    gaps = [(a, b) for a, b in zip(ticks, ticks[1:]) if b > starts[0]]
    out["longest_gap"] = max(b - a for a, b in gaps)
    per_step = []
    for i, (cluster_id, t0, t1) in enumerate(selected):
        in_step = [b - a for a, b in gaps if t0 < b <= starts[i + 1]]
        picture = pictures.get(i)
        after_call = [b - a for a, b in gaps if t1 <= a and b <= starts[i + 1]]
        per_step.append({"cluster": cluster_id, "spikes": counts[cluster_id], "call": t1 - t0,
                         "longest_gap": max(in_step, default=0.0), "after_call": max(after_call, default=0.0),
                         "picture": None if picture is None else picture - t0})
    out["steps"] = per_step
    out["rss_end"], out["rss_peak"] = rss(), rss(field="VmHWM")
    if plugin is not None:
        pid = plugin.live.process.child.pid
        out["child_rss_end"], out["child_rss_peak"] = rss(pid), rss(pid, "VmHWM")
        calls = {}
        for name, seconds in plugin_times:
            calls.setdefault(name, []).append(seconds)
        # the selection handler, the picture's request (a lambda) and its callback; not the column getters
        out["plugin_calls"] = {name: {"n": len(s), "max": max(s), "total": sum(s)} for name, s in calls.items()
                               if name in ("on_select", "show")}
        out["gui_calls"] = {name: {"n": len(s), "max": max(s, default=0.0), "total": sum(s)}
                            for name, s in gui_calls.items()}
        out["child_pictures"] = asked


chosen, counts = sizes()
later(0.5, settled)
later(1.0, check_layout)
for i, cluster_id in enumerate(chosen):
    later(pace, select(cluster_id))
later(wait, finish)
run_steps()
app.exec_()
print("RESULT " + json.dumps(out))
gui.close()
os._exit(0)
"""


def own_folder(ks: Path) -> Path:
    """The dataset's files linked into a folder of our own: Phy's cache (``.phy``) and log are written there, not
    where another benchmark (bench_scale.py) may be using the same dataset at the same time."""
    mine = Path(tempfile.gettempdir()) / f"bench-evidence-{ks.name}"
    mine.mkdir(exist_ok=True)
    for path in ks.iterdir():
        if path.name not in (".phy", "phy.log") and not (mine / path.name).exists():
            (mine / path.name).symlink_to(path)
    return mine


def run_session(ks: Path, mode: str, pace: float, wait: float, views: str, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as config:
        subprocess.run(["rm", "-rf", str(ks / ".phy")], check=True)
        # cwd: `python -c` puts the current directory first on sys.path; run from this checkout, import it
        result = subprocess.run([sys.executable, "-c", SESSION, str(ks), config, mode, str(pace), str(wait), views],
                                capture_output=True, text=True, env=env, cwd=str(REPO), timeout=900)
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"session failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def summary(values, scale=1.0, digits=3) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return f"{statistics.median(values):.{digits}g} ({low:.{digits}g}-{high:.{digits}g}, n={len(values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=616)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paces", type=float, nargs="+", default=[0.5, 0.15])
    parser.add_argument("--wait", type=float, default=8.0, help="seconds after the last selection")
    parser.add_argument("--views", choices=("all", "tables"), default="all",
                        help="tables: Phy without its plot views (cluster and similarity views, our dock)")
    parser.add_argument("--no-plugin-reference", action="store_true", help="also Phy without the plugin")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from bench_dataset import build

    ks = own_folder(build(args.clusters, args.hours))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "MPLBACKEND": "Agg"}
    modes = ["panel", "hidden"] + (["noplugin"] if args.no_plugin_reference else [])
    runs: list[dict] = []
    for repeat in range(args.repeats):
        for pace in args.paces:
            for mode in (modes if repeat % 2 == 0 else modes[::-1]):
                run = run_session(ks, mode, pace, args.wait, args.views, env)
                run["repeat"] = repeat
                runs.append(run)
                print(f"repeat {repeat} pace {pace} {mode}: longest gap {run['longest_gap'] * 1e3:.0f} ms, "
                      f"{brief(run)}", file=sys.stderr, flush=True)
            if args.json:  # as it goes: a long run stopped early keeps what it measured
                args.json.write_text(json.dumps(runs, indent=1))
    print(f"views: {args.views}")
    report(ks, runs, args.paces, modes)
    return 0


def brief(run: dict) -> str:
    drawn = [s["picture"] for s in run["steps"] if s["picture"] is not None]
    asked = [seconds for _, seconds, drew in run.get("child_pictures", []) if drew]
    measured = sum(not drew for _, _, drew in run.get("child_pictures", []))
    return (f"{len(drawn)} pictures drawn, {measured} measured and {len(asked)} drawn by the child "
            f"({statistics.median(asked) if asked else float('nan'):.2f} s median), "
            f"panel shown {run.get('panel_shown')} {run.get('panel_size')}, plugin calls {run.get('plugin_calls')}, "
            f"{run.get('gui_calls')}")


def report(ks: Path, runs: list[dict], paces, modes) -> None:
    print(f"{ks.name}: 50 clusters stepped through; medians (range, n) over fresh processes, modes interleaved")
    for pace in paces:
        at = {mode: [r for r in runs if r["pace"] == pace and r["mode"] == mode] for mode in modes}
        print(f"pace {pace} s between selections")
        for mode in modes:
            rs = at[mode]
            print(f"  {mode}")
            print(f"    {'longest GUI-thread gap over the stepping, ms':50} "
                  f"{summary([r['longest_gap'] for r in rs], 1e3)}")
            print(f"    {'per step: median of longest gaps, ms':50} "
                  f"{summary([statistics.median(s['longest_gap'] for s in r['steps']) for r in rs], 1e3)}")
            print(f"    {'Phy call supervisor.select, max per run, ms':50} "
                  f"{summary([max(s['call'] for s in r['steps']) for r in rs], 1e3)}")
            print(f"    {'  median per run, ms':50} "
                  f"{summary([statistics.median(s['call'] for s in r['steps']) for r in rs], 1e3)}")
            print(f"    {'longest gap after the call returned, max, ms':50} "
                  f"{summary([max(s['after_call'] for s in r['steps']) for r in rs], 1e3)}")
            if mode == "panel":
                drawn = [[s["picture"] for s in r["steps"] if s["picture"] is not None] for r in rs]
                print(f"    {'pictures drawn before the next selection, of 50':50} {summary([len(d) for d in drawn])}")
                print(f"    {'time to the picture, median per run, s':50} "
                      f"{summary([statistics.median(d) if d else None for d in drawn])}")
                print(f"    {'time to the picture, max per run, s':50} "
                      f"{summary([max(d) if d else None for d in drawn])}")
                measured = [[s for _, s, drew in r["child_pictures"] if not drew] for r in rs]
                asked = [[s for _, s, drew in r["child_pictures"] if drew] for r in rs]
                print(f"    {'clusters measured by the child process, of 50':50} "
                      f"{summary([len(m) for m in measured])}")
                print(f"    {'  its answer, median per run, s':50} "
                      f"{summary([statistics.median(m) if m else None for m in measured])}")
                print(f"    {'pictures drawn by the child process, of 50':50} {summary([len(a) for a in asked])}")
                print(f"    {'  its answer, median per run, s':50} "
                      f"{summary([statistics.median(a) if a else None for a in asked])}")
            if mode != "noplugin":
                for name in ("on_select", "show"):
                    print(f"    {'plugin on the GUI thread, ' + name + ', max ms':50} "
                          f"{summary([(r['plugin_calls'].get(name) or {}).get('max') for r in rs], 1e3)}")
                for name in ("request", "show_picture"):
                    print(f"    {'  of which ' + name + ', max ms':50} "
                          f"{summary([(r['gui_calls'].get(name) or {}).get('max') for r in rs], 1e3)}")
            print(f"    {'Phy resident memory settled / peak, MB':50} {summary([r['rss_settled'] for r in rs])} / "
                  f"{summary([r['rss_peak'] for r in rs])}")
            if mode != "noplugin":
                print(f"    {'live-metrics child settled / peak, MB':50} "
                      f"{summary([r['child_rss_settled'] for r in rs])} / {summary([r['child_rss_peak'] for r in rs])}")
        pairs = [(p, h) for p in at["panel"] for h in at["hidden"] if p["repeat"] == h["repeat"]]
        diff = [p["longest_gap"] - h["longest_gap"] for p, h in pairs]
        print(f"  {'paired difference panel - hidden, longest gap, ms':52} {summary(diff, 1e3)}  (target < +50)")
        diff = [statistics.median(s["longest_gap"] for s in p["steps"]) -
                statistics.median(s["longest_gap"] for s in h["steps"]) for p, h in pairs]
        print(f"  {'paired difference, per-step median longest gap, ms':52} {summary(diff, 1e3)}")
        diff = [statistics.median(s["call"] for s in p["steps"]) -
                statistics.median(s["call"] for s in h["steps"]) for p, h in pairs]
        print(f"  {'paired difference, median Phy select call, ms':52} {summary(diff, 1e3)}")
        diff = [p["child_rss_peak"] - h["child_rss_peak"] for p, h in pairs]
        print(f"  {'paired difference, child peak memory, MB':52} {summary(diff)}")
        diff = [p["rss_peak"] - h["rss_peak"] for p, h in pairs]
        print(f"  {'paired difference, Phy peak memory, MB':52} {summary(diff)}")


if __name__ == "__main__":
    sys.exit(main())
