"""Ctrl-C in Phy's terminal closes Phy's window, as its close button does."""

from __future__ import annotations

import signal
import threading

from qtpy.QtCore import QTimer

from .guard import guarded


def close_on_ctrl_c(gui):
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
