"""The live-metrics child process: ``python -m phy_bcreason.live.child KS_DIR BOMBCELL_DIR`` (or
`process.CHILD_WITHOUT_PYARROW`), started by `process.MetricsProcess`. It opens the recording once, then answers
each request pickled on its stdin with a pickle on its stdout (`serve`): live metrics (`metrics.metrics_table`),
Bombcell's own labels, evidence pictures (`pictures.picture`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys

import pandas as pd

from ..io.children import lower_priority, read_requests_until_parent_ends
from ..io.find import load_results
from .metrics import import_bombcell_functions, metrics_table, share_rpv_counts
from .recording import LiveMetricsError, Recording


def _child_setup() -> None:
    """The child says nothing on the terminal it shares with Phy: what Bombcell prints (and warns) goes to the
    log at debug level (the child has no log handler: dropped), fd 1 to the null device, Ctrl-C is left to
    Phy."""
    from ..quiet import send_prints_to_log

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send_prints_to_log()
    logging.captureWarnings(True)
    logging.getLogger().addHandler(logging.NullHandler())  # no "last resort" printing of warnings to stderr


def _reply(out, answer) -> None:
    try:
        pickle.dump(answer, out)
        out.flush()
    except OSError:  # Phy is gone (BrokenPipeError): nobody to answer, nothing to say
        os._exit(0)


def serve(ks_dir: str, bombcell_dir: str, results_on_stdin: bool = False, nice: int = 0) -> None:
    """The child's loop: {cluster id: spike ids} in, (True, (table, info)) or (False, message) out; or
    ("labels", metrics table) in, (True, Bombcell's labels) out; or ("evidence", cluster id, spike ids,
    comparisons, title, width, draw) in, (True, (what is drawn, PNG), or None when not drawn) out. With
    ``results_on_stdin`` the first message is the run's (params, metrics, its per-tauR table's column names),
    instead of reading them from ``bombcell_dir``. The process ends as soon as its stdin ends: Phy closed it or is gone
    (`io.children.read_requests_until_parent_ends`)."""
    out = os.fdopen(os.dup(1), "wb")  # the answers; fd 1 itself goes to the null device
    next_request = read_requests_until_parent_ends(sys.stdin.buffer)
    _child_setup()
    lower_priority(nice)
    error, recording, params = None, None, None
    measured: dict = {}  # cluster id -> its evidence, for pictures drawn again (what-if edits, a wider dock)
    try:
        if results_on_stdin:
            params, columns, tauR_columns = next_request()
            metrics = pd.DataFrame(columns)
        else:
            results = load_results(bombcell_dir, ks_dir=ks_dir)
            params, metrics, tauR_columns = results.params, results.metrics, results.tauR_columns
        import_bombcell_functions()
        recording = Recording.load(ks_dir, params, metrics, tauR_columns)
        del metrics
        share_rpv_counts()  # imports Bombcell: seconds, before the first merge rather than during it
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0] if not isinstance(exc, LiveMetricsError) else str(exc)
    _reply(out, (True, None))  # ready (errors are told with each answer)
    while True:
        request = next_request()
        try:
            if isinstance(request, tuple) and request[0] == "evidence":
                from .pictures import picture

                if error:
                    raise LiveMetricsError(error)
                answer = (True, picture(recording, measured, *request[1:]))
            elif isinstance(request, tuple) and request[0] == "labels":
                from ..core.judge import bombcell_labels

                if params is None:
                    raise LiveMetricsError(error)
                answer = (True, bombcell_labels(pd.DataFrame(request[1]), params, quiet=False))
            else:
                answer = (False, error) if error else (True, (metrics_table(recording, request), recording.info()))
        except Exception as exc:
            answer = (False, f"{type(exc).__name__}: {exc}".splitlines()[0])
        _reply(out, answer)


def main(argv: list[str]) -> None:
    """``KS_DIR BOMBCELL_DIR [--results-on-stdin] [--nice=N]``"""
    options = [arg for arg in argv[2:] if arg.startswith("--")]
    serve(*argv[:2], results_on_stdin="--results-on-stdin" in options,
          nice=next((int(o.split("=", 1)[1]) for o in options if o.startswith("--nice=")), 0))


if __name__ == "__main__":
    from phy_bcreason.live import child  # the real module, so that what it pickles names it, not __main__

    child.main(sys.argv[1:])
