"""Work off Phy's GUI thread: the plugin's worker thread (live metrics, Bombcell's classifier) and the evidence
panel's pictures, each result handed back to the GUI thread through a queued Qt signal."""

from __future__ import annotations

import collections
import logging
import queue
import threading

from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtGui import QImage

from ..core.errors import first_line
from ..live.recording import LiveMetricsError
from .guard import guarded
from .session import LiveReasons

logger = logging.getLogger("phy")


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
        try:
            spike_ids = self.spikes_of(cluster_id)
            comparisons = live.explanation.comparisons(cluster_id)
        except KeyError:  # merged, split or undone away since the panel asked (its resize timer, a late selection)
            return
        title = f"cluster {cluster_id}: {live.column_values(cluster_id)['bc_label'] or '(empty)'}"

        def job():
            if self.wanted != key:
                return None  # the user moved on before this one's turn
            try:
                process = live.start_process()
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


def _decoded(png: bytes | None):
    """On the worker: the PNG decoded, in the format Qt paints from, so that the GUI thread only wraps it in a
    QPixmap (about 1 ms, where decoding a dock-wide picture takes 20 to 40 ms). QImage may be used off the GUI
    thread; QPixmap may not."""
    if png is None:
        return None
    image = QImage.fromData(png, "PNG")
    return None if image.isNull() else image.convertToFormat(QImage.Format_ARGB32_Premultiplied)
