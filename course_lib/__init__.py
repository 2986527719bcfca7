"""course_lib: the helpers the course's notebooks and their tests share.

Modules: ``devices`` (which devices exist), ``seeding`` (repeatable runs), ``summary`` (torchsummary on
any device), ``plots`` (figures), ``notebook`` (the setup cell), ``data`` (offline datasets),
``training`` (``fit`` with a progress bar and a history), ``checks`` (what test cells call) and
``protocol`` (what the checks and the grader agree on; standard library only).

Submodules load when first used, so that the grader can read ``course_lib.protocol`` without PyTorch.
The setup cell (``course_lib.notebook``) loads the checks, which records PyTorch's comparison functions and
the checks themselves before any student code runs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("checks", "data", "devices", "notebook", "plots", "protocol", "seeding", "summary", "training")

__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
