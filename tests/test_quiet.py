"""What Bombcell prints goes to the log at debug level, never to stdout: from Phy's worker thread, in the CLI, and
without swallowing what other threads print meanwhile."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np

from phy_bcreason.demo import DEMO_DATA
from phy_bcreason.quiet import _Router, bombcell_output_to_log

REPO = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def test_only_the_threads_inside_the_block_are_caught(capsys, caplog):
    caplog.set_level(logging.DEBUG, logger="phy_bcreason")
    original = sys.stdout
    inside, go_on = threading.Event(), threading.Event()

    def worker():
        with bombcell_output_to_log():
            print("from bombcell")
            inside.set()
            go_on.wait(30)
            print("again, no newline", end="")

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(30)
    print("from the GUI thread")  # while the worker is inside the block
    go_on.set()
    thread.join(30)
    print("after")

    assert capsys.readouterr().out == "from the GUI thread\nafter\n"
    assert [r.getMessage() for r in caplog.records if r.name == "phy_bcreason"] == \
        ["bombcell: from bombcell", "bombcell: again, no newline"]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "phy_bcreason")
    assert sys.stdout is original and not isinstance(sys.stdout, _Router)  # put back once nobody needs it


def test_nested_blocks(capsys, caplog):
    caplog.set_level(logging.DEBUG, logger="phy_bcreason")
    with bombcell_output_to_log():
        with bombcell_output_to_log():
            print("inner")
        print("outer")
    assert capsys.readouterr().out == ""
    assert [r.getMessage() for r in caplog.records if r.name == "phy_bcreason"] == ["bombcell: inner",
                                                                                      "bombcell: outer"]


def test_bombcell_import_banner_from_a_worker_thread_goes_to_the_log(tmp_path):
    """As the plugin's worker did: Bombcell's classifier (first import: its banner) from a non-main thread."""
    script = textwrap.dedent(
        """\
        import logging, sys, threading
        from pathlib import Path
        handler = logging.StreamHandler(sys.stderr)
        logging.getLogger("phy_bcreason").addHandler(handler)
        logging.getLogger("phy_bcreason").setLevel(logging.DEBUG)
        from phy_bcreason.api import bombcell_labels
        from phy_bcreason.io.find import find_bombcell_dir, load_results
        assert "bombcell" not in sys.modules
        ks = Path(sys.argv[1])
        results = load_results(find_bombcell_dir(ks, None), ks_dir=ks)
        out = []
        thread = threading.Thread(target=lambda: out.append(bombcell_labels(results.metrics, results.params,
                                                                             quiet=False)))
        thread.start()
        thread.join()
        print("labels", len(out[0]))
        """
    )
    res = subprocess.run([sys.executable, "-c", script, str(DEMO_DATA)], capture_output=True, text=True,
                         env=_env(MPLBACKEND="Agg"), cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("labels ") and len(res.stdout.splitlines()) == 1, res.stdout
    assert "bombcell: ✅ ipywidgets available" in res.stderr  # in the log, at debug level


def test_cli_live_json_is_all_of_stdout(tmp_path):
    """`explain --live --json` imports Bombcell's metric functions (its banner) for a cluster merged in Phy."""
    ks = shutil.copytree(DEMO_DATA, tmp_path / "ks")
    spike_clusters = np.load(ks / "spike_clusters.npy")
    merged = spike_clusters.copy()
    new_id = int(spike_clusters.max()) + 1
    merged[np.isin(spike_clusters, [0, 1])] = new_id
    np.save(ks / "spike_clusters.npy", merged)
    res = subprocess.run([sys.executable, "-m", "phy_bcreason", "explain", str(ks), "--live", "--json", "--cluster",
                          str(new_id)], capture_output=True, text=True, env=_env(MPLBACKEND="Agg"), cwd=tmp_path,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    units = json.loads(res.stdout)  # nothing else on stdout
    assert [u["cluster_id"] for u in units] == [new_id]
    assert "ipywidgets" not in res.stdout + res.stderr
    assert "Traceback" not in res.stderr
