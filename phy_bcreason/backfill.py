"""Bombcell's own parameter back-fill (`check_parameter_fields`), without importing all of Bombcell.

`import bombcell` pulls in matplotlib, numba and ipywidgets (seconds), which must stay off Phy's start-up.
The back-fill itself needs only numpy, so we compile Bombcell's installed `check_parameter_fields` and the
tables it reads straight from its source file. If that ever fails (a Bombcell whose file is laid out
differently), we import the function the ordinary way.
"""

from __future__ import annotations

import ast
import importlib.util
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

_NEEDED = {"_BACKCOMPAT_DEFAULTS", "_NON_SOMATIC_GROUP", "_CLASSIFICATION_KEYS", "check_parameter_fields"}


def _compile_from_source() -> Callable:
    spec = importlib.util.find_spec("bombcell")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bombcell is not installed")
    source_path = Path(next(iter(spec.submodule_search_locations))) / "default_parameters.py"
    tree = ast.parse(source_path.read_text(encoding="utf-8"), filename=str(source_path))
    kept = []
    for node in tree.body:
        names = {node.name} if isinstance(node, ast.FunctionDef) else set()
        if isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        if names & _NEEDED:
            kept.append(node)
    namespace: dict = {"np": np, "warnings": warnings}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(source_path), "exec"), namespace)
    return namespace["check_parameter_fields"]


@cache
def bombcell_check_parameter_fields() -> Callable:
    try:
        return _compile_from_source()
    except Exception:
        from bombcell.default_parameters import check_parameter_fields

        return check_parameter_fields


@cache
def bombcell_default_arrays() -> dict[str, np.ndarray]:
    """The numpy-array parameters of Bombcell's `get_default_parameters` (e.g. ``tauR_values``), evaluated from
    its installed source. Bombcell's parameter file drops numpy arrays, so these are what a run used unless
    the user set them by hand. Entries that depend on the function's arguments are left out."""
    spec = importlib.util.find_spec("bombcell")
    if spec is None or not spec.submodule_search_locations:
        return {}
    source_path = Path(next(iter(spec.submodule_search_locations))) / "default_parameters.py"
    tree = ast.parse(source_path.read_text(encoding="utf-8"), filename=str(source_path))
    function = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_default_parameters"),
                    None)
    arrays = {}
    for node in ast.walk(function) if function is not None else ():
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values):
            if not isinstance(key, ast.Constant):
                continue
            try:
                evaluated = eval(compile(ast.Expression(value), str(source_path), "eval"), {"np": np})
            except Exception:
                continue
            if isinstance(evaluated, np.ndarray):
                arrays[key.value] = evaluated
    return arrays


def backfill_parameters(params: dict) -> tuple[dict, list[str], list[str]]:
    """Bombcell's back-filled copy of ``params``, the names it filled in, and its warnings.

    Raises KeyError, as Bombcell does, when a threshold it needs has no back-compatibility default.
    """
    check = bombcell_check_parameter_fields()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filled = check(dict(params), verbose=False)
    return filled, sorted(set(filled) - set(params)), [str(w.message) for w in caught]
