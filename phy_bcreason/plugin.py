"""Show why Bombcell labelled each cluster: four cluster-view columns and a "why?" dock, kept true through
merges and splits. Glue only: the decisions live in `live.py`, `engine.py` and `why_view.py`."""

from __future__ import annotations

import functools
import logging
import threading

from phy import IPlugin, connect, unconnect
from qtpy.QtCore import QObject, Signal

from .api import bombcell_labels
from .live import COLUMNS, REPLACED_METADATA, LiveReasons
from .why_view import BombcellWhyView

logger = logging.getLogger("phy")
VIEW_NAME = BombcellWhyView.__name__


def _never_raise(func):
    """Phy's event loop must never see our exceptions: log them instead."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            name = getattr(func, "__name__", repr(func))
            logger.warning("phy-bcreason: %s failed: %s: %s", name, type(exc).__name__, exc)

    return wrapper


def update_rows(table, rows: list[dict]) -> None:
    """Patch rows of a Phy table (cluster or similarity view) in place.

    Phy's public `Table.change()` refits the height of every row and the width of every column, seconds on
    thousands of clusters, for each call. Our values never change a row's height: telling Qt which cells
    changed lets its sort/filter proxy move just those rows. Falls back to `change()` if Phy's table is
    built otherwise.
    """
    model = getattr(table, "_model", None)
    rows_by_id = getattr(model, "_rows_by_id", None)
    if not rows or rows_by_id is None or not hasattr(model, "dataChanged"):
        return table.change(rows)
    positions = {id(row): i for i, row in enumerate(model._rows)} if len(rows) > 1 else None
    columns = [table.columns.index(name) for name in rows[0] if name in table.columns and name != "id"]
    if not columns:
        return
    for patch in rows:
        row = rows_by_id.get(patch["id"])
        if row is None:
            continue
        row.update(patch)
        i = positions[id(row)] if positions is not None else model._rows.index(row)
        model.dataChanged.emit(model.index(i, min(columns)), model.index(i, max(columns)))


class _Judgement(QObject):
    """Carries Bombcell's own labels from the worker thread back to the GUI thread."""

    done = Signal(object)


class BombcellReasonPlugin(IPlugin):
    def attach_to_controller(self, controller):
        live = LiveReasons.load(controller.dir_path)
        self.live = live
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

            @connect(sender=supervisor)
            @_never_raise
            def on_cluster(sender, up):
                if up.added:
                    refresh(live.record_clustering(up.descendants))

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

            judgement = _Judgement()
            judgement.done.connect(_never_raise(lambda judged: _apply_judgement(live, judged, gui, refresh)))
            self._judgement = judgement  # keep the bridge alive
            if live.results is not None:
                threading.Thread(target=_judge, args=(live, judgement), daemon=True).start()

            @connect(sender=gui)
            def on_close(sender):
                unconnect(on_select, on_cluster, on_close)

        self._on_gui_ready = on_gui_ready


def _judge(live: LiveReasons, judgement: _Judgement) -> None:
    """Off the GUI thread (importing Bombcell takes seconds): Bombcell's own labels for the same results."""
    try:
        judged = bombcell_labels(live.results.metrics, live.results.params, quiet=False)
    except Exception as exc:
        logger.warning("phy-bcreason: Bombcell's own classifier could not run (%s); labels are the rule "
                       "table's", exc)
        return
    judgement.done.emit(judged)


def _apply_judgement(live: LiveReasons, judged, gui, refresh) -> None:
    changed = live.apply_judgement(judged)
    if changed:
        message = (f"phy-bcreason: Bombcell's classifier disagrees with the rule table on {len(changed)} "
                   f"cluster(s) ({', '.join(map(str, changed[:10]))}); Bombcell's labels are shown")
        logger.warning(message)
        gui.status_message = message
        refresh(changed)
