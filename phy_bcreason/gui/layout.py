"""The first look: Phy's window, its docks, the cluster view's columns and the why? dock as the plugin lays them
out the first time it opens in a Phy configuration, then the user's layout, kept in Phy's own GUI state.

Phy's mechanisms, used as Phy uses them: the column order is `Supervisor.columns` (set before the cluster view
is built: Phy has no setting for it); window and dock sizes are Qt's (`resize`, `tabifyDockWidget`,
`resizeDocks`), which Phy saves at close (`geometry_state`: `saveGeometry`/`saveState`) and restores when the
window is shown; the why? dock's splitter and column widths and the widths of the plugin's columns go into
`gui.state` under the view's name (`update_view_state`/`get_view_state`), as Phy's views keep theirs.

Phy copies a default `geometry_state` into a new configuration, so "the first time" is the plugin's flag in
`gui.state` (`FIRST_LOOK_FLAG`), set once the first look is applied. The proportions are plain functions below.
"""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import QRect, Qt, QTimer

from .dock import BombcellWhyView
from .guard import guarded

FIRST_LOOK_FLAG = "phy_bcreason_dock_shown"  # in gui.state: the plugin has opened in this configuration before
VIEW_NAME = BombcellWhyView.__name__
CLUSTER_COLUMNS_KEY = "bc_column_widths"  # in the cluster view's state: widths of the plugin's columns, by name
DOCK_SPLITTER_KEY = "splitter"            # in the dock's state: rule table and picture heights
DOCK_COLUMNS_KEY = "rule_column_widths"   # in the dock's state: rule table columns the user sized, by header
NARROW = 1500      # a window narrower than this (a laptop's) gets the compact arrangement
SMALL_SCREEN = (1600, 900)  # below this the first window takes the whole available screen, not 90% of it
MAX_WINDOW = (1920, 1080)
REASON_MIN_CHARS = 20  # the reason column is never fitted narrower than this many average characters
SEPARATOR = 6          # Qt's dock separators, in pixels
TREE_SHARE = 0.45      # of the dock's splitter, at the first look: the rest is the picture's


def window_size(available_width: int, available_height: int) -> tuple[int, int]:
    """The first window's size on a screen with this available geometry: 90% of it, at most 1920x1080; all of
    it on a small screen (a 1366x768 laptop), where Phy's views, the cluster view and the dock need every pixel."""
    def side(available: int, small: int, largest: int) -> int:
        return min(largest, available if available < small else int(available * 0.9))

    return side(available_width, SMALL_SCREEN[0], MAX_WINDOW[0]), side(available_height, SMALL_SCREEN[1],
                                                                      MAX_WINDOW[1])


def column_order(columns: list[str], ours: list[str], metrics: list[str]) -> list[str]:
    """The cluster view's columns: id, the plugin's (in ``ours`` order: label and reason first), Phy's own and
    any other label fields (in Phy's order), then Bombcell's per-metric columns (``metrics``)."""
    present = set(columns)
    first = [name for name in ours if name in present]
    last = [name for name in columns if name in set(metrics) and name not in first]
    middle = [name for name in columns if name != "id" and name not in set(first) | set(last)]
    return (["id"] if "id" in present else []) + first + middle + last


@dataclass(frozen=True)
class DockPlan:
    """Where the space of a window goes at the first look, in pixels."""

    cluster_width: int        # the column of the cluster and similarity views
    dock_width: int           # the why? dock (in the probe view's place: the probe view is a tab behind it)
    left_heights: tuple[int, int, int]  # cluster scatter, cluster and similarity views


def dock_plan(width: int, height: int) -> DockPlan:
    """The first look's sizes for a window of ``width`` x ``height``: the cluster views get 27% of the width (the
    label and ~28 characters of the reason at 1366 px, ~42 at 1728 px), the why? dock 42% or, on a wide window,
    39%, Phy's plot views the rest (Qt keeps them at least as wide as their title bars); the cluster view gets
    more than half the height of the left column."""
    docks_height = max(0, height - 90)  # Phy's menu bar, toolbar and status bar
    scatter, cluster = round(docks_height * 0.11), round(docks_height * 0.55)
    return DockPlan(cluster_width=round(width * 0.27), dock_width=round(width * (0.42 if width < NARROW else 0.39)),
                    left_heights=(scatter, cluster, docks_height - scatter - cluster))


