"""The README's evidence-panel screenshots: Phy on the bundled demo under a real X server (Xvfb), one cluster per
kind of rule selected, the dock grabbed once its picture is in.

    Xvfb :97 -screen 0 1920x1080x24 &  DISPLAY=:97 python docs/evidence_screenshots.py
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from phy.gui.qt import QApplication

HERE = Path(__file__).resolve().parent
SHOTS = {15: "evidence-noise.png", 11: "evidence-mua.png", 23: "evidence-nonsoma.png"}


def main() -> int:
    if not os.environ.get("DISPLAY"):
        print("needs an X display (Xvfb): see the docstring", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    from phy_bcreason.demo import DEMO_DATA, open_gui

    with tempfile.TemporaryDirectory() as tmp:
        ks = Path(tmp) / "ks"
        shutil.copytree(DEMO_DATA, ks)
        controller, gui = open_gui(ks, Path(tmp) / "config")
        gui.resize(1900, 1060)
        gui.show()
        (view,) = gui.list_views("BombcellWhyView")
        dock = view.parent()
        while dock is not None and not hasattr(dock, "setFloating"):
            dock = dock.parent()
        dock.setFloating(True)  # the whole screen's height for the dock
        dock.resize(1000, 1060)
        dock.move(0, 0)
        app.processEvents()
        view.tabs.widget(0).setSizes([300, 800])
        for cluster_id, name in SHOTS.items():
            controller.supervisor.select([cluster_id])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (view.evidence.png and view.evidence.cluster_id == cluster_id):
                app.processEvents()
                time.sleep(0.02)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.02)
            view.grab().save(str(HERE / name))
            print(f"saved {HERE / name}")
        gui.close()
        controller.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
