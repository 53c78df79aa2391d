"""The first look (gui/layout.py): on a laptop's and a 1080p screen, Phy with the plugin fits, Bombcell's label
and enough of the reason are in the cluster view without scrolling, the plugin's other columns come before the
static ones, the dock's rule table shows the statuses; and once the user changed the layout, a reopening keeps
theirs. Real Phy (TemplateController + GUI, offscreen) on the bundled demo folder; the screen is simulated."""

import os
import shutil
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from phy.gui.qt import QApplication
from qtpy.QtCore import QRect, Qt
from qtpy.QtGui import QFontMetrics

from phy_bcreason.gui import layout
from phy_bcreason.gui.columns import AGREES, COLUMNS
from phy_bcreason.gui.dock_content import HEADERS, STATUS_COLUMN
from phy_bcreason.gui.tables import rule_column_widths

REASON = "bc_classificationReason"
# (screen, characters of the reason the cluster view shows at least without scrolling)
SCREENS = [((1366, 768), 28), ((1920, 1080), 40)]


@pytest.fixture
def demo_copy(tmp_path):
    from phy_bcreason.demo import DEMO_DATA

    return shutil.copytree(DEMO_DATA, tmp_path / "ks")


@pytest.fixture
def screen(monkeypatch):
    """``screen(width, height)``: the window's screen, as its available geometry says (offscreen Qt's is 800x600),
    and a window manager that maximises a window to it."""
    def set_screen(width, height):
        monkeypatch.setattr(layout, "available_geometry", lambda widget: QRect(0, 0, width, height))
        monkeypatch.setattr(layout, "maximize", lambda window: window.setGeometry(0, 0, width, height))

    return set_screen


@pytest.fixture
def desktop_font(qapp):
    """The font Qt gives a window under X11 without a desktop's settings (9 pt), as in docs/first-look-*.png;
    offscreen Qt's is 12 pt. Phy's tables set their own (10 pt)."""
    from qtpy.QtGui import QFont

    before = QApplication.font()
    QApplication.setFont(QFont("Sans Serif", 9))
    yield
    QApplication.setFont(before)


def show(controller, gui, timeout=30.0) -> None:
    """Show the window as Phy does and let the layout settle (the plugin's sizes need two turns of the loop)."""
    gui.show()
    deadline = time.monotonic() + timeout
    while not controller.phy_bcreason.layout.done:
        assert time.monotonic() < deadline, "the layout was not applied"
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()


def sort_arrow_room(header) -> int:
    """How much wider the header makes every column for its sort arrow (0 where Phy shows none: Phy 2.1)."""
    if not header.isSortIndicatorShown():
        return 0
    with_arrow = header.sectionSizeHint(0)
    header.setSortIndicatorShown(False)
    without = header.sectionSizeHint(0)
    header.setSortIndicatorShown(True)
    return with_arrow - without


def in_view(view, index: int) -> tuple[int, int]:
    """(left, right) of a column in the table's viewport, scrolled to the left."""
    header = view.header() if hasattr(view, "header") else view.horizontalHeader()
    left = header.sectionPosition(index)
    return left, left + view.columnWidth(index)


# -- the numbers, without Qt ---------------------------------------------------------------------------------------

def test_the_window_fits_its_screen():
    assert layout.window_size(1920, 1080) == (1728, 972)       # 90%
    assert layout.window_size(3840, 2160) == (1920, 1080)      # at most 1920x1080
    assert layout.window_size(1366, 768) == (1366, 768)        # a laptop: all of it
    assert layout.window_size(1280, 1024)[0] == 1280


def test_column_order_puts_ours_first_and_bombcells_metrics_last():
    columns = ["id", "ch", "sh", "depth", "fr", "amp", "bc_label", REASON, "bc_nFailed", "nPeaks",
               "presenceRatio", "bc_margin", "bc_source", "bc_flag", AGREES, "KSLabel", "n_spikes"]
    ordered = layout.column_order(columns, [*COLUMNS, AGREES], ["nPeaks", "presenceRatio"])
    assert ordered == ["id", *COLUMNS, AGREES, "ch", "sh", "depth", "fr", "amp", "KSLabel", "n_spikes", "nPeaks",
                       "presenceRatio"]
    assert sorted(ordered) == sorted(columns)


def test_rule_columns_share_what_is_missing_down_to_their_floors():
    content = [300, 60, 50, 70, 50, 280, 200]  # metric, value, test, threshold, margin, status, parameter
    assert rule_column_widths(content, 900, {0: 130, 5: 130}, (0, 5)) == content  # all fit
    widths = rule_column_widths(content, 600, {0: 130, 5: 130}, (0, 5))
    assert sum(widths[:-1]) == 600 and widths[1:5] == content[1:5] and widths[6] == 200
    assert widths[0] > 130 and widths[5] > 130
    narrow = rule_column_widths(content, 300, {0: 130, 5: 130}, (0, 5))
    assert (narrow[0], narrow[5], narrow[6]) == (130, 130, 200)  # never below the floors; parameter scrolls
    assert rule_column_widths(content, 600, {0: 130, 5: 130}, (0, 5), held={0: 250})[0] == 250  # the user's


