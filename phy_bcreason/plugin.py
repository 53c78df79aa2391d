"""Show why Bombcell labelled each cluster: cluster-view columns and a "why?" dock, kept true through merges
and splits (new clusters get Bombcell's metrics recomputed live, in a background process). Glue only: the decisions
live in `live.py`, `live_metrics.py`, `engine.py` and `why_view.py`."""

from __future__ import annotations

import collections
import functools
import logging
import queue
import signal
import threading
import time

from phy import IPlugin, connect, unconnect
from qtpy.QtCore import QObject, QTimer, Signal

from .api import classifier_labels
from .live import COLUMNS, REPLACED_METADATA, LiveReasons
from .why_view import BombcellWhyView

logger = logging.getLogger("phy")
VIEW_NAME = BombcellWhyView.__name__


# How long each of the plugin's calls on the GUI thread took (name, seconds): benchmarks/bench_merge.py reads it.
GUI_THREAD_TIMES: collections.deque = collections.deque(maxlen=10_000)


def _never_raise(func):
    """Phy's event loop must never see our exceptions: log them instead."""
    name = getattr(func, "__name__", repr(func))

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            logger.warning("phy-bcreason: %s failed: %s: %s", name, type(exc).__name__, exc)
        finally:
            GUI_THREAD_TIMES.append((name, time.perf_counter() - start))

    return wrapper


def update_rows(table, rows: list[dict]) -> None:
    """Patch rows of a Phy table (cluster or similarity view) in place.

    Phy's public `Table.change()` refits the height of every row and the width of every column, seconds on
    thousands of clusters, for each call. Telling Qt which cells changed lets its sort/filter proxy move just
    those rows, but Phy's columns resize to their contents, so Qt still measures every visible cell (40-80 ms
    on our machines): that is done only when it matters (the table is sorted or filtered by a changed column,
    or a new value is wider than its column); otherwise the table is just repainted. Falls back to `change()`
    if Phy's table is built otherwise.
    """
    model = getattr(table, "_model", None)
    rows_by_id = getattr(model, "_rows_by_id", None)
    if not rows or rows_by_id is None or not hasattr(model, "dataChanged"):
        return table.change(rows)
    names = [name for name in rows[0] if name in table.columns and name != "id"]
    if not names:
        return
    patched = [(rows_by_id[patch["id"]], patch) for patch in rows if patch["id"] in rows_by_id]
    for row, patch in patched:
        row.update(patch)
    if not _needs_layout(table, names, [patch for _, patch in patched]):
        table.table_view.viewport().update()
        return
    positions = {id(row): i for i, row in enumerate(model._rows)} if len(patched) > 1 else None
    columns = [table.columns.index(name) for name in names]
    for row, _ in patched:
        i = positions[id(row)] if positions is not None else model._rows.index(row)
        model.dataChanged.emit(model.index(i, min(columns)), model.index(i, max(columns)))


def _needs_layout(table, names: list[str], patches: list[dict]) -> bool:
    """Whether changed values can move rows (sort, filter) or need a wider column."""
    sort = getattr(table, "_current_sort", None)
    if getattr(table, "_filter_is_active", True) or (sort and sort[0] in names):
        return True
    view = table.table_view
    metrics = view.fontMetrics()
    for name in names:
        width = view.columnWidth(table.columns.index(name)) - 12  # the cell's padding
        if any(metrics.horizontalAdvance(_cell_text(patch[name])) > width for patch in patches):
            return True
    return False


def _cell_text(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)  # as Qt shows a double


class Worker(QObject):
    """One background thread running jobs in order; each job's result is handed to its callback on the GUI
    thread (through a queued Qt signal), so the GUI thread only ever waits for the callbacks."""

    done = Signal(object, object)

    def __init__(self):
        super().__init__()
        self.jobs: queue.Queue = queue.Queue()
        self.busy = 0  # jobs submitted whose callback has not run yet
        self.done.connect(self._finish)
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, job, callback, later: bool = False) -> None:
        """Run ``job()`` on the worker, then ``callback(result)`` on the GUI thread; with ``later``, the job is
        queued only when the GUI thread is back in its event loop."""
        self.busy += 1
        if later:
            QTimer.singleShot(0, lambda: self.jobs.put((job, callback)))
        else:
            self.jobs.put((job, callback))

    def idle(self) -> bool:
        return self.busy == 0

    def stop(self) -> None:
        """The thread ends after the jobs already queued."""
        self.jobs.put(None)

    def _run(self) -> None:
        while (item := self.jobs.get()) is not None:
            job, callback = item
            try:
                result = job()
            except Exception as exc:  # a job's own errors are its business; never kill the thread
                logger.warning("phy-bcreason: background job failed: %s: %s", type(exc).__name__, exc)
                result = None
            try:
                self.done.emit(callback, result)
            except RuntimeError:  # Phy ended without closing its window: the Qt side of this worker is gone
                return

    def _finish(self, callback, result) -> None:
        self.busy -= 1
        _never_raise(callback)(result)


