"""Known mistakes and alternative correct solutions, one module per notebook.

Every mistake the curriculum contract lists for an exercise is here, as the whole solution cell a
student might write, with the words its failure message must contain. The tests run each through the
checks directly (fast) and through real ``nbgrader autograde`` (slow).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    """A wrong solution cell for ``exercise`` whose failure message must contain ``message``."""

    exercise: str
    name: str
    source: str
    message: str


@dataclass(frozen=True)
class Alternative:
    """A correct solution cell for ``exercise`` written differently from the instructor's."""

    exercise: str
    name: str
    source: str


# notebook name -> catalogue module
NOTEBOOKS = {"01_linear": "linear"}


def load(notebook: str):
    """The catalogue module for a notebook (has NOTEBOOK, MISTAKES and ALTERNATIVES)."""
    return importlib.import_module(f"tests.catalogue.{NOTEBOOKS[notebook]}")
