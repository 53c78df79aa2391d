"""What-if thresholds: parse edits, summarise what they change against the saved run, save them for Bombcell.

Edits go through the same engine as everything else (`api.explain(results, overrides)`); this module only
names what may be edited and describes the difference.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.engine import Explanation
from ..core.errors import UserError
from ..core.rules import SWITCHES, THRESHOLDS, switches_for, thresholds_for, unflatten_thresholds
from ..io.parquet import write_table

WHATIF_PREFIX = "_bc_parameters.whatif-"
SI_WHATIF_PREFIX = "thresholds.whatif-"


class WhatIfError(UserError, ValueError):
    """An edit that cannot be applied; one line for the user."""


def same_value(a, b) -> bool:
    """Whether an edited value is the saved one (numbers compared as numbers, NaN equal to NaN)."""
    try:
        return float(a) == float(b) or (np.isnan(float(a)) and np.isnan(float(b)))
    except (TypeError, ValueError):
        return a == b


def editable(results=None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(thresholds, switches) an edit may name: the run's own for SpikeInterface results, else Bombcell's."""
    if results is None or results.rules is None:
        return THRESHOLDS, SWITCHES
    return thresholds_for(results.classifier, results.rules), switches_for(results.classifier, results.rules)


def parse_value(name: str, text: str, names: tuple[tuple[str, ...], tuple[str, ...]] = (THRESHOLDS, SWITCHES)
                ) -> float | bool:
    thresholds, switches = names
    if name not in thresholds and name not in switches:
        raise WhatIfError(f"{name}: not a Bombcell threshold or switch the rules read "
                          f"(thresholds: {', '.join(thresholds)}; switches: {', '.join(switches)})")
    text = str(text).strip()
    if name in switches:
        words = {"true": True, "on": True, "1": True, "yes": True,
                 "false": False, "off": False, "0": False, "no": False}
        if text.lower() not in words:
            raise WhatIfError(f"{name}: expected on/off (true/false), got {text!r}")
        return words[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise WhatIfError(f"{name}: expected a number, got {text!r}") from None


def parse_settings(settings: list[str], names=(THRESHOLDS, SWITCHES)) -> dict:
    """['maxRPVviolations=0.2', 'splitGoodAndMua_NonSomatic=on'] -> overrides."""
    overrides = {}
    for setting in settings or []:
        name, sep, value = setting.partition("=")
        if not sep:
            raise WhatIfError(f"{setting}: expected NAME=VALUE")
        overrides[name.strip()] = parse_value(name.strip(), value, names)
    return overrides


def describe_overrides(saved_params: dict, overrides: dict) -> str:
    """'maxRPVviolations 0.1 -> 0.2, splitGoodAndMua_NonSomatic off -> on'."""
    def show(name, value):
        if name in SWITCHES or isinstance(value, bool | np.bool_):
            return "on" if bool(value) else "off"
        return "unset" if value is None else f"{float(value):g}"

    return ", ".join(f"{name} {show(name, saved_params.get(name))} -> {show(name, value)}"
                     for name, value in overrides.items())


def label_changes(saved: Explanation, edited: Explanation) -> tuple[str, list[int]]:
    """'12 MUA -> GOOD, 3 GOOD -> MUA' and the cluster ids whose label changed."""
    changed = np.flatnonzero(saved.labels != edited.labels)
    moves = Counter((saved.labels[i] or "(empty)", edited.labels[i] or "(empty)") for i in changed)
    text = ", ".join(f"{n} {old} -> {new}" for (old, new), n in moves.most_common()) or "no label changes"
    return text, [int(saved.cluster_ids[i]) for i in changed]


def save_parameters(folder: Path, params: dict, overrides: dict, thresholds: dict | None = None) -> Path:
    """Write the saved parameters with the edits applied, next to the results under a new name (never over
    the run's own file): as a one-row parquet Bombcell users can load,

        param = pandas.read_parquet(path).iloc[0].to_dict(); bombcell.run_bombcell(ks_dir, save_path, param)

    or, for SpikeInterface results (``thresholds``, the run's dict), as the thresholds JSON that
    ``bombcell.run_bombcell_qc(analyzer, thresholds=path)`` and ``bombcell_label_units`` read.
    """
    edited = {**params, **overrides}
    prefix, suffix = (SI_WHATIF_PREFIX, ".json") if thresholds is not None else (WHATIF_PREFIX, ".parquet")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path(folder) / f"{prefix}{stamp}{suffix}", 1
    while path.exists():
        path, n = Path(folder) / f"{prefix}{stamp}-{n}{suffix}", n + 1
    if thresholds is not None:
        path.write_text(json.dumps(unflatten_thresholds(thresholds, edited), indent=2), encoding="utf-8", newline="\n")
    else:
        write_table(pd.DataFrame([edited]), path)
    return path


def population(results, overrides: dict, explanation: Explanation, step: float = 0.1) -> pd.DataFrame:
    """Per rule, at the current thresholds: units it decides, units it fails without deciding, units within
    ``step`` (relative) of its threshold, and units whose label a ``step`` change of that threshold flips
    (computed exactly, by re-running the engine with the threshold moved down and up)."""
    from ..core.engine import ALSO_FAILED, DECISIVE
    from ..core.judge import explain  # the same engine; imported here to keep this module light

    flips: dict[str, int] = {}
    for param in dict.fromkeys(r.param for j, r in enumerate(explanation.rules)
                               if r.param and j not in explanation.inactive):
        threshold = float(explanation.params[param])
        if not np.isfinite(threshold):
            continue
        flipped = np.zeros(len(explanation.labels), dtype=bool)
        for moved in ((threshold * (1 - step), threshold * (1 + step)) if threshold else (-step, step)):
            flipped |= explain(results, {**overrides, param: moved}, check=False).labels != explanation.labels
        flips[param] = int(flipped.sum())
    applied = explanation.applies & np.isfinite(explanation.margins)
    return pd.DataFrame({
        "rule": [r.name for r in explanation.rules],
        "block": [r.block for r in explanation.rules],
        "param": [r.param for r in explanation.rules],
        "decides": (explanation.status == DECISIVE).sum(axis=0),
        "also_fails": (explanation.status == ALSO_FAILED).sum(axis=0),
        "within": (applied & (np.abs(np.nan_to_num(explanation.margins, nan=np.inf)) <= step)).sum(axis=0),
        "flips": [flips.get(r.param, 0) if r.param else 0 for r in explanation.rules],
    })
