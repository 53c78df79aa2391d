"""phy-bcreason: why Bombcell gave each unit its label, in Phy and on the command line."""

from ._version import __version__
from .api import explain, explain_folder
from .bombcell_io import BombcellResultsError
from .engine import Explanation, evaluate
from .rules import RULES, Rule

__all__ = ["RULES", "BombcellResultsError", "Explanation", "Rule", "__version__", "evaluate", "explain",
           "explain_folder"]
