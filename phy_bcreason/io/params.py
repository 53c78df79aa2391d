"""Parameter files, read as one dict of parameters: Bombcell's one-row parameter parquet (or the dock's `Save…`
what-if copy), its CSV, or SpikeInterface's thresholds JSON. For ``phy-bcreason compare`` (`batch/compare.py`) and
the dock's Load… (`gui/session.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.errors import UserError, first_line
from .parquet import read_tables
from .results import BombcellResultsError


# raised here and by batch/compare.py, which imports it: the lower of the two holds it
class CompareError(UserError):
    """A run that cannot be compared; one line."""


def _one_line(exc: BaseException) -> str:
    return first_line(exc, typed=not isinstance(exc, BombcellResultsError | CompareError))


def _is_param_file(path: Path) -> bool:
    return path.is_file() and path.suffix in (".parquet", ".json", ".csv")


def read_param_file(path: Path) -> dict:
    """A parameter file: Bombcell's one-row parameter parquet (or the dock's `Save…` what-if copy), its CSV, or
    SpikeInterface's thresholds JSON (flattened to the rule table's names)."""
    try:
        if path.suffix == ".json":
            from ..core.rules import flatten_thresholds

            thresholds = flatten_thresholds(json.loads(path.read_text(encoding="utf-8")))
            text = [name for name, value in thresholds.items() if not isinstance(value, int | float)]
            if text:  # bombcell_label_units cannot compare it
                raise ValueError(f"threshold {text[0]} is {thresholds[text[0]]!r}, not a number")
            return thresholds
        table = read_tables([path])[0] if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        table = _one_line(exc)
    if isinstance(table, str):
        raise CompareError(f"{path}: cannot read as a parameter file ({table})")
    if len(table) != 1:
        raise CompareError(f"{path}: a parameter file has one row, this one has {len(table)}")
    return table.iloc[0].to_dict()
