"""phy-bcreason: why Bombcell gave each unit its label, in Phy and on the command line."""

from ._version import __version__
from .io.parquet import import_pandas_without_pyarrow

import_pandas_without_pyarrow()  # before any module of ours imports pandas (parquet.py says why)

from .api import explain, explain_folder  # noqa: E402
from .core.engine import Explanation, evaluate  # noqa: E402
from .core.rules import RULES, Rule  # noqa: E402
from .io.results import BombcellResultsError  # noqa: E402

__all__ = ["RULES", "BombcellResultsError", "Explanation", "Rule", "__version__", "evaluate", "explain",
           "explain_folder"]
