"""Known mistakes and alternative correct solutions, one module per notebook.

Every mistake the curriculum contract lists for an exercise is here, as the whole solution cell a
student might write, with the words its failure message must contain, followed by more mistakes
students make. List the contract's mistakes first: test_checks_catalogue.py runs every entry through the
checks (fast), and test_grading_pipeline.py sends the first six of each exercise through real
``nbgrader autograde`` (slow; PIPELINE_MISTAKES=all sends all of them).
"""

from __future__ import annotations

import importlib
import pkgutil
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


def _discover() -> dict[str, str]:
    """``{notebook name: catalogue module name}`` for every module in this package (its NOTEBOOK)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NOTEBOOK] = info.name
    return dict(sorted(found.items()))


# notebook name -> catalogue module name, which is also the name of its checks module in course_lib.checks
NOTEBOOKS = _discover()


def load(notebook: str):
    """The catalogue module for a notebook (has NOTEBOOK, MISTAKES and ALTERNATIVES)."""
    return importlib.import_module(f"{__name__}.{NOTEBOOKS[notebook]}")
