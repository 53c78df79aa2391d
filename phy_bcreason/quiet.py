"""What Bombcell prints (its import banner, "Missing param fields filled in ...") goes to our log at debug level,
never to the user's terminal: stdout in Phy and the CLI holds only what the user asked for.

`bombcell_output_to_log()` catches the prints of the thread that enters it, and only those. Replacing
``sys.stdout`` (``contextlib.redirect_stdout``) swaps it for every thread of the process, so a redirect made on
Phy's worker thread would swallow what the GUI thread prints meanwhile, and the two threads' restores can
leave the wrong stream in place. Here ``sys.stdout`` is wrapped, while any thread is inside the block, by a
router that sends to the log the writes of the threads inside it and passes every other write, unchanged, to
the stream it wraps. No lock is held while Bombcell runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

logger = logging.getLogger("phy_bcreason")

_local = threading.local()
_lock = threading.Lock()  # guards _users and the installation of the router, never held around Bombcell
_users = 0


class LogWriter:
    """A text stream whose complete lines go to ``logger.debug``."""

    def __init__(self, prefix: str = "bombcell: "):
        self.prefix, self._pending = prefix, ""

    def write(self, text: str) -> int:
        self._pending += str(text)
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                logger.debug("%s%s", self.prefix, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._pending.strip():
            logger.debug("%s%s", self.prefix, self._pending.rstrip())
        self._pending = ""

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class _Router:
    """Stands for ``sys.stdout``: writes of threads inside `bombcell_output_to_log` go to their log writer,
    everything else to the wrapped stream (attributes too: ``buffer``, ``encoding``, ``fileno``...)."""

    def __init__(self, stream):
        self._stream = stream

    def _target(self):
        writer = getattr(_local, "writer", None)
        return writer if writer is not None else self._stream

    def write(self, text):
        target = self._target()
        return target.write(text) if target is not None else len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        target = self._target()
        if target is not None:
            target.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def bombcell_output_to_log():
    """Inside this block, what the calling thread prints goes to ``logging.getLogger("phy_bcreason").debug``."""
    global _users
    if getattr(_local, "writer", None) is not None:  # nested: the outer block already catches it
        yield
        return
    writer = LogWriter()
    with _lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        _users += 1
    _local.writer = writer
    try:
        yield
    finally:
        _local.writer = None
        writer.flush()
        with _lock:
            _users -= 1
            # Put the original stream back when no thread needs the router any more, unless somebody replaced
            # sys.stdout meanwhile (then the router stays wherever they keep it: it only passes writes on).
            if not _users and isinstance(sys.stdout, _Router):
                sys.stdout = sys.stdout._stream


def send_prints_to_log() -> None:
    """For a process of ours that answers on a pipe (the live-metrics child): every print of the process goes
    to the log, and file descriptor 1 to the null device, so nothing reaches the user's terminal."""
    import os

    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = LogWriter()