# -- in Phy --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "reason_chars"), SCREENS, ids=["laptop", "1080p"])
def test_first_look_shows_label_and_reason_and_a_readable_dock(size, reason_chars, demo_copy, open_phy, screen,
                                                               desktop_font):
    screen(*size)
    controller, gui = open_phy(demo_copy)
    show(controller, gui)
    assert (gui.width(), gui.height()) == layout.window_size(*size)
    assert gui.minimumSizeHint().width() <= size[0] and gui.minimumSizeHint().height() <= size[1]

    # label and reason first, in view without scrolling; the plugin's other columns before Phy's and Bombcell's
    table = controller.supervisor.cluster_view
    columns, view = table.columns, table.table_view
    assert columns[:len(COLUMNS) + 2] == ["id", *COLUMNS, AGREES]
    metric_columns = controller.phy_bcreason.metric_columns.names
    assert metric_columns and columns[-len(metric_columns):] == metric_columns
    for name in ("bc_label", REASON):
        assert in_view(view, columns.index(name))[1] <= view.viewport().width(), name
    reason_px = view.columnWidth(columns.index(REASON)) - table._bcreason_sizing.padding
    # Phy's merge-view branch (2.2.0.dev0) keeps room for a sort arrow in every header: Phy fits its id column to
    # its header, wider by that much, which the reason gives up (26 characters instead of 28 on a laptop)
    arrow = sort_arrow_room(view.horizontalHeader())
    assert reason_px >= reason_chars * view.fontMetrics().averageCharWidth() - arrow
    assert view.viewport().height() // view.verticalHeader().defaultSectionSize() >= 8  # rows in view

    # the dock: in the probe view's place, its picture at least 400 px wide (the narrowest it is drawn),
    # the rule table's numbers and statuses in view
    (why,) = gui.list_views("BombcellWhyView")
    docks = {v.name: v.dock for v in gui.views}
    assert why.dock in gui.tabifiedDockWidgets(docks["ProbeView"]) and not why.visibleRegion().isEmpty()
    assert why.evidence.scroll.viewport().width() >= 400
    controller.supervisor.select([15])  # a NOISE unit
    controller.supervisor.block()
    QApplication.processEvents()
    tree = why.tree
    bold = tree.font()
    bold.setBold(True)
    for index in range(1, STATUS_COLUMN):  # value, test, threshold, margin: as wide as their text
        assert tree.columnWidth(index) >= tree.sizeHintForColumn(index), HEADERS[index]
    assert in_view(tree, STATUS_COLUMN)[1] <= tree.viewport().width()
    assert tree.columnWidth(STATUS_COLUMN) >= QFontMetrics(bold).horizontalAdvance("decided the label")


def test_the_users_layout_survives_a_reopening(demo_copy, tmp_path, qapp, screen):
    """First look once; the user moves things; closing and opening again gives back theirs, not the first look."""
    from phylib.utils import reset

    from phy_bcreason.demo import open_gui

    screen(1920, 1080)
    config = tmp_path / "phy-config"
    controller, gui = open_gui(demo_copy, config, clear_state=False)
    try:
        show(controller, gui)
        assert controller.phy_bcreason.layout.first_time
        (why,) = gui.list_views("BombcellWhyView")
        table = controller.supervisor.cluster_view
        reason = table.columns.index(REASON)
        # the user: a smaller window, a narrower dock, the picture taller, the reason column and a rule column
        gui.resize(1500, 900)
        QApplication.processEvents()
        gui.resizeDocks([why.dock], [480], Qt.Horizontal)
        QApplication.processEvents()
        why.splitter.setSizes([150, 500])
        table.table_view.setColumnWidth(reason, 222)
        why.tree.setColumnWidth(0, 111)
        QApplication.processEvents()
        theirs = {"window": (gui.width(), gui.height()), "dock": why.dock.width(), "splitter": why.splitter.sizes(),
                  "reason": table.table_view.columnWidth(reason), "metric": why.tree.columnWidth(0)}
    finally:
        gui.close()
        controller.close()
        reset()

    controller, gui = open_gui(demo_copy, config, clear_state=False)
    try:
        show(controller, gui)
        assert not controller.phy_bcreason.layout.first_time
        (why,) = gui.list_views("BombcellWhyView")
        table = controller.supervisor.cluster_view
        controller.supervisor.select([15])
        controller.supervisor.block()
        QApplication.processEvents()
        again = {"window": (gui.width(), gui.height()), "dock": why.dock.width(), "splitter": why.splitter.sizes(),
                 "reason": table.table_view.columnWidth(table.columns.index(REASON)),
                 "metric": why.tree.columnWidth(0)}
        assert again == theirs
    finally:
        gui.close()
        controller.close()
        reset()
