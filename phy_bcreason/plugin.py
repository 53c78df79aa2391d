"""Show why Bombcell labelled each cluster: cluster-view columns and a "why?" dock, kept true through merges
and splits (new clusters get Bombcell's metrics recomputed live, in a background process). Glue only: the decisions
live in `live.py`, `live_metrics.py`, `engine.py` and `why_view.py`."""

from __future__ import annotations

import collections
import functools
import logging
import os
import queue
import signal
import threading

from phy import IPlugin, connect, unconnect
from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtGui import QImage
from qtpy.QtWidgets import QHeaderView, QToolTip

from .core.errors import first_line
from .core.judge import classifier_labels
from .core.rules import PYTHON
from .gui.dock import BombcellWhyView
from .gui.guard import guarded, show_failures_in
from .gui.session import COLUMNS, REPLACED_METADATA, LiveReasons
from .io.parquet import keep_pyarrow_out
from .live.metrics import MATLAB_TSV_NAMES, NOT_METRICS, LiveMetricsError, MetricsProcess
from .tuning.concordance import PHY_GROUPS

logger = logging.getLogger("phy")
VIEW_NAME = BombcellWhyView.__name__
AGREES = "bc_agrees"  # 1 where your Phy group agrees with Bombcell's label, 0 where not
# how much the live-metrics process yields the CPU to Phy (PHY_BCREASON_CHILD_NICE to change it)
CHILD_NICE = int(os.environ.get("PHY_BCREASON_CHILD_NICE", "5"))
REASON_CHARS = 70  # the reason column's width at most, in average characters; longer reasons are elided


