"""Each classifier's own parameter back-fill, and the repair of damaged parameter keys.

Python: Bombcell's installed `check_parameter_fields`, without importing all of Bombcell (`import bombcell`
pulls in matplotlib, numba and ipywidgets, seconds that must stay off Phy's start-up): we compile it and the
tables it reads straight from its source file, or import it the ordinary way if that fails.
MATLAB: `bc.qm.checkParameterFields` (which first renames old names with `bc.qm.prettify_names`), as data
below; only the entries the classifier reads.

A threshold that neither back-fill can give is not an error here: it is reported as missing, and the rules
that read it are shown as 'threshold missing' (see `engine.evaluate`).
"""

from __future__ import annotations

import ast
import importlib.util
import warnings
from functools import cache
from pathlib import Path

import numpy as np

_NEEDED = {"_BACKCOMPAT_DEFAULTS", "_NON_SOMATIC_GROUP", "_CLASSIFICATION_KEYS", "check_parameter_fields"}


def _compile_from_source() -> dict:
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
    return namespace


@cache
def _python_backfill() -> dict:
    """Bombcell's `check_parameter_fields` and its table of back-compatibility defaults."""
    try:
        return _compile_from_source()
    except Exception:
        from bombcell import default_parameters

        return vars(default_parameters)


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


# MATLAB's prettify_names: old parameter and metric names -> the names the classifier reads.
OLD_NAMES = {
    "minTroughToPeakRatio": "maxScndPeakToTroughRatio_noise",
    "firstPeakRatio": "maxPeak1ToPeak2Ratio_nonSomatic",
    "minMainPeakToTroughRatio": "maxMainPeakToTroughRatio_nonSomatic",
    "minWidthFirstPeak": "minWidthFirstPeak_nonSomatic",
    "minWidthMainTrough": "minWidthMainTrough_nonSomatic",
    "RPV_tauR_estimate": "RPV_window_index",
    "isoD": "isolationDistance",
}

METRIC_OLD_NAMES = ("RPV_tauR_estimate", "isoD")

# MATLAB's checkParameterFields defaults, for the parameters getQualityUnitType reads.
MATLAB_BACKFILL = {
    "extractRaw": 1,
    "computeSpatialDecay": 1,
    "splitGoodAndMua_NonSomatic": 0,
    "spDecayLinFit": 1,
    "minSpatialDecaySlopeExp": 0.01,
    "maxSpatialDecaySlopeExp": 0.1,
    "maxScndPeakToTroughRatio_noise": 0.8,
    "maxMainPeakToTroughRatio_nonSomatic": 0.8,
    "minWidthFirstPeak_nonSomatic": 0,
    "minWidthMainTrough_nonSomatic": 0,
    "minTroughToPeak2Ratio_nonSomatic": 0,
    "maxPeak1ToPeak2Ratio_nonSomatic": np.inf,
}

SWITCH_WORDS = {"true": True, "on": True, "yes": True, "1": True, "1.0": True,
                "false": False, "off": False, "no": False, "0": False, "0.0": False}


def repair_parameters(params: dict, switches, thresholds) -> tuple[dict, list[str]]:
    """Keys and values as Bombcell itself would accept them, and one note per repair.

    Keys padded with white space, old names MATLAB's prettify_names maps, switches stored as text, and
    thresholds stored as numeric text.
    """
    repaired, notes = {}, []
    for key, value in params.items():
        name = key.strip() if isinstance(key, str) else key
        if name != key and name not in params:
            notes.append(f"parameter {key!r} read as {name!r} (white space around the name)")
        elif name != key:
            name = key
        repaired[name] = value
    for old, new in OLD_NAMES.items():
        # RPV_tauR_estimate and isoD name metrics; Python Bombcell's legacy refractory test keeps a parameter
        # RPV_tauR_estimate (None: sweep every tauR), which its parameter file saves
        if old in repaired and new not in repaired and old not in METRIC_OLD_NAMES:
            repaired[new] = repaired.pop(old)
            notes.append(f"parameter {old} read as {new} (its current name)")
    for name in switches:
        value = repaired.get(name)
        if isinstance(value, str) and value.strip().lower() in SWITCH_WORDS:
            repaired[name] = SWITCH_WORDS[value.strip().lower()]
            notes.append(f"switch {name} stored as text {value!r}: read as {'on' if repaired[name] else 'off'}")
        elif isinstance(value, np.bool_ | np.integer):
            repaired[name] = value.item()
    for name in thresholds:
        value = repaired.get(name)
        if isinstance(value, str):
            try:
                repaired[name] = float(value)
            except ValueError:
                continue
            notes.append(f"threshold {name} stored as text {value!r}: read as {repaired[name]:g}")
    return repaired, notes


def _python_backfill_parameters(params: dict, thresholds) -> tuple[dict, list[str], list[str]]:
    namespace = _python_backfill()
    defaults = namespace.get("_BACKCOMPAT_DEFAULTS", {})
    # Bombcell raises for a key it has no default for; we report a threshold as missing instead.
    needed = dict.fromkeys([*thresholds, *namespace.get("_CLASSIFICATION_KEYS", ())])
    absent = [k for k in needed if k not in params and k not in defaults]
    check = namespace["check_parameter_fields"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filled = check({**params, **dict.fromkeys(absent, np.nan)}, verbose=False)
    for key in absent:
        del filled[key]
    return filled, [str(w.message) for w in caught], absent


def backfill_parameters(params: dict, classifier: str = "python", fill_thresholds: bool = True
                        ) -> tuple[dict, list[str], list[str], list[str]]:
    """The classifier's back-filled copy of ``params``, the names it filled in, its warnings, and the
    thresholds it reads that are still missing (no back-compatibility default). Without ``fill_thresholds``
    (no parameter file at all: nothing says the run used the defaults) only switches are filled."""
    from .rules import MATLAB, thresholds_for

    thresholds = thresholds_for(classifier)
    if classifier == MATLAB:
        filled = {**{k: v for k, v in MATLAB_BACKFILL.items() if k not in params}, **params}
        caught = []
    else:
        filled, caught, _ = _python_backfill_parameters(params, thresholds)
    if not fill_thresholds:
        filled = {k: v for k, v in filled.items() if k in params or k not in thresholds}
    missing = [k for k in thresholds if k not in filled]
    return filled, sorted(set(filled) - set(params)), caught, missing
