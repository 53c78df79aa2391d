"""The plugin's child processes, started and ended the same way on Linux, macOS and Windows.

Both children (the live-metrics process, `live.process.MetricsProcess`, and the short-lived parquet reader,
`io.parquet`) are started with `spawn_options`; the long-lived one lowers its own priority (`lower_priority`) and
ends when Phy does (`read_requests_until_parent_ends`). Nothing here may fail where the OS lacks something: a
child that cannot lower its priority runs at Phy's, and says so at debug level.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

logger = logging.getLogger("phy")

# Windows' process creation flags (subprocess defines them only on Windows)
CREATE_NEW_PROCESS_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200)
CREATE_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
BELOW_NORMAL_PRIORITY_CLASS = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0x00004000)


def spawn_options(lower: bool = False) -> dict:
    """`subprocess.Popen` keyword arguments for a child of ours: a process group of its own, so that Ctrl-C in
    Phy's terminal is for Phy alone (which then closes its children); on Windows no console window either (Phy
    run by pythonw or an IDE would flash one) and, with ``lower``, the priority class below normal from its
    first instruction. ``start_new_session`` is POSIX only (ignored on Windows); a POSIX child lowers its own
    priority (`lower_priority`)."""
    if sys.platform == "win32":
        flags = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
        return {"creationflags": flags | BELOW_NORMAL_PRIORITY_CLASS if lower else flags}
    return {"start_new_session": True}


def lower_priority(niceness: int) -> None:
    """In the child: yield the CPU to Phy by ``niceness`` steps of ``os.nice``. On Windows the priority class
    was given when the process was created (`spawn_options`). Where it cannot be lowered (no ``os.nice``, or
    not permitted) the child runs at Phy's priority: a debug message, never an error."""
    if not niceness or sys.platform == "win32":
        return
    nice = getattr(os, "nice", None)
    if nice is None:
        logger.debug("phy-bcreason: os.nice does not exist here: the child runs at Phy's priority")
        return
    try:
        nice(niceness)
    except OSError as exc:
        logger.debug("phy-bcreason: the child's priority could not be lowered (%s): it runs at Phy's", exc)


def read_requests_until_parent_ends(stream: BinaryIO) -> Callable[[], object]:
    """In the child: read the parent's pickled requests from ``stream`` (the child's stdin, a pipe) on a thread
    of their own, and end this process the moment the pipe ends, even in the middle of a computation. Returns
    the function that waits for the next request.

    The end of the pipe is how the child knows Phy is gone, on every OS and through any launcher:

    - The write end of the pipe is Phy's alone: created non-inheritable (PEP 446), and `subprocess` hands no
      other child of Phy a copy (POSIX closes the other descriptors at exec; Windows passes only the handles
      listed). When Phy's process ends, however it ends (closed, crashed, SIGKILL, TerminateProcess), the OS
      closes that end, and the next read here returns end of file: at once, no polling. A launcher in between
      (a Windows venv's or uv's ``python.exe``, which runs the real interpreter as its own child) passes the
      read end on and holds no write end. Phy dropping the process without dying (`MetricsProcess.close`)
      ends it the same way.
    - ``os.getppid()`` is not Phy's pid behind a launcher (the child would end at once), and on Windows it keeps
      the dead parent's pid (the child would never end); the pid Phy passes would have to be polled, with psutil
      to tell a reused pid (a dependency, and a thread waking twice a second for the whole session).

    Left: a process forked from Phy without exec holds a copy of the write end until it exits (POSIX only; Phy
    and the plugin fork none).
    """
    requests: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            try:
                requests.put(pickle.load(stream))
            except Exception:  # end of file (EOFError), or Phy died in the middle of a request
                os._exit(0)  # the child only ever reads files: nothing to finish

    threading.Thread(target=read, daemon=True, name="requests-from-phy").start()
    return requests.get


def end_when_parent_ends(stream: BinaryIO) -> None:
    """In a short-lived child whose parent writes nothing to its stdin (a pipe): end this process the moment the
    pipe ends, as it does when the parent closes it or dies, on every OS and through launchers."""

    descriptor = stream.fileno()  # read unbuffered: a buffered reader's lock, held here, would stop the exit

    def watch() -> None:
        while os.read(descriptor, 4096):
            pass
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
