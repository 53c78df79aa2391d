"""One-line messages for the user: the base of every error that carries one. Imports nothing, so any module of
the package can use it."""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is one line for the user (what is wrong, naming the file or value first)."""
