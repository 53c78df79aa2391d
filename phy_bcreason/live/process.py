"""The parent's side of the live-metrics child process: `MetricsProcess` starts ``python -m phy_bcreason.live.child``
(`child.py`) and asks it for live metrics, Bombcell's labels and evidence pictures, in Phy's process. No Qt here.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.children import spawn_options
from ..io.results import BombcellResults
from .recording import LiveInfo, LiveMetricsError

CHILD_WITHOUT_PYARROW = ("import sys; sys.modules['pyarrow'] = None; "
                         "from phy_bcreason.live.child import main; main(sys.argv[1:])")


def _columns(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """A table as plain numpy columns, which unpickle without pyarrow whatever the table's dtypes."""
    return {name: table[name].to_numpy() for name in table.columns}


class MetricsProcess:
    """`metrics_table` in a child process that keeps the recording open between calls, so that the computation
    never holds the GIL Phy's GUI thread needs. A plain ``python -m phy_bcreason.live.child`` child, not
    multiprocessing's spawn, which would run the script that started Phy again in the child. The two processes
    exchange pickles over the child's stdin/stdout; the child reads nothing but the parquet and npy files
    (with ``results``, not even the parquet files: the parent's copy is sent).

    The child also runs Bombcell's own classifier (`labels`), so that Bombcell and its imports (numba, scipy,
    matplotlib: about 160 MB) never enter Phy's process. It imports only Bombcell's metric modules, runs at
    a lower scheduling priority than Phy (``nice``: `io.children.lower_priority`; below normal on Windows), and
    maps spike-sized files one window at a time. Started and ended alike on every OS (`io.children`)."""

    def __init__(self, ks_dir: str | Path, bombcell_dir: str | Path, results: BombcellResults | None = None,
                 nice: int = 0):
        package_parent = str(Path(__file__).resolve().parents[2])  # the folder phy_bcreason/ is in
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent,
                                                                           os.environ.get("PYTHONPATH")])),
               "MPLBACKEND": "Agg"}
        args = [sys.executable, "-m", "phy_bcreason.live.child", str(ks_dir), str(bombcell_dir)]
        if results is not None:
            # the child reads no parquet file then: without pyarrow (about 65 MB), which pandas would import
            args[1:3] = ["-c", CHILD_WITHOUT_PYARROW]
            args.append("--results-on-stdin")
        if nice:
            args.append(f"--nice={int(nice)}")
        # Phy closes the child, or the child ends by itself once its stdin ends (`child.serve`)
        self.child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                      **spawn_options(lower=bool(nice)))
        self.ready = False
        self._lock = threading.Lock()  # one request at a time: live metrics and pictures come from two threads
        if results is not None:
            self._send((results.params, _columns(results.metrics), results.tauR_columns))

    def wait_ready(self) -> None:
        """Block until the child has opened the recording and imported Bombcell (seconds, once)."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if not self.ready:
            self._answer()
            self.ready = True

    def _ask(self, request):
        with self._lock:
            self._wait_ready()
            self._send(request)
            return self._answer()

    def _send(self, request) -> None:
        try:
            pickle.dump(request, self.child.stdin)
            self.child.stdin.flush()
        except OSError:
            raise LiveMetricsError("the process computing live metrics stopped (its error is in Phy's console)") \
                from None

    def _answer(self):
        try:
            ok, payload = pickle.load(self.child.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise LiveMetricsError("the process computing live metrics stopped (its error is in Phy's console)") \
                from None
        if not ok:
            raise LiveMetricsError(payload)
        return payload

    def table(self, clusters: dict[int, np.ndarray]) -> tuple[pd.DataFrame, LiveInfo]:
        return self._ask({int(c): np.asarray(s, dtype=np.int64) for c, s in clusters.items()})

    def labels(self, metrics: pd.DataFrame) -> np.ndarray:
        """Bombcell's own classifier (`api.bombcell_labels`) on ``metrics`` with the run's parameters."""
        return self._ask(("labels", _columns(metrics)))

    def evidence(self, cluster_id: int, spike_ids: np.ndarray, comparisons: list[dict], title: str,
                 width_px: int, draw: bool = True) -> tuple[dict, bytes] | None:
        """The evidence panel of one cluster (`pictures.picture`): what is drawn, and the PNG (None without
        ``draw``: measured only)."""
        return self._ask(("evidence", int(cluster_id), np.asarray(spike_ids, dtype=np.int64), comparisons, title,
                          int(width_px), bool(draw)))

    def close(self) -> None:
        """Stop the child at once: it only ever reads files, so there is nothing to finish. Closing its stdin
        ends it wherever it runs (behind a launcher, ``child`` is the launcher); killing it makes sure."""
        with contextlib.suppress(OSError):
            self.child.stdin.close()
        self.child.kill()
        self.child.wait()
        self.child.stdout.close()
