"""Show why Bombcell labelled each cluster: cluster-view columns and a "why?" dock, kept true through merges
and splits (new clusters get Bombcell's metrics recomputed live, in a background process). Glue only: what is
shown is decided in `gui/` (the session, its columns and the dock), `live/` and `core/`."""

from __future__ import annotations

import functools
import logging

from phy import IPlugin, connect, unconnect

from .core.rules import PYTHON
from .gui.columns import AGREES, COLUMNS, REPLACED_METADATA, MetricColumns
from .gui.ctrl_c import close_on_ctrl_c
from .gui.dock import BombcellWhyView
from .gui.guard import guarded, show_failures_in
from .gui.judgement import run_classifier
from .gui.layout import FIRST_LOOK_FLAG, Layout, column_order
from .gui.second_judge import UR_COLUMNS, SecondJudge, configured_model
from .gui.session import LiveReasons
from .gui.tables import install_sizing, update_rows
from .gui.worker import Pictures, Worker
from .io.parquet import keep_pyarrow_out
from .tuning.concordance import PHY_GROUPS

logger = logging.getLogger("phy")
VIEW_NAME = BombcellWhyView.__name__


class BombcellReasonPlugin(IPlugin):
    """Adds the bc_ columns and Bombcell's per-metric columns to Phy's cluster and similarity views, and the
    "why?" dock; recomputes merged and split clusters off Phy's GUI thread."""

    def attach_to_controller(self, controller):
        keep_pyarrow_out()  # Phy imports no pyarrow, about 60 MB once a file is read: parquet files in a child
        self.controller, self.gui, self.worker, self.pictures, self.layout = controller, None, None, None, None
        self.live = live = LiveReasons.load(controller.dir_path)
        self.closed, self.listing, self._connected = False, False, []
        controller.phy_bcreason = self  # for scripts and tests: the plugin's state and its worker
        # Static Bombcell columns read from TSV files would duplicate ours and go stale after merges.
        for name in REPLACED_METADATA:
            controller.model.metadata.pop(name, None)
        for name in COLUMNS:
            controller.cluster_metrics[name] = guarded(functools.partial(self.column, name), what=f"the {name} column")
        controller.cluster_metrics[AGREES] = self._agrees = guarded(self.agrees, what=f"the {AGREES} column")
        # Bombcell's per-metric columns (cluster_<metric>.tsv): served by us, so that a cluster made in Phy
        # shows its live values (blank until computed, or where not recomputed) instead of a parent's.
        self.metric_columns = MetricColumns(live, controller.model.metadata)
        for name in self.metric_columns.names:
            controller.cluster_metrics[name] = guarded(functools.partial(self.metric_columns.value, name),
                                                       what=f"the {name} column")
        # UnitRefine's model, when this sorting has its predictions or Phy's config names a model folder
        self.judge = SecondJudge(controller.dir_path, configured_model(getattr(controller, "config_dir", None)))
        self.model_columns = UR_COLUMNS if self.judge.active else ()
        for name in self.model_columns:
            controller.cluster_metrics[name] = guarded(functools.partial(self.model_column, name),
                                                       what=f"the {name} column")
        self.ours = (*COLUMNS, AGREES, *self.model_columns, *self.metric_columns.names)
        controller.view_creator[VIEW_NAME] = guarded(self.create_view, what="the why? dock")
        self._connected = [connect(guarded(self.on_controller_ready), event="controller_ready", sender=controller),
                           connect(guarded(self.on_cluster_view_init), event="cluster_view_init"),
                           connect(guarded(self.on_similarity_view_init), event="similarity_view_init"),
                           connect(guarded(self.on_gui_ready), event="gui_ready", sender=controller)]

    # -- Phy's columns ------------------------------------------------------------------------------------------

    def column(self, name: str, cluster_id: int):
        return self.live.column_values(cluster_id)[name]

    def model_column(self, name: str, cluster_id: int):
        return self.model_row(cluster_id)[name]

    def user_group(self, cluster_id: int):
        """The cluster's Phy group (good/mua/noise/...), as Phy has it now."""
        supervisor = getattr(self.controller, "supervisor", None)
        if supervisor is not None:
            return supervisor.cluster_meta.get("group", cluster_id)
        return self.controller.model.metadata.get("group", {}).get(cluster_id)  # before Phy's supervisor exists

    def agrees(self, cluster_id: int) -> float | None:
        return self.live.agrees(cluster_id, self.user_group(cluster_id))

    def user_groups(self) -> dict[int, str]:
        return {c: g for c in self.controller.supervisor.clustering.cluster_ids.tolist()
                if (g := self.user_group(c)) in PHY_GROUPS}

    def on_controller_ready(self, sender):
        """Bombcell's label (and UnitRefine's beside it) and reason first, then our other columns, Phy's,
        Bombcell's per-metric columns last (the cluster view is built from this list when the GUI is created)."""
        supervisor = self.controller.supervisor
        # the two judges' labels side by side: after the reason, the wide column, they were out of view
        ours = [COLUMNS[0], *self.model_columns[:1], COLUMNS[1], *self.model_columns[1:], *COLUMNS[2:], AGREES]
        supervisor.columns = column_order(supervisor.columns, ours, self.metric_columns.names)

    def on_cluster_view_init(self, view):
        install_sizing(view, self.ours)

    def on_similarity_view_init(self, view):
        install_sizing(view, self.ours)

    # -- the dock --------------------------------------------------------------------------------------------

    def create_view(self):
        view = BombcellWhyView(self.live, self.judge if self.judge.active else None)
        view.on_overrides = guarded(self._set_overrides, what="the what-if edit")
        view.on_list = guarded(self._list, what="List")
        view.concordance.get_groups = self.user_groups
        if view.three_way is not None:
            view.three_way.existing = self.existing
        self._connect_pictures(view)
        supervisor = getattr(self.controller, "supervisor", None)
        if supervisor is not None:
            view.show_clusters(supervisor.selected_clusters)
        return view

    def _connect_pictures(self, view) -> None:
        """The evidence panel's pictures, once the pictures' thread exists (Python Bombcell's results only)."""
        results = self.live.results
        if self.pictures is None or results is None or results.classifier != PYTHON:
            return
        view.evidence.request = guarded(functools.partial(self.pictures.request, view.evidence), what="the picture")

    def docks(self) -> list:
        return self.gui.list_views(VIEW_NAME) if self.gui is not None else []

    # -- the session -----------------------------------------------------------------------------------------

    def on_gui_ready(self, sender, gui):
        live, supervisor = self.live, self.controller.supervisor
        self.gui, self.supervisor = gui, supervisor
        self._hide_failures = show_failures_in(lambda sentence: setattr(gui, "status_message", sentence))
        for note in live.notes():
            logger.info("phy-bcreason: note: %s", note)
        self.show_status()
        first_time = not gui.state.get(FIRST_LOOK_FLAG)
        if not gui.list_views(VIEW_NAME) and first_time:
            gui.create_and_add_view(VIEW_NAME)  # first time only; later the user's layout decides
        gui.state[FIRST_LOOK_FLAG] = True
        self.layout = Layout(gui, supervisor, first_time)  # the first look once, the user's layout afterwards
        self.worker = Worker()  # tests wait on worker.idle()
        self.model_worker = Worker()  # UnitRefine's model, in a child process of its own, beside the live metrics
        self._restore_ctrl_c = close_on_ctrl_c(gui)
        self.pictures = Pictures(live, lambda c: supervisor.clustering.spikes_per_cluster[c])
        for view in self.docks():  # docks made before (Phy's saved layout): pictures now
            self._connect_pictures(view)
            if view.evidence.request is not None:
                view.evidence.show_cluster(view.evidence.cluster_id, again=True)
        self._connected += [connect(guarded(self.on_select), event="select", sender=supervisor),
                            connect(guarded(self.on_cluster), event="cluster", sender=supervisor),
                            connect(guarded(self.on_show), event="show", sender=gui),
                            connect(guarded(self.on_close), event="close", sender=gui)]
        if live.results is not None:
            if live.results.classifier == PYTHON:
                # the process computing live metrics takes seconds to start: now, not at the first merge
                self.worker.submit(lambda: live.start_process().wait_ready(), lambda ready: None)
            self.worker.submit(lambda: run_classifier(live), self._apply_judgement)
        if self.judge.computing:
            self.model_worker.submit(self.judge.run_model, self._show_model)
        self.refresh(self.compute_live(supervisor.clustering.cluster_ids, on_open=True))  # curated earlier

    def _show_model(self, answer) -> None:
        """UnitRefine's model has answered (its opinion, or why none): every row and dock follows."""
        if self.closed:
            return
        self.judge.take(answer)
        if self.judge.error:
            self.gui.status_message = f"phy-bcreason: UnitRefine: {self.judge.error}"
        self.refresh(self.existing())

    def refresh(self, cluster_ids) -> None:
        """New values for these clusters: patch Phy's cluster tables, redraw every dock."""
        supervisor, live = self.supervisor, self.live
        alive = set(supervisor.clustering.cluster_ids.tolist())
        rows = [{"id": c, **live.column_values(c), AGREES: self._agrees(c), **self.model_row(c),
                 **self.metric_columns.row(c)} for c in cluster_ids if c in alive]
        update_rows(supervisor.cluster_view, rows)
        update_rows(supervisor.similarity_view, rows)
        merge_view = getattr(supervisor, "merge_view", None)  # Phy after 2.1, once merge mode is entered
        if merge_view is not None and rows:
            merge_view.change(rows)  # a few rows, the ones staged: Phy's own update is quick
        for view in self.docks():
            view.refresh()

    def model_row(self, cluster_id: int) -> dict:
        if not self.model_columns:
            return {}
        return self.judge.column_values(cluster_id, self.live.column_values(cluster_id)["bc_label"])

    def on_select(self, sender, cluster_ids, **kwargs):
        for view in self.docks():
            view.show_clusters(cluster_ids)

    def on_cluster(self, sender, up):
        self.pictures.forget(up.deleted)
        if up.added:
            self.live.record_clustering(up.descendants)
            self.compute_live(up.added)
            self.refresh(up.added)
        if up.description == "metadata_group":  # the user labelled clusters: agreement follows
            self.refresh(up.metadata_changed)
        elif up.added or up.deleted:  # a merge, a split, their undo or redo: the counts follow
            self.show_status(after_phy=True)

    def existing(self) -> list[int]:
        """The clusters that exist in Phy now."""
        return self.supervisor.clustering.cluster_ids.tolist()

    def show_status(self, after_phy: bool = False) -> None:
        """The session's line in the status bar, counting the clusters that exist now; ``after_phy``: behind the
        sentence Phy has just written about what it did ("Merge clusters 9, 10 to 27.", "Undo cluster assign.")."""
        line = self.live.status_line(self.existing())
        said = self.gui.status_message
        if after_phy and said and not said.startswith("phy-bcreason"):
            line = f"{said} {line}"
        self.gui.status_message = line

    def compute_live(self, cluster_ids, on_open: bool = False) -> list[int]:
        """Clusters Bombcell never saw: show them as computing, recompute their metrics off the GUI thread (at
        once: the child process computes while Phy finishes its own work on the merge), then show them."""
        live = self.live
        to_compute = live.to_compute(cluster_ids)
        if to_compute:
            spikes = {c: self.supervisor.clustering.spikes_per_cluster[c] for c in to_compute}
            live.start_computing(spikes)
            overrides = dict(live.overrides)
            self.worker.submit(lambda: live.compute(spikes, overrides),
                               functools.partial(self._show_live, on_open=on_open))
        return to_compute

    def _show_live(self, update, on_open: bool = False) -> None:
        if self.closed or update is None:
            return
        self.refresh(self.live.add_live(update))
        if on_open:
            self.show_status()
        else:
            self.gui.status_message = self.live.live_status(update.cluster_ids, self.existing())

    def _apply_judgement(self, judged) -> None:
        """Bombcell's own labels, computed off the GUI thread, judge the rule table's."""
        if judged is None or self.closed:
            return
        changed = self.live.apply_judgement(judged)
        if changed:
            message = (f"phy-bcreason: Bombcell's classifier disagrees with the rule table on {len(changed)} "
                       f"cluster(s) ({', '.join(map(str, changed[:10]))}); Bombcell's labels are shown")
            logger.warning(message)
            self.gui.status_message = message
            self.refresh(changed)

    def _set_overrides(self, overrides: dict) -> None:
        """A what-if edit from a dock: re-explain every cluster, update columns, docks, status bar."""
        self.refresh(self.live.set_overrides(overrides))
        self.show_status()
        if not overrides and self.listing:  # reset: drop the filter that List set
            self.supervisor.cluster_view.filter("")
            self.listing = False

    def _list(self, cluster_ids) -> None:
        self.supervisor.cluster_view.filter(" or ".join(f"id == {c}" for c in cluster_ids) or "id < 0")
        self.listing = True

    def on_show(self, sender):
        self.layout.on_show()  # after Phy restored its saved layout (Phy's own handler, connected first)

    def on_close(self, sender):
        self.layout.save()  # into gui.state, which Phy writes once every close handler has run
        self.closed = True
        self.worker.stop()
        self.model_worker.stop()
        self.judge.close()
        self.pictures.stop()
        self.live.close()
        self._restore_ctrl_c()
        self._hide_failures()
        unconnect(*self._connected)
