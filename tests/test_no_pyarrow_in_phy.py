"""Phy's process with the plugin never imports pyarrow (about 60 MB of Phy's memory, issue #11): the parquet
files are read, and the dock's Save… and Load… files written and read, by a child process. Run in a fresh
Python process (pytest's own has pyarrow already), on a copy of the bundled demo: open Phy with the plugin, a
merge computed live, a what-if saved and loaded back. Nothing is timed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from phy_bcreason.demo import DEMO_DATA

REPO = Path(__file__).resolve().parents[1]

SESSION = textwrap.dedent(
    """\
    import json, sys, time
    from pathlib import Path
    from phy.gui.qt import QApplication
    app = QApplication([])
    from phy_bcreason.demo import open_gui
    from phy_bcreason.tuning.whatif import editable

    def settle(controller):
        end = time.monotonic() + 120
        while not controller.phy_bcreason.worker.idle() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        app.processEvents()

    ks, config = Path(sys.argv[1]), Path(sys.argv[2])
    controller, gui = open_gui(ks, config)
    gui.show()
    settle(controller)
    supervisor, live = controller.supervisor, controller.phy_bcreason.live
    merged = supervisor.merge(list(supervisor.clustering.cluster_ids[:2]))
    settle(controller)
    name = next(iter(editable(live.results)[0]))
    live.set_overrides({name: float(live.results.params[name]) * 2 + 1})
    saved = live.save_overrides()
    loaded = live.overrides_from(saved)
    out = {"pyarrow": sys.modules.get("pyarrow") is not None, "pandas": "pandas" in sys.modules,
           "source": live.column_values(int(merged.added[0]))["bc_source"], "saved": str(saved),
           "loaded": loaded, "error": live.error}
    print("RESULT " + json.dumps(out))
    gui.close()
    controller.close()
    """
)


def test_phy_with_the_plugin_imports_no_pyarrow(tmp_path):
    ks = shutil.copytree(DEMO_DATA, tmp_path / "ks")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", SESSION, str(ks), str(tmp_path / "config")], capture_output=True,
                          text=True, env=env, timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, done.stderr[-3000:]
    out = json.loads(line[len("RESULT "):])
    assert out["error"] is None and out["pandas"] and out["source"] == "live"
    assert not out["pyarrow"]
    (name, value), = out["loaded"].items()
    assert pd.read_parquet(out["saved"]).iloc[0][name] == value  # Save… wrote a file pandas reads


def test_the_child_reads_what_this_process_reads(ks_dataset, tmp_path, monkeypatch):
    from phy_bcreason.io import parquet
    from phy_bcreason.io.bombcell import METRICS_FILE
    from phy_bcreason.io.find import load_results
    from phy_bcreason.io.results import BombcellResultsError
    from tests.dataset_builder import copy_dataset

    damaged = copy_dataset(ks_dataset, tmp_path / "ks")
    path = damaged / "bombcell" / METRICS_FILE
    path.write_bytes(path.read_bytes()[:300])

    def read_both():
        here = load_results(ks_dataset / "bombcell")
        try:
            load_results(damaged / "bombcell")
        except BombcellResultsError as exc:
            return here, str(exc)

    here, here_error = read_both()
    monkeypatch.setattr(parquet, "_in_child", lambda: True)
    there, there_error = read_both()
    pd.testing.assert_frame_equal(here.metrics, there.metrics)
    pd.testing.assert_series_equal(pd.Series(here.params, dtype=object), pd.Series(there.params, dtype=object))
    assert there_error == here_error and "cannot read as parquet" in there_error and "\n" not in there_error