def update_rows(table, rows: list[dict]) -> None:
    """Patch rows of a Phy table (cluster or similarity view) in place.

    Phy's public `Table.change()` refits the height of every row and the width of every column, seconds on
    thousands of clusters, for each call. Here the changed cells are patched; the plugin's columns are widened
    directly if a new value needs it (`TableSizing`: Qt never measures them cell by cell); Qt is told which
    cells changed only when that can move rows (the table is sorted or filtered by a changed column), so that
    its sort/filter proxy moves just those; otherwise the table is just repainted. Falls back to `change()` if
    Phy's table is built otherwise.
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
    sizing = getattr(table, "_bcreason_sizing", None)
    if sizing is not None:
        sizing.grow([patch for _, patch in patched])
    if not _needs_layout(table, names, [patch for _, patch in patched], sizing is None):
        table.table_view.viewport().update()
        return
    positions = {id(row): i for i, row in enumerate(model._rows)} if len(patched) > 1 else None
    columns = [table.columns.index(name) for name in names]
    for row, _ in patched:
        i = positions[id(row)] if positions is not None else model._rows.index(row)
        model.dataChanged.emit(model.index(i, min(columns)), model.index(i, max(columns)))


def _needs_layout(table, names: list[str], patches: list[dict], check_widths: bool = True) -> bool:
    """Whether changed values can move rows (sort, filter) or (tables Qt sizes) need a wider column."""
    sort = getattr(table, "_current_sort", None)
    if getattr(table, "_filter_is_active", True) or (sort and sort[0] in names):
        return True
    if not check_widths:
        return False
    view = table.table_view
    metrics = view.fontMetrics()
    for name in names:
        width = view.columnWidth(table.columns.index(name)) - 12  # the cell's padding
        if any(metrics.horizontalAdvance(_cell_text(patch[name])) > width for patch in patches):
            return True
    return False


def _cell_text(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)  # as Qt shows a double


class TableSizing(QObject):
    """Column widths and row heights of a Phy table that Qt does not measure cell by cell.

    Phy sets every column of its tables to fit its contents and, after every merge, split, sort or filter,
    asks Qt to refit every column and every row (`Table._fit_columns`): Qt then asks the model for the size
    of every cell, about 2 million Python calls at start-up on 600 clusters, and again on each change. Our
    columns (the five bc_ columns and Bombcell's metric columns) get widths computed here from their text,
    once per new row (the reason column at most ``capped`` characters wide, elided, its full text in a tooltip), and
    the user may drag them wider. Rows get one fixed height, that of the first row as Qt measures it: Phy's
    rows are single lines, all of the same height. Phy's own columns are still fitted by Qt as before.
    """

    def __init__(self, table, ours, capped: dict[str, int]):
        super().__init__(table)
        self.table, self.ours, self.capped = table, set(ours), dict(capped)
        self.widths: dict[str, int] = {}
        self.measured: set = set()  # row ids whose text was measured
        self.padding: int | None = None
        self.row_height: int | None = None
        table._fit_columns = self.fit
        table._bcreason_sizing = self
        # before Phy fills the table: a model reset with sections resizing to their contents measures every cell
        table.table_view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        table.table_view.viewport().installEventFilter(self)

    def _metrics(self):
        return self.table.table_view.fontMetrics()

    def _advance(self, text: str) -> int:
        return self._metrics().horizontalAdvance(text)

    def _calibrate(self, rows) -> None:
        """The cell padding Qt adds to the text width (Phy's style sheet), from one short column of ours."""
        view, columns = self.table.table_view, self.table.columns
        name = next((n for n in ("bc_nFailed", "bc_label", "bc_source") if n in columns), None)
        if name is None or not rows:
            return
        index = columns.index(name)
        widest = max(self._advance(_cell_text(row.get(name))) for row in rows)
        self.padding = max(0, view.sizeHintForColumn(index) - widest)

    def fit(self) -> None:
        table, view = self.table, self.table.table_view
        header = view.horizontalHeader()
        rows = table._model._rows
        if self.padding is None:
            self._calibrate(rows)
        self.grow([row for row in rows if row.get("id") not in self.measured], apply=False)
        self.measured.update(row.get("id") for row in rows)
        # Sections that resize to their contents make Qt measure every row of every such column whenever any
        # section or the layout changes: sizes are set here instead, at the moments Phy refits its tables.
        if header.sectionResizeMode(0) != QHeaderView.Interactive:
            header.setSectionResizeMode(QHeaderView.Interactive)
        for index, name in enumerate(table.columns):
            if name in self.ours:
                width = max(self.widths.get(name, 0), header.sectionSizeHint(index))
                if view.columnWidth(index) < width:
                    view.setColumnWidth(index, width)
            else:
                view.resizeColumnToContents(index)  # what Phy's refit does for its own columns
        if rows and self.row_height is None:
            vertical = view.verticalHeader()
            self.row_height = max(view.sizeHintForRow(0), 1)
            vertical.setMinimumSectionSize(1)
            vertical.setDefaultSectionSize(self.row_height)
            vertical.setSectionResizeMode(QHeaderView.Fixed)

    def grow(self, rows, apply: bool = True) -> None:
        """Widen our columns for the text of these rows (or row patches)."""
        padding = self.padding if self.padding is not None else 12
        changed = set()
        for name in self.ours:
            texts = {_cell_text(row[name]) for row in rows if name in row}
            if not texts:
                continue
            width = max(self._advance(text) for text in texts) + padding
            if name in self.capped:  # in average characters of the table's font, as styled by Phy
                width = min(width, self.capped[name] * self._metrics().averageCharWidth() + padding)
            if width > self.widths.get(name, 0):
                self.widths[name] = width
                changed.add(name)
        if apply and changed:
            view = self.table.table_view
            for name in changed & set(self.table.columns):
                index = self.table.columns.index(name)
                if view.columnWidth(index) < self.widths[name]:
                    view.setColumnWidth(index, self.widths[name])

    @guarded(default=False)
    def eventFilter(self, obj, event):
        """Tooltip: the full text of one of our cells that does not fit its column."""
        if event.type() != QEvent.ToolTip:
            return False
        view = self.table.table_view
        index = view.indexAt(event.pos())
        if not index.isValid() or self.table.columns[index.column()] not in self.ours:
            return False
        text = _cell_text(index.data())
        if text and self._advance(text) + (self.padding or 12) > view.columnWidth(index.column()):
            QToolTip.showText(event.globalPos(), text, view)
        else:
            QToolTip.hideText()
        return True


class Worker(QObject):
    """One background thread running jobs in order; each job's result is handed to its callback on the GUI
    thread (through a queued Qt signal), so the GUI thread only ever waits for the callbacks."""

    done = Signal(object, object)

    def __init__(self):
        super().__init__()
        self.jobs: queue.Queue = queue.Queue()
        self.busy = 0  # jobs submitted whose callback has not run yet
        self.done.connect(guarded(self._finish))
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, job, callback, later: bool = False) -> None:
        """Run ``job()`` on the worker, then ``callback(result)`` on the GUI thread; with ``later``, the job is
        queued only when the GUI thread is back in its event loop."""
        self.busy += 1
        if later:
            QTimer.singleShot(0, guarded(lambda: self.jobs.put((job, callback)), what="a background job"))
        else:
            self.jobs.put((job, callback))

    def idle(self) -> bool:
        return self.busy == 0

    def stop(self) -> None:
        """The thread ends after the jobs already queued."""
        self.stopping = True  # a job the closing interrupts (its process killed) fails quietly
        self.jobs.put(None)

    def _run(self) -> None:
        while (item := self.jobs.get()) is not None:
            job, callback = item
            try:
                result = job()
            except Exception as exc:  # a job's own errors are its business; never kill the thread
                if not getattr(self, "stopping", False):
                    logger.warning("phy-bcreason: background job failed: %s: %s", type(exc).__name__, exc)
                result = None
            try:
                self.done.emit(callback, result)
            except RuntimeError:  # Phy ended without closing its window: the Qt side of this worker is gone
                return

    def _finish(self, callback, result) -> None:
        self.busy -= 1
        guarded(callback, what=getattr(callback, "__name__", "a background job"))(result)


class Pictures:
    """The evidence panel's pictures (`evidence.py`), drawn in the live-metrics process on a thread of their own,
    so that neither Phy's GUI thread nor the live metrics of a merge wait for them. Only the latest request is
    drawn (a user stepping through clusters skips the ones passed); each picture is kept per cluster, what-if
    edits and width, and dropped when its cluster is merged or split away."""

    KEPT = 24

    def __init__(self, live: LiveReasons, spikes_of):
        self.live, self.spikes_of = live, spikes_of
        self.worker = Worker()
        self.cache: collections.OrderedDict = collections.OrderedDict()
        self.wanted = None

    def request(self, view, cluster_id: int, width_px: int) -> None:
        live = self.live
        key = (int(cluster_id), tuple(sorted((k, repr(v)) for k, v in live.overrides.items())), int(width_px))
        if key in self.cache:
            self.cache.move_to_end(key)
            view.show_picture(cluster_id, *self.cache[key])
            return
        self.wanted = key
        comparisons = live.explanation.comparisons(cluster_id)
        title = f"cluster {cluster_id}: {live.column_values(cluster_id)['bc_label'] or '(empty)'}"
        spike_ids = self.spikes_of(cluster_id)

        def job():
            if self.wanted != key:
                return None  # the user moved on before this one's turn
            try:
                process = _start_process(live)
                # measured first, drawn only if still wanted: a cluster passed while stepping costs no drawing
                process.evidence(cluster_id, spike_ids, comparisons, title, width_px, draw=False)
                if self.wanted != key:
                    return None
                result = process.evidence(cluster_id, spike_ids, comparisons, title, width_px)
            except LiveMetricsError as exc:
                return (None, None, first_line(exc)), None
            except Exception:  # never "drawing…" for ever
                logger.debug("phy-bcreason: the evidence picture failed", exc_info=True)
                return (None, None, "it could not be drawn (details in phy.log at debug level)"), None
            return result, _decoded(result[1])

        def show(answer):
            if answer is None:
                return
            result, image = answer
            if len(result) == 2:
                self.cache[key] = result
                while len(self.cache) > self.KEPT:
                    self.cache.popitem(last=False)
            view.show_picture(cluster_id, *result, image=image)

        # queued once Phy's selection call has returned: the child then draws while Phy's GUI thread is idle, not
        # while Phy fills its views for the same selection (on 2 cores that made Phy's call ~25 ms slower)
        self.worker.submit(job, show, later=True)

    def forget(self, cluster_ids) -> None:
        gone = {int(c) for c in cluster_ids}
        for key in [k for k in self.cache if k[0] in gone]:
            del self.cache[key]

    def stop(self) -> None:
        self.worker.stop()


class BombcellReasonPlugin(IPlugin):
    def attach_to_controller(self, controller):
        keep_pyarrow_out()  # Phy imports no pyarrow, about 60 MB once a file is read: parquet files in a child
        live = LiveReasons.load(controller.dir_path)
        self.live = live
        controller.phy_bcreason = self  # for scripts and tests: the plugin's state and its worker
        # Static Bombcell columns read from TSV files would duplicate ours and go stale after merges.
        for name in REPLACED_METADATA:
            controller.model.metadata.pop(name, None)
        for name in COLUMNS:
            column = functools.partial(lambda name, cluster_id: live.column_values(cluster_id)[name], name)
            controller.cluster_metrics[name] = guarded(column, what=f"the {name} column")
        def user_group(cluster_id):
            """The cluster's Phy group (good/mua/noise/...), as Phy has it now."""
            supervisor = getattr(controller, "supervisor", None)
            if supervisor is not None:
                return supervisor.cluster_meta.get("group", cluster_id)
            return controller.model.metadata.get("group", {}).get(cluster_id)  # before Phy's supervisor exists

        controller.cluster_metrics[AGREES] = self._agrees = guarded(
            lambda cluster_id: live.agrees(cluster_id, user_group(cluster_id)), what=f"the {AGREES} column")
        # Bombcell's per-metric columns (cluster_<metric>.tsv): served by us, so that a cluster made in Phy
        # shows its live values (blank until computed, or where not recomputed) instead of a parent's.
        self.metric_columns = metric_columns = MetricColumns(live, controller.model.metadata)
        for name in metric_columns.names:
            controller.cluster_metrics[name] = guarded(functools.partial(metric_columns.value, name),
                                                       what=f"the {name} column")
        ours = (*COLUMNS, AGREES, *metric_columns.names)

        @connect(event="cluster_view_init")
        @guarded
        def on_cluster_view_init(view):
            _install_sizing(view, ours)

        @connect(event="similarity_view_init")
        @guarded
        def on_similarity_view_init(view):
            _install_sizing(view, ours)


        def create_view():
            view = BombcellWhyView(live)
            view.on_overrides = guarded(lambda overrides: self._set_overrides(overrides), what="the what-if edit")
            view.on_list = guarded(lambda cluster_ids: self._list(cluster_ids), what="List")
            view.concordance.get_groups = lambda: {c: g for c in controller.supervisor.clustering.cluster_ids.tolist()
                                                   if (g := user_group(c)) in PHY_GROUPS}
            supervisor = getattr(controller, "supervisor", None)
            pictures = getattr(self, "pictures", None)
            if pictures is not None and live.results is not None and live.results.classifier == PYTHON:
                view.evidence.request = guarded(
                    lambda cluster_id, width: pictures.request(view.evidence, cluster_id, width), what="the picture")
            if supervisor is not None:
                view.show_clusters(supervisor.selected_clusters)
            return view

        controller.view_creator[VIEW_NAME] = guarded(create_view, what="the why? dock")

        @connect(sender=controller)
        @guarded
        def on_gui_ready(sender, gui):
            supervisor = controller.supervisor
            hide_status_bar = show_failures_in(lambda sentence: setattr(gui, "status_message", sentence))
            for note in live.notes():
                logger.info("phy-bcreason: note: %s", note)
            gui.status_message = live.status_line()
            if not gui.list_views(VIEW_NAME) and not gui.state.get("phy_bcreason_dock_shown"):
                gui.create_and_add_view(VIEW_NAME)  # first time only; later the user's layout decides
            gui.state["phy_bcreason_dock_shown"] = True

            def refresh(cluster_ids):
                """New values for these clusters: patch both cluster tables, redraw every dock."""
                alive = set(supervisor.clustering.cluster_ids.tolist())
                rows = [{"id": c, **live.column_values(c), AGREES: self._agrees(c), **metric_columns.row(c)}
                        for c in cluster_ids if c in alive]
                update_rows(supervisor.cluster_view, rows)
                update_rows(supervisor.similarity_view, rows)
                for view in gui.list_views(VIEW_NAME):
                    view.refresh()

            @connect(sender=supervisor)
            @guarded
            def on_select(sender, cluster_ids, **kwargs):
                for view in gui.list_views(VIEW_NAME):
                    view.show_clusters(cluster_ids)

            worker = Worker()
            restore_ctrl_c = _close_on_ctrl_c(gui)
            self.worker = worker  # tests wait on worker.idle()
            self.pictures = pictures = Pictures(live, lambda c: supervisor.clustering.spikes_per_cluster[c])
            for view in gui.list_views(VIEW_NAME):  # docks made before (Phy's saved layout): pictures now
                if live.results is not None and live.results.classifier == PYTHON:
                    view.evidence.request = guarded(
                        lambda cluster_id, width, view=view: pictures.request(view.evidence, cluster_id, width),
                        what="the picture")
                    view.evidence.show_cluster(view.evidence.cluster_id, again=True)
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

                # at once: the child process computes while Phy finishes its own work on the merge
                worker.submit(lambda: live.compute(spikes, overrides), show_live)
                return to_compute

            @connect(sender=supervisor)
            @guarded
            def on_cluster(sender, up):
                pictures.forget(up.deleted)
                if up.added:
                    live.record_clustering(up.descendants)
                    compute_live(up.added)
                    refresh(up.added)
                if up.description == "metadata_group":  # the user labelled clusters: agreement follows
                    refresh(up.metadata_changed)

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
                if live.results.classifier == PYTHON:
                    # the process computing live metrics takes seconds to start: now, not at the first merge
                    worker.submit(lambda: _start_process(live).wait_ready(), lambda ready: None)
                worker.submit(lambda: _judge(live), lambda judged: judged is not None and not closed and
                              _apply_judgement(live, judged, gui, refresh))
            refresh(compute_live(supervisor.clustering.cluster_ids, on_open=True))  # curated in an earlier session

            @connect(sender=gui)
            @guarded
            def on_close(sender):
                closed.append(True)
                worker.stop()
                pictures.stop()
                live.close()
                restore_ctrl_c()
                hide_status_bar()
                unconnect(on_select, on_cluster, on_close, on_cluster_view_init, on_similarity_view_init)

        self._on_gui_ready = on_gui_ready


def _decoded(png: bytes | None):
    """On the worker: the PNG decoded, in the format Qt paints from, so that the GUI thread only wraps it in a
    QPixmap (about 1 ms, where decoding a dock-wide picture takes 20 to 40 ms). QImage may be used off the GUI
    thread; QPixmap may not."""
    if png is None:
        return None
    image = QImage.fromData(png, "PNG")
    return None if image.isNull() else image.convertToFormat(QImage.Format_ARGB32_Premultiplied)


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
        QTimer.singleShot(0, guarded(gui.close, what="closing on Ctrl-C"))

    signal.signal(signal.SIGINT, on_ctrl_c)
    wake = QTimer(gui)  # Python only runs signal handlers when the event loop gives it the hand
    wake.timeout.connect(guarded(lambda: None, what="the Ctrl-C timer"))
    wake.start(250)

    def restore():
        wake.stop()
        if signal.getsignal(signal.SIGINT) is on_ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore


def _install_sizing(view, ours) -> None:
    if getattr(view, "_bcreason_sizing", None) is not None or not hasattr(view, "table_view"):
        return
    try:
        TableSizing(view, ours, {"bc_classificationReason": REASON_CHARS})
    except Exception as exc:  # Phy's table built otherwise: it sizes itself as before
        logger.warning("phy-bcreason: column sizing not installed: %s: %s", type(exc).__name__, exc)


class MetricColumns:
    """Bombcell's per-metric columns, which Phy would otherwise read from the cluster_<metric>.tsv files and
    copy, on a merge, from the largest parent: the run's value (the file's) for clusters of Bombcell's run, the
    value recomputed live for clusters made in Phy, blank (None) while computing, where the metric is not
    recomputed live, and for clusters without a row. The files are never written."""

    def __init__(self, live: LiveReasons, metadata: dict):
        self.live = live
        self.metrics: dict[str, str] = {}     # column name -> Bombcell's metric name
        self.run: dict[str, dict] = {}        # column name -> {cluster id: the run's value}
        self._live_rows: dict[int, dict] = {}
        self._live_table = None
        if live.results is None:  # nothing to contradict: Phy shows the files as they are
            return
        known = set(live.results.metrics.columns) - set(NOT_METRICS)
        for name in list(metadata):
            metric = name if name in known else MATLAB_TSV_NAMES.get(name)
            if metric in known and name not in REPLACED_METADATA:
                self.metrics[name] = metric
                self.run[name] = metadata.pop(name)

    @property
    def names(self) -> list[str]:
        return list(self.metrics)

    def value(self, name: str, cluster_id: int):
        cluster_id = int(cluster_id)
        live = self.live
        if cluster_id in live.live_spikes:
            value = self._live_row(cluster_id).get(self.metrics[name])
            return None if value is None or value != value else value  # NaN: not recomputed
        if cluster_id in live.pending or cluster_id in live.failed or not live.has_row(cluster_id):
            return None
        return self.run[name].get(cluster_id)

    def row(self, cluster_id: int) -> dict:
        return {name: self.value(name, cluster_id) for name in self.metrics}

    def _live_row(self, cluster_id: int) -> dict:
        table = self.live.live_metrics
        if table is not self._live_table:
            self._live_table = table
            self._live_rows = {int(row["phy_clusterID"]): row for row in table.to_dict("records")}
        return self._live_rows.get(cluster_id, {})


_STARTING = threading.Lock()  # the live-metrics worker and the pictures' thread may both start the child


def _start_process(live: LiveReasons) -> MetricsProcess:
    """Off the GUI thread: the child process computing live metrics, running Bombcell's classifier and drawing
    the evidence panel, sent the results Phy's process already read, at a lower priority than Phy; one per
    session."""
    with _STARTING:
        if live.process is None:
            live.process = MetricsProcess(live.ks_dir, live.results.folder, results=live.results, nice=CHILD_NICE)
    return live.process


def _judge(live: LiveReasons):
    """Off the GUI thread: the labels of the classifier that labelled the run, on the same results, where it
    runs here (not MATLAB's) and every threshold is known. Python Bombcell's runs in the child process, so that
    Bombcell's imports (about 160 MB) stay out of Phy's; SpikeInterface's runs here."""
    if live.saved.missing_thresholds:
        return None
    try:
        if live.results.classifier == PYTHON:
            return _start_process(live).labels(live.results.metrics)
        return classifier_labels(live.results, live.results.params)
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
