"""The session's one child process (`live/process.py`): it computes live metrics, runs Bombcell's classifier and
draws the evidence panel, at a lower priority than Phy."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..live.process import MetricsProcess

# how much the live-metrics process yields the CPU to Phy (PHY_BCREASON_CHILD_NICE to change it)
CHILD_NICE = int(os.environ.get("PHY_BCREASON_CHILD_NICE", "5"))


class Child:
    """Started at most once, from whichever thread asks first (the worker or the pictures' thread), never from
    Phy's GUI thread: it takes seconds. It is sent the results Phy's process already read."""

    def __init__(self, ks_dir: Path | None, results):
        self.ks_dir, self.results = ks_dir, results
        self.process: MetricsProcess | None = None
        self._starting = threading.Lock()

    def get(self) -> MetricsProcess:
        with self._starting:
            if self.process is None:
                self.process = MetricsProcess(self.ks_dir, self.results.folder, results=self.results,
                                              nice=CHILD_NICE)
        return self.process

    def close(self) -> None:
        if self.process is not None:
            self.process.close()
