"""`phy-bcreason demo`: Phy on the bundled demo dataset with the plugin attached.

The dataset is copied to a temporary folder (Phy writes its cache next to the data) and Phy gets a temporary
config folder, so neither the installed package nor the user's ~/.phy is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

DEMO_DATA = Path(__file__).parent / "demo_data"


def open_gui(ks_dir: Path, config_dir: Path, clear_state: bool = True):
    """A Phy TemplateController and GUI on ``ks_dir`` with only this plugin attached. ``clear_state``: Phy forgets
    the layout saved in ``config_dir`` (the first look again)."""
    from phy.apps.template import TemplateController, get_template_params

    from . import plugin  # noqa: F401  (defining the plugin class registers it with Phy)

    controller = TemplateController(
        config_dir=Path(config_dir),
        plugins=["BombcellReasonPlugin"],
        clear_cache=True,
        clear_state=clear_state,
        enable_threading=False,
        **get_template_params(str(Path(ks_dir) / "params.py")),
    )
    return controller, controller.create_gui(do_prompt_save=False)


def close_phy(controller, folder: Path) -> None:
    """Release every file Phy holds in ``folder``, so that it can be removed (Windows refuses to delete an open
    file, WinError 32): the controller's model (its memory-mapped arrays and raw traces), then any log file
    handler writing there (Phy's ``phy.log``, which older Phy versions never remove)."""
    close = getattr(controller, "close", None)
    if callable(close):
        close()
    folder = folder.resolve()
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            filename = getattr(handler, "baseFilename", None)
            if filename and Path(filename).resolve().is_relative_to(folder):
                logger.removeHandler(handler)
                handler.close()


def first_cluster_with_label(controller, label: str) -> list[int]:
    bc_label = controller.cluster_metrics["bc_label"]
    return [c for c in controller.supervisor.clustering.cluster_ids if bc_label(c) == label][:1]


def run_demo(screenshot: Path | None = None, ks_dir: Path | None = None) -> int:
    if screenshot is not None and not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from phy.gui.qt import QApplication, QTimer

    from .gui.guard import guarded

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="phy-bcreason-demo-") as tmp:
        data = Path(tmp) / "kilosort"
        shutil.copytree(ks_dir or DEMO_DATA, data)
        controller, gui = open_gui(data, Path(tmp) / "phy-config")
        gui.show()  # a fresh config: the plugin's first look sizes the window to the screen (gui/layout.py)
        controller.supervisor.select(first_cluster_with_label(controller, "MUA"))
        if screenshot is not None:
            def grab():
                QApplication.processEvents()
                gui.grab().save(str(screenshot))
                gui.close()

            QTimer.singleShot(1500, guarded(grab, what="the screenshot"))
        app.exec_()
        close_phy(controller, Path(tmp))  # before the folder is removed
        from phylib.utils import reset

        reset()
    if screenshot is not None:
        print(f"saved {screenshot}")
    return 0
