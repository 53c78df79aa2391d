"""One guard for everything the plugin hands to Qt or Phy to call later: slots, timers, event handlers, Qt's
virtual methods, Phy's column functions. An exception of ours that reached Qt's event loop would abort Phy under
`phy-bcreason demo` (PyQt calls qFatal) and lose the user's curation; under `phy template-gui` it opens a
traceback dialog. Through `guarded`, the traceback goes to the log at debug level, one sentence goes to Phy's
status bar and the log, and Phy carries on. `tests/test_guard.py` reads the package's source and fails on any
connection made without it."""

from __future__ import annotations

import collections
import functools
import inspect
import logging
import threading
import time

from ..core.errors import first_line

logger = logging.getLogger("phy")

# How long each guarded call on the GUI thread took (name, seconds): benchmarks/bench_merge.py reads it.
GUI_THREAD_TIMES: collections.deque = collections.deque(maxlen=10_000)

_status_bars: list = []  # the status bar of each open Phy window: callables taking one sentence
_reported: set = set()   # (what, exception type, first line): each failure is told once, not on every call


def show_failures_in(status_bar) -> callable:
    """Failures are told in this status bar (``status_bar(sentence)``) until the returned call removes it."""
    _status_bars.append(status_bar)
    _reported.clear()  # a new window: its failures are told again
    return lambda: status_bar in _status_bars and _status_bars.remove(status_bar)


def guarded(func=None, *, what: str | None = None, default=None):
    """``func`` such that no exception of ours leaves it (returns ``default`` then). As a decorator too:
    ``@guarded`` or ``@guarded(what="the Population tab")``."""
    if func is None:
        return functools.partial(guarded, what=what, default=default)
    name = what or getattr(func, "__name__", None) or repr(func)
    accepted = _positional(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args[:accepted], **kwargs)
        except Exception as exc:
            _report(name, exc)
            return default
        finally:
            GUI_THREAD_TIMES.append((name, time.perf_counter() - start))

    wrapper.guarded = True
    return wrapper


def _positional(func) -> int | None:
    """How many positional arguments ``func`` takes (None: any number). Qt's signals pass theirs (``clicked``
    passes ``checked``) and PyQt drops those a slot does not take: the guard must do the same."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def _report(name: str, exc: Exception) -> None:
    key = (name, type(exc).__name__, first_line(exc, typed=True))
    logger.debug("phy-bcreason: %s failed", name, exc_info=exc)
    if key in _reported:
        return
    _reported.add(key)
    sentence = f"phy-bcreason: {name} failed ({first_line(exc, typed=True)}); Phy carries on (details in phy.log)"
    logger.warning(sentence)
    if threading.current_thread() is threading.main_thread():  # Qt's widgets belong to the GUI thread
        for status_bar in list(_status_bars):
            try:
                status_bar(sentence)
            except Exception:  # the window is already gone
                logger.debug("phy-bcreason: status bar not reached", exc_info=True)