class BombcellReasonPlugin(IPlugin):
    def attach_to_controller(self, controller):
        live = LiveReasons.load(controller.dir_path)
        self.live = live
        controller.phy_bcreason = self  # for scripts and tests: the plugin's state and its worker
        # Static Bombcell columns read from TSV files would duplicate ours and go stale after merges.
        for name in REPLACED_METADATA:
            controller.model.metadata.pop(name, None)
        for name in COLUMNS:
            column = functools.partial(lambda name, cluster_id: live.column_values(cluster_id)[name], name)
            controller.cluster_metrics[name] = _never_raise(column)

        def create_view():
            view = BombcellWhyView(live)
            view.on_overrides = _never_raise(lambda overrides: self._set_overrides(overrides))
            view.on_list = _never_raise(lambda cluster_ids: self._list(cluster_ids))
            supervisor = getattr(controller, "supervisor", None)
            if supervisor is not None:
                view.show_clusters(supervisor.selected_clusters)
            return view

        controller.view_creator[VIEW_NAME] = create_view

        @connect(sender=controller)
        def on_gui_ready(sender, gui):
            supervisor = controller.supervisor
            for note in live.notes():
                logger.info("phy-bcreason: note: %s", note)
            gui.status_message = live.status_line()
            if not gui.list_views(VIEW_NAME) and not gui.state.get("phy_bcreason_dock_shown"):
                gui.create_and_add_view(VIEW_NAME)  # first time only; later the user's layout decides
            gui.state["phy_bcreason_dock_shown"] = True

            def refresh(cluster_ids):
                """New values for these clusters: patch both cluster tables, redraw every dock."""
                alive = set(supervisor.clustering.cluster_ids.tolist())
                rows = [{"id": c, **live.column_values(c)} for c in cluster_ids if c in alive]
                update_rows(supervisor.cluster_view, rows)
                update_rows(supervisor.similarity_view, rows)
                for view in gui.list_views(VIEW_NAME):
                    view.refresh()

            @connect(sender=supervisor)
            @_never_raise
            def on_select(sender, cluster_ids, **kwargs):
                for view in gui.list_views(VIEW_NAME):
                    view.show_clusters(cluster_ids)

            worker = Worker()
            restore_ctrl_c = _close_on_ctrl_c(gui)
            self.worker = worker  # tests wait on worker.idle()
            closed = []

            def compute_live(cluster_ids, on_open=False):
                """Clusters Bombcell never saw: show them as computing, recompute their metrics off the GUI
                thread, then re-explain and show them."""
                to_compute = live.to_compute(cluster_ids)
                if not to_compute:
                    return []
                spikes = {c: supervisor.clustering.spikes_per_cluster[c] for c in to_compute}
                live.start_computing(spikes)
                overrides = dict(live.overrides)

                def show_live(update):
                    if closed or update is None:
                        return
                    refresh(live.add_live(update))
                    gui.status_message = live.status_line() if on_open else live.live_status(update.cluster_ids)

                # started once Phy has finished its own work on the merge, so as not to compete with it
                worker.submit(lambda: live.compute(spikes, overrides), show_live, later=True)
                return to_compute

            @connect(sender=supervisor)
            @_never_raise
            def on_cluster(sender, up):
                if up.added:
                    live.record_clustering(up.descendants)
                    compute_live(up.added)
                    refresh(up.added)

            def set_overrides(overrides):
                """A what-if edit from a dock: re-explain every cluster, update columns, docks, status bar."""
                refresh(live.set_overrides(overrides))
                gui.status_message = live.status_line()
                if not overrides and listing:  # reset: drop the filter that List set
                    supervisor.cluster_view.filter("")
                    listing.clear()

            listing = []

            def list_clusters(cluster_ids):
                supervisor.cluster_view.filter(" or ".join(f"id == {c}" for c in cluster_ids) or "id < 0")
                listing.append(True)

            self._set_overrides, self._list = set_overrides, list_clusters

            if live.results is not None:
                worker.submit(lambda: _judge(live), lambda judged: judged is not None and not closed and
                              _apply_judgement(live, judged, gui, refresh))
                # the process computing live metrics takes seconds to start: start it now, not at the first merge
                worker.submit(lambda: live.start_process().wait_ready(), lambda ready: None)
            refresh(compute_live(supervisor.clustering.cluster_ids, on_open=True))  # curated in an earlier session

            @connect(sender=gui)
            def on_close(sender):
                closed.append(True)
                worker.stop()
                live.close()
                restore_ctrl_c()
                unconnect(on_select, on_cluster, on_close)

        self._on_gui_ready = on_gui_ready


def _close_on_ctrl_c(gui):
    """Ctrl-C in the terminal closes Phy's window, as its close button does (Phy asks to save unsaved work), so
    the plugin's process and thread end cleanly. Without this, Qt's event loop never lets Python see the signal,
    and the KeyboardInterrupt surfaces later, as a traceback, in whichever callback runs next. Only when nobody
    else handles SIGINT; returns what puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return lambda: None

    def on_ctrl_c(signum, frame):
        try:
            gui.windowTitle()  # raises RuntimeError once Qt has deleted the window
        except RuntimeError:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from None
        QTimer.singleShot(0, gui.close)

    signal.signal(signal.SIGINT, on_ctrl_c)
    wake = QTimer(gui)  # Python only runs signal handlers when the event loop gives it the hand
    wake.timeout.connect(lambda: None)
    wake.start(250)

    def restore():
        wake.stop()
        if signal.getsignal(signal.SIGINT) is on_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore


def _judge(live: LiveReasons):
    """Off the GUI thread (importing Bombcell or SpikeInterface takes seconds): the labels of the classifier that
    labelled the run, on the same results, where it runs here (not MATLAB's) and every threshold is known."""
    if live.saved.missing_thresholds:
        return None
    try:
        return classifier_labels(live.results, live.results.params, quiet=False)
    except Exception:
        logger.debug("phy-bcreason: Bombcell's own classifier could not run; labels are the rule table's",
                     exc_info=True)
        return None


def _apply_judgement(live: LiveReasons, judged, gui, refresh) -> None:
    changed = live.apply_judgement(judged)
    if changed:
        message = (f"phy-bcreason: Bombcell's classifier disagrees with the rule table on {len(changed)} "
                   f"cluster(s) ({', '.join(map(str, changed[:10]))}); Bombcell's labels are shown")
        logger.warning(message)
        gui.status_message = message
        refresh(changed)
