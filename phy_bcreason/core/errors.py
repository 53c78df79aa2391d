"""One-line messages for the user: the base of every error that carries one, an exception's first line, and a
list of ids cut short. Imports nothing, so any module of the package can use it."""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is one line for the user (what is wrong, naming the file or value first)."""


def first_line(exc: BaseException, *, typed: bool = False) -> str:
    """``exc`` as one line: the first line of its message, or its type's name when it has none.
    ``typed``: prefixed with its type's name (``"ValueError: ..."``), for exceptions not written for the user."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if typed else lines[0]


def listed(values, n: int) -> str:
    """The first ``n`` values, comma-separated, then ``, ...`` when there are more: ``"3, 7, 12, ..."``."""
    values = [str(v) for v in values]
    return ", ".join(values[:n]) + (", ..." if len(values) > n else "")
