"""The README's first-look screenshots and numbers: `phy-bcreason demo` as a new user sees it, under a real X server
(Xvfb) of a laptop's and a 1080p screen's size. For each screen: the first look (the MUA cluster the demo
selects), a NOISE unit with its decisive rows, and clusters 9 and 10 merged (once the live label and picture are
in); the whole screen is grabbed (`import -window root`, ImageMagick), and the GUI's geometry is measured.

    Xvfb :57 -screen 0 1920x1080x24 &  Xvfb :58 -screen 0 1366x768x24 &
    DISPLAY=:57 python docs/first_look_screenshots.py 1080p   # writes docs/first-look-1080p-*.png
    DISPLAY=:58 python docs/first_look_screenshots.py laptop
    DISPLAY=:58 python docs/first_look_screenshots.py laptop --before   # as the demo opened before (1800x1000)

Measured (printed as JSON): the window and its minimum size, the cluster view's width and rows in view, whether
bc_label and the reason are in view without scrolling and how many characters of the reason are, the dock's
picture size and its rule table's columns (width given / width the text needs).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phy.gui.qt import QApplication

HERE = Path(__file__).resolve().parent
MERGED = (9, 10)  # both MUA; merged they are GOOD, recomputed live


def pump(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def wait_for_picture(app, view, cluster_id: int, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if view.evidence.png is not None and view.evidence.cluster_id == cluster_id:
            pump(app, 0.5)
            return True
        pump(app, 0.1)
    return False


def measure(controller, gui) -> dict:
    """What a user sees, from the widgets' geometry."""
    table = controller.supervisor.cluster_view
    view, columns = table.table_view, table.columns
    viewport = view.viewport()
    metrics = view.fontMetrics()
    row_height = max(1, view.verticalHeader().defaultSectionSize())

    def in_view(name: str) -> int:
        """Pixels of this column inside the viewport, scrolled to the left."""
        index = columns.index(name)
        left = view.horizontalHeader().sectionPosition(index)
        return max(0, min(left + view.columnWidth(index), viewport.width()) - left)

    reason = "bc_classificationReason"
    reasons = [table.get(c)[reason] for c in table.get_ids()]
    longest = max(reasons, key=len)
    room = in_view(reason) - 12  # the cell's padding
    shown = max((n for n in range(len(longest) + 1) if metrics.horizontalAdvance(longest[:n]) <= room), default=0)
    (why,) = gui.list_views("BombcellWhyView")
    tree = why.tree
    header = tree.header()
    screen = gui.screen().geometry()

    def on_screen(widget) -> int:
        """Pixels of the widget's width on the screen (the window may be larger than the screen)."""
        left = widget.mapToGlobal(widget.rect().topLeft()).x()
        return max(0, min(left + widget.width(), screen.right() + 1) - max(left, screen.left()))

    def rule_column(i: int) -> list[int]:
        """Width given, width its text needs, pixels of it in view (scrolled to the left)."""
        left = header.sectionPosition(i)
        shown = max(0, min(left + tree.columnWidth(i), tree.viewport().width()) - left)
        return [tree.columnWidth(i), max(tree.sizeHintForColumn(i), header.sectionSizeHint(i)), shown]

    return {
        "window": [gui.width(), gui.height()],
        "window_minimum": [gui.minimumSizeHint().width(), gui.minimumSizeHint().height()],
        "screen": [gui.screen().availableGeometry().width(), gui.screen().availableGeometry().height()],
        "cluster_view": [table.width(), table.height()],
        "rows_in_view": viewport.height() // row_height,
        "columns_before_metrics": columns[: columns.index("bc_agrees") + 1],
        "bc_label_in_view": in_view("bc_label") == view.columnWidth(columns.index("bc_label")),
        "reason_px_in_view": in_view(reason),
        "reason_chars_in_view": max(0, room) // metrics.averageCharWidth(),
        "longest_reason_chars_shown": [shown, len(longest)],
        "dock": [why.width(), why.height()],
        "dock_px_on_screen": on_screen(why),
        "picture_viewport": [why.evidence.scroll.viewport().width(), why.evidence.scroll.viewport().height()],
        "rule_table": [tree.viewport().width(), tree.viewport().height()],
        "rule_columns": {tree.headerItem().text(i): rule_column(i) for i in range(tree.columnCount())},
    }


def grab(name: str) -> None:
    subprocess.run(["import", "-window", "root", str(HERE / name)], check=True)
    print(f"saved {HERE / name}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if not os.environ.get("DISPLAY") or not argv:
        print(__doc__, file=sys.stderr)
        return 2
    tag, before = argv[0], "--before" in argv
    app = QApplication.instance() or QApplication([])
    from phy_bcreason.demo import DEMO_DATA, first_cluster_with_label, open_gui

    with tempfile.TemporaryDirectory() as tmp:
        ks = Path(tmp) / "ks"
        shutil.copytree(DEMO_DATA, ks)
        controller, gui = open_gui(ks, Path(tmp) / "config")
        gui.show()
        if before:
            gui.resize(1800, 1000)  # what `phy-bcreason demo` did before the first look
        supervisor = controller.supervisor
        (why,) = gui.list_views("BombcellWhyView")
        mua = first_cluster_with_label(controller, "MUA")
        supervisor.select(mua)
        wait_for_picture(app, why, mua[0])
        numbers = measure(controller, gui)
        print(json.dumps({"tag": tag, "before": before, **numbers}, indent=1))
        if not before:
            grab(f"first-look-{tag}.png")
            noise = first_cluster_with_label(controller, "NOISE")
            supervisor.select(noise)
            wait_for_picture(app, why, noise[0])
            grab(f"first-look-{tag}-noise.png")
            supervisor.merge(list(MERGED))
            supervisor.block()
            merged = int(max(supervisor.clustering.cluster_ids))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and supervisor.cluster_view.get(merged)["bc_label"] == "(computing)":
                pump(app, 0.1)
            supervisor.select([merged])
            wait_for_picture(app, why, merged)
            grab(f"first-look-{tag}-merged.png")
        gui.close()
        controller.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
