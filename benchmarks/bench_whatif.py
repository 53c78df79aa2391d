"""One what-if threshold edit on a large dataset in a real Phy GUI: from the dock edit to every column,
the dock and the status bar updated, against the engine's own evaluation time in the same run.

    python benchmarks/bench_whatif.py [--clusters 5000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from bench_phy import tiled_dataset  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from phy.gui.qt import QApplication

    from phy_bcreason.api import explain
    from phy_bcreason.demo import open_gui
    from phy_bcreason.gui.dock import THRESHOLD_COLUMN

    _app = QApplication.instance() or QApplication([])  # noqa: F841  (keep the application alive)
    with tempfile.TemporaryDirectory() as tmp:
        ks = tiled_dataset(args.clusters, Path(tmp) / "ks")
        for tsv in ks.glob("cluster_*.tsv"):
            tsv.unlink()  # start-up is not measured here; fewer columns make the GUI open faster
        controller, gui = open_gui(ks, Path(tmp) / "config")
        supervisor = controller.supervisor
        supervisor.select([8])
        supervisor.block()
        view = gui.list_views("BombcellWhyView")[0]
        view.show_clusters([8])
        live = view.live

        def presence_ratio_row():  # the tree is rebuilt after each edit
            mua = view.tree.topLevelItem(2)
            return next(mua.child(i) for i in range(mua.childCount()) if mua.child(i).text(0) == "presenceRatio")

        edits, engine = [], []
        for k in range(args.repeats):
            item = presence_ratio_row()
            start = time.perf_counter()
            item.setText(THRESHOLD_COLUMN, "0.5" if k % 2 == 0 else "0.6")  # re-explain, columns, docks, status
            edits.append(time.perf_counter() - start)
            start = time.perf_counter()
            explain(live.results, overrides=dict(live.overrides), check=False)
            engine.append(time.perf_counter() - start)
        n = len(supervisor.clustering.cluster_ids)
        print(live.whatif_line())
        gui.close()
    edit, evaluation = statistics.median(edits), statistics.median(engine)
    print(f"{n} clusters, median of {args.repeats} edits")
    print(f"  edit -> columns, dock, status bar  {edit * 1000:8.1f} ms (target <= 100 ms)")
    print(f"  engine evaluation alone            {evaluation * 1000:8.1f} ms   ratio {edit / evaluation:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