def splitter_sizes(total: int) -> list[int]:
    """The dock's rule table and picture at the first look: 45% and 55% of their height."""
    tree = round(total * TREE_SHARE)
    return [tree, total - tree]


def available_geometry(widget) -> QRect:
    """The available geometry of the screen the widget is on (tests replace this to try other screens)."""
    screen = widget.screen() if hasattr(widget, "screen") else None
    if screen is None:
        from qtpy.QtWidgets import QApplication

        screen = QApplication.primaryScreen()
    return screen.availableGeometry()


def maximize(window) -> None:
    """Maximised, so that a window manager fits its frame in (tests replace this with their screen's size)."""
    window.setWindowState(window.windowState() | Qt.WindowMaximized)


def fit_window(window, available: QRect) -> None:
    """The window at `window_size` of its screen, centred; maximised when that is all of the screen."""
    width, height = window_size(available.width(), available.height())
    window.resize(width, height)
    window.move(available.x() + (available.width() - width) // 2, available.y() + (available.height() - height) // 2)
    if (width, height) == (available.width(), available.height()):
        maximize(window)


class Layout:
    """The plugin's part of Phy's layout for one window: the first look once, the user's layout afterwards.

    ``first_time``: the plugin never opened in this Phy configuration (its flag is not in ``gui.state``). Call
    `on_show` when Phy shows the window (after Phy restored its saved layout) and `save` when it closes (before
    Phy writes ``gui.state``). ``done`` is set once the sizes are applied (they need the window laid out: two
    turns of Qt's event loop after it is shown)."""

    def __init__(self, gui, supervisor, first_time: bool, reason: str = "bc_classificationReason"):
        self.gui, self.supervisor, self.first_time, self.reason = gui, supervisor, first_time, reason
        self.done = False
        self.closed = False

    def docks(self) -> dict:
        return {view.name: view.dock for view in self.gui.views if getattr(view, "dock", None) is not None}

    def why_views(self) -> list:
        return self.gui.list_views(VIEW_NAME)

    # -- when shown ------------------------------------------------------------------------------------------

    def on_show(self) -> None:
        """The first look (after Phy restored the layout it copies into a new configuration) or the user's
        layout, then, once the window is laid out (two turns of Qt's event loop), what goes inside the docks."""
        if self.first_time:
            available = available_geometry(self.gui)
            self._arrange(narrow=window_size(available.width(), available.height())[0] < NARROW)
            fit_window(self.gui, available)  # once the docks are in their tabs: the window's minimum is smaller
            self._size_docks()
        else:
            self._restore_again()
        QTimer.singleShot(0, guarded(lambda: QTimer.singleShot(0, guarded(self._inside, what="the first look")),
                                     what="the first look"))

    def _restore_again(self) -> None:
        """Phy restores the window's geometry, then its docks: until the docks are in their tabs again, the
        window's minimum is that of every dock side by side, often wider than the saved window, which is then
        lost (2,357 px instead of 1,500 in tests/test_first_look.py). Phy's saved geometry and docks once more,
        in that order, now that tabs are tabs."""
        saved = self.gui.state.get("geometry_state") or {}
        if saved.get("geometry") and saved.get("state"):
            self.gui.restoreGeometry(saved["geometry"])
            self.gui.restoreState(saved["state"])

    def _arrange(self, narrow: bool) -> None:
        """The why? dock in the probe view's place (the probe view a tab behind it): Phy's plot views side by
        side at their narrowest take about 950 px already; on a narrow window the firing-rate view a tab behind
        the ISI view."""
        docks = self.docks()
        why = docks.get(VIEW_NAME)
        if why is not None and "ProbeView" in docks:
            self.gui.tabifyDockWidget(docks["ProbeView"], why)
        if narrow and "ISIView" in docks and "FiringRateView" in docks:
            self.gui.tabifyDockWidget(docks["ISIView"], docks["FiringRateView"])
            docks["ISIView"].raise_()
        if why is not None:
            why.raise_()

    def _size_docks(self) -> None:
        """`dock_plan`'s widths for the row of columns (cluster views, Phy's waveform and correlogram columns,
        the why? dock: Qt moves each separator in turn, so all of them are given) and the left column's heights.
        Qt keeps every dock at least at its minimum size and shares out what that costs."""
        gui, docks = self.gui, self.docks()
        plan = dock_plan(gui.width(), gui.height())
        rest = gui.width() - plan.cluster_width - plan.dock_width - 4 * SEPARATOR
        row = [("ClusterView", plan.cluster_width), ("WaveformView", round(rest * 0.45)),
               ("CorrelogramView", rest - round(rest * 0.45)), (VIEW_NAME, plan.dock_width)]
        row = [(docks[name], width) for name, width in row if name in docks]
        if row:
            gui.resizeDocks([dock for dock, _ in row], [width for _, width in row], Qt.Horizontal)
        column = [(docks[name], height) for name, height in
                  zip(("ClusterScatterView", "ClusterView", "SimilarityView"), plan.left_heights) if name in docks]
        if len(column) > 1:
            gui.resizeDocks([dock for dock, _ in column], [height for _, height in column], Qt.Vertical)

    def _inside(self) -> None:
        """The cluster views' column widths (saved, or fitted to the view) and each dock's own layout."""
        if self.closed:
            return
        state, cluster_view = self.gui.state, self.supervisor.cluster_view
        widths = state.get_view_state(cluster_view).get(CLUSTER_COLUMNS_KEY)
        if not widths and getattr(cluster_view, "_bcreason_sizing", None) is not None \
                and self.reason in cluster_view.columns:
            widths = {self.reason: self._reason_width(cluster_view)}
        for table in (cluster_view, self.supervisor.similarity_view):  # the same columns, one above the other
            sizing = getattr(table, "_bcreason_sizing", None)
            if sizing is not None and widths:
                sizing.hold(dict(widths))
        for view in self.why_views():
            restore_dock_state(view, state.get_view_state(view), first_look=self.first_time)
        self.done = True

    def _reason_width(self, table) -> int:
        """The reason column up to the right edge of the cluster view (all of it visible without scrolling), at
        most as wide as its longest text, at least `REASON_MIN_CHARS` characters."""
        view, sizing = table.table_view, table._bcreason_sizing
        index = table.columns.index(self.reason)
        room = view.viewport().width() - view.horizontalHeader().sectionPosition(index)
        floor = REASON_MIN_CHARS * view.fontMetrics().averageCharWidth() + (sizing.padding or 12)
        text = sizing.widths.get(self.reason, view.columnWidth(index))
        return max(floor, min(room, text))

    # -- when closed -----------------------------------------------------------------------------------------

    def save(self) -> None:
        """The plugin's columns' widths and each dock's layout into Phy's GUI state (Phy writes it to disk)."""
        self.closed = True
        if not self.done:
            return  # closed before the layout was applied: what is on screen is not the user's
        cluster_view = self.supervisor.cluster_view
        sizing = getattr(cluster_view, "_bcreason_sizing", None)
        if sizing is not None:
            self.gui.state.update_view_state(cluster_view, {CLUSTER_COLUMNS_KEY: sizing.held_widths()})
        for view in self.why_views():
            self.gui.state.update_view_state(view, dock_state(view))


def dock_state(view) -> dict:
    """What is kept of a why? dock's layout: its splitter's sizes and the rule table columns the user sized."""
    return {DOCK_SPLITTER_KEY: list(view.splitter.sizes()),
            DOCK_COLUMNS_KEY: view.rule_columns.held_by_name()}


def restore_dock_state(view, state: dict, first_look: bool = False) -> None:
    """A why? dock as it was saved, or at the first look's proportions."""
    sizes = state.get(DOCK_SPLITTER_KEY) if state else None
    if sizes and len(sizes) == view.splitter.count() and sum(sizes) > 0:
        view.splitter.setSizes([int(size) for size in sizes])
    elif first_look:
        view.splitter.setSizes(splitter_sizes(sum(view.splitter.sizes())))
    held = state.get(DOCK_COLUMNS_KEY) if state else None
    if held:
        view.rule_columns.hold_by_name(dict(held))
